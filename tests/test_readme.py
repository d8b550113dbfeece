"""Every command in the README's shell blocks is one presrm accepts as written: the subcommand and its
options parse, the files it names exist, and a `run`'s config (its file, or the quick start, with its
--set overrides) validates. Commands are parsed, not executed (a GPU run or an 8-minute quick start
has no place in the suite); the quick start itself runs, shrunk, in test_quickstart.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from presrm.cli import QUICKSTART, app
from presrm.config import load_config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def shell_commands(text: str) -> list[list[str]]:
    """The commands of the ```bash blocks: continuation lines joined, comments dropped, split at &&."""
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1 :]
    return [c for c in commands if c]


def presrm_args(command: list[str]) -> list[str] | None:
    """The arguments after `presrm` (the console script or `-m presrm.cli`), None for other commands."""
    if command[0].endswith("bin/presrm"):
        return command[1:]
    if "presrm.cli" in command:
        return command[command.index("presrm.cli") + 1 :]
    return None


COMMANDS = shell_commands(README.read_text(encoding="utf-8"))
PRESRM = [args for command in COMMANDS if (args := presrm_args(command)) is not None]


def test_the_readme_has_the_quick_start_commands() -> None:
    assert ["bash", "scripts/setup.sh"] in COMMANDS
    assert [".venv/bin/presrm", "run"] in COMMANDS
    assert [".venv/bin/python", "-m", "pytest", "-q"] in COMMANDS
    assert len(PRESRM) >= 8


@pytest.mark.parametrize("args", PRESRM, ids=[" ".join(a)[:60] for a in PRESRM])
def test_every_presrm_command_in_the_readme_parses(args: list[str]) -> None:
    group = typer.main.get_command(app)
    with group.make_context("presrm", list(args), resilient_parsing=False) as ctx:
        name = args[0]  # the README passes no option before the command
        sub = group.get_command(ctx, name)
        assert sub is not None, f"unknown command {name}"
        with sub.make_context(name, list(args[1:]), parent=ctx) as sub_ctx:
            params = sub_ctx.params
    if name != "run" or params.get("resume"):
        return
    config = params["config"]
    if config is not None and "CONFIG" not in str(config):
        assert (ROOT / config).is_file(), f"README names a missing config file: {config}"
    overrides = list(params.get("set_") or [])
    for value in overrides:
        if value.startswith("task=jsonl:"):
            assert (ROOT / value.removeprefix("task=jsonl:")).is_file()
    source = QUICKSTART if config is None else ROOT / config
    if source.is_file():
        load_config(source, overrides)  # raises on a key or value presrm does not accept


def test_every_file_the_readme_runs_exists() -> None:
    for command in COMMANDS:
        for word in command:
            if re.fullmatch(r"(scripts|benchmarks|examples)/[\w./-]+\.(sh|py|toml|yaml)", word):
                assert (ROOT / word).is_file(), f"README names a missing file: {word}"
