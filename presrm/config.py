"""Run configuration: typed, validated, loaded from TOML, overridable with ``--set``.

A run's configuration is stored inside its DuckDB file (``runs.config_json``), so
``presrm run --resume RUN.duckdb`` continues with exactly the settings it started with.

Every mistake is reported as one line naming the key and what was expected, e.g.
``config: width: expected an integer >= 2, got 1``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from presrm.config_sections import (
    CurriculumConfig,
    JudgeConfig,
    PPOConfig,
    RFTConfig,
    SamplingConfig,
    SFTConfig,
    StepDPOConfig,
    TrainConfig,
    WarmupConfig,
    _Section,
)
from presrm.errors import ConfigError

# The sections live in presrm.config_sections; they are part of this module's API.
__all__ = [
    "CurriculumConfig",
    "JudgeConfig",
    "PPOConfig",
    "RFTConfig",
    "SamplingConfig",
    "SFTConfig",
    "StepDPOConfig",
    "TrainConfig",
    "WarmupConfig",
    "RunConfig",
    "load_config",
    "validate_config",
    "apply_overrides",
    "describe_fields",
]

# Keys of earlier releases (run files store their config): each moves to its trainer's section.
_LEGACY_TRAIN_KEYS: dict[str, list[tuple[str, ...]]] = {
    "lr": [("train", "dpo", "lr"), ("train", "ppo", "lr")],
    "epochs": [("train", "dpo", "epochs")],
    "batch_size": [
        ("train", "dpo", "batch_size"),
        ("train", "ppo", "minibatch_size"),
        ("warmup", "batch_size"),
    ],
    "beta": [("train", "dpo", "beta")],
    "dpo_sft_weight": [("train", "dpo", "sft_weight")],
    "dpo_pairs": [("train", "dpo", "pairs")],
    "kl_coef": [("train", "ppo", "kl_coef")],
    "ppo_epochs": [("train", "ppo", "ppo_epochs")],
}


def _migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Move flat ``train.*`` trainer keys to their sections; a key set in its new place wins."""
    train = data.get("train")
    if not isinstance(train, dict) or not any(k in train for k in _LEGACY_TRAIN_KEYS):
        return data
    data = {**data, "train": dict(train)}
    for key, places in _LEGACY_TRAIN_KEYS.items():
        if key not in data["train"]:
            continue
        value = data["train"].pop(key)
        for place in places:
            node = data
            for part in place[:-1]:
                child = node.get(part)
                node[part] = child = dict(child) if isinstance(child, dict) else {}
                node = child
            node.setdefault(place[-1], value)
    return data


TrackerName = Literal["tensorboard", "wandb", "trackio", "none"]


def _no_tracker() -> list[TrackerName]:
    return ["none"]


class RunConfig(_Section):
    """Everything a run needs; see ``presrm schema`` / README for how it is stored."""

    model: str = Field("default", description="default | tiny | smollm2 | HF id | local dir | file.gguf")
    task: str = Field("arith", description="arith | jsonl:PATH | rg:NAME | hf:PATH[:SPLIT]")
    task_options: dict[str, Any] = Field(default_factory=dict, description="task difficulty knobs")
    iterations: int = Field(2, ge=0, description="self-rewarding iterations after the warm-up")
    problems: int = Field(128, ge=1, description="training questions per iteration")
    eval_problems: int = Field(200, ge=0, description="held-out questions evaluated each iteration")
    width: int = Field(6, ge=2, description="candidate next steps per step (w)")
    max_steps: int = Field(10, ge=1, description="step expansions per question, rollbacks included")
    step_format: Literal["auto", "line", "block", "header"] = Field(
        "auto",
        description="where a step ends: line = at a newline; block = at a blank line or the next"
        " 'Step k:' header (the paper's format); header = at the next header only;"
        " auto = block for chat models, line for raw LMs",
    )
    algo: Literal["ppo", "step-dpo", "rft"] = Field(
        "step-dpo",
        description="trainer of the self-rewarding iterations: ppo (step rewards), step-dpo (step"
        " pairs), rft (fine-tuning on the solutions whose every step the judge accepted)",
    )
    seed: int = Field(0, description="seed of everything random in the run")
    out: str = Field("runs/run.duckdb", description="the run's DuckDB trace file")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights' dtype, loaded straight into it; auto = bfloat16 on CUDA, float32 on CPU"
    )
    batch_problems: int = Field(16, ge=1, description="problems searched together in one batch")
    eval_search: bool = Field(True, description="also evaluate with self-judged best-of-width search")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    report_to: list[TrackerName] = Field(
        default_factory=_no_tracker,
        description="experiment trackers of the training metrics, eval metrics and judge statistics:"
        " tensorboard (RUN.trackers/tensorboard) | wandb (offline, RUN.trackers/wandb) | trackio (its"
        " local store) | none; a list or one name",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return validate_config(json.loads(text))


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    given = first.get("input")
    if kind == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    if kind == "missing":
        return f"{source}: missing key '{key}'"
    if kind == "value_error" and isinstance(first.get("input"), dict):
        # A rule across a section's keys: its message names them, the section's values add nothing.
        return f"{source}: {(first.get('ctx') or {}).get('error', first['msg'])}"
    ctx = first.get("ctx") or {}
    expected = {
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "int_type": "an integer",
        "float_parsing": "a number",
        "float_type": "a number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "a string",
        "dict_type": "a table",
        "model_type": "a table",
        "literal_error": "one of " + str(ctx.get("expected", "")),
        "greater_than_equal": f"a value >= {ctx.get('ge')}",
        "greater_than": f"a value > {ctx.get('gt')}",
        "less_than_equal": f"a value <= {ctx.get('le')}",
        "less_than": f"a value < {ctx.get('lt')}",
    }.get(kind, first["msg"])
    return f"{source}: {key}: expected {expected}, got {given!r}"


def validate_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a :class:`RunConfig` from plain data, turning validation errors into one line."""
    try:
        return RunConfig.model_validate(_migrate_legacy(data))
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def _parse_value(raw: str) -> Any:
    # `--set width=4` should give an int, `--set model=tiny` a string: reuse TOML's literal rules.
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` / ``a.b=value`` overrides to a nested config dict (in place)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set width=4")
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw.strip())
    return data


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a TOML config file (or the defaults), apply ``--set`` overrides, validate."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    if overrides:
        apply_overrides(data, overrides)
    return validate_config(data, source)


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every config key — used by docs and `presrm config`."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str, defaults: BaseModel) -> None:
        for name, field in model.model_fields.items():
            value = getattr(defaults, name)
            if isinstance(value, BaseModel):
                walk(type(value), f"{prefix}{name}.", value)
                continue
            ann = field.annotation
            type_name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
            rows.append((f"{prefix}{name}", type_name, json.dumps(value), field.description or ""))

    walk(RunConfig, "", RunConfig())
    return rows
