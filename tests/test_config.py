"""Run configuration: TOML loading, --set overrides, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from presrm.config import RunConfig, describe_fields, load_config, validate_config
from presrm.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert cfg.width == 6 and cfg.algo == "step-dpo" and cfg.model == "default"


def test_toml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('model = "tiny"\nwidth = 3\n[judge]\nmode = "pointwise"\n')
    cfg = load_config(
        path, ["width=4", "train.ppo.lr=2e-5", "algo=ppo", 'out="x y.duckdb"', "task_options.n_ops=3"]
    )
    assert cfg.model == "tiny"
    assert cfg.width == 4
    assert cfg.train.ppo.lr == pytest.approx(2e-5)
    assert cfg.algo == "ppo"
    assert cfg.out == "x y.duckdb"
    assert cfg.judge.mode == "pointwise"
    assert cfg.task_options == {"n_ops": 3}


def test_bare_string_override_needs_no_quotes() -> None:
    assert load_config(None, ["model=smollm2"]).model == "smollm2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["widht=3"], "config: unknown key 'widht'"),
        (["width=three"], "config: width: expected an integer, got 'three'"),
        (["width=1"], "config: width: expected a value >= 2, got 1"),
        (["algo=grpo"], "config: algo: expected one of 'ppo', 'step-dpo' or 'rft', got 'grpo'"),
        (["judge.bogus=1"], "config: unknown key 'judge.bogus'"),
        (["train.dpo.lr=-1"], "config: train.dpo.lr: expected a value > 0.0, got -1"),
        (
            ["train.ppo.kl_kind=k9"],
            "config: train.ppo.kl_kind: expected one of 'k1', 'k2', 'k3' or 'abs', got 'k9'",
        ),
        (["sampling.temperature=hot"], "config: sampling.temperature: expected a number, got 'hot'"),
    ],
)
def test_errors_are_one_line_and_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("width = = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("iterations = 2\nproblemz = 5\n")
    with pytest.raises(ConfigError, match=r"unknown\.toml: unknown key 'problemz'"):
        load_config(unknown)


def test_malformed_set() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["width"])


def test_json_round_trip() -> None:
    cfg = load_config(None, ["width=3", "judge.verdict=probs"])
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_every_key_is_described() -> None:
    keys = {row[0] for row in describe_fields()}
    for key in (
        "model",
        "task",
        "iterations",
        "problems",
        "eval_problems",
        "width",
        "max_steps",
        "algo",
        "seed",
        "out",
        "judge.mode",
        "train.reward",
    ):
        assert key in keys


def test_every_trainer_setting_is_reachable_from_the_run_config() -> None:
    cfg = load_config(
        None, ["train.ppo.vf_coef=0.5", "train.ppo.gamma=0.9", "train.dpo.beta=0.3", "warmup.batch_size=4"]
    )
    assert (cfg.train.ppo.vf_coef, cfg.train.ppo.gamma, cfg.train.dpo.beta, cfg.warmup.batch_size) == (
        0.5,
        0.9,
        0.3,
        4,
    )


def test_flat_train_keys_of_earlier_run_files_move_to_their_trainers() -> None:
    cfg = validate_config(
        {
            "train": {
                "lr": 3e-4,
                "batch_size": 2,
                "beta": 0.2,
                "kl_coef": 0.0,
                "ppo_epochs": 5,
                "dpo_pairs": "checker",
                "dpo_sft_weight": 1.0,
                "ppo": {"lr": 1e-6},
            }
        }
    )
    assert cfg.train.dpo.lr == 3e-4 and cfg.train.ppo.lr == 1e-6  # a key set in its new place wins
    assert (cfg.train.dpo.batch_size, cfg.train.ppo.minibatch_size, cfg.warmup.batch_size) == (2, 2, 2)
    assert (cfg.train.dpo.beta, cfg.train.dpo.pairs, cfg.train.dpo.sft_weight) == (0.2, "checker", 1.0)
    assert (cfg.train.ppo.kl_coef, cfg.train.ppo.ppo_epochs) == (0.0, 5)
    assert RunConfig.from_json(cfg.to_json()) == cfg
