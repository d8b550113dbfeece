"""What ``presrm run`` writes when its output is a pipe (a log file, nohup, a cluster job).

Real runs of the real CLI on the tiny model: stderr holds presrm's own lines only (other
libraries' bars and warnings are off unless ``--verbose``), and long stages write plain
progress lines with done/total at the interval ``PRESRM_PROGRESS_EVERY`` sets.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from run_rows import BUILTIN

from presrm.errors import PresrmError
from presrm.run.plain_progress import PlainProgress, duration, every_from_env

TINY = {
    "model": "tiny",
    "problems": "6",
    "eval_problems": "3",
    "width": "2",
    "max_steps": "3",
    "iterations": "1",
    "warmup.enabled": "false",
    "warmup.eft_test_examples": "0",
    "sampling.max_step_tokens": "6",
    "batch_problems": "1",
    "judge.verdict": "probs",
    "judge.check": "false",
    "eval_search": "false",
}
# Every line presrm itself writes on stderr during a run names the model and its stage.
OWN_LINE = re.compile(r"^M\d+ [\w-]+[ :]")
# What other libraries would add: tqdm bars, warnings, tracebacks, TRL's printed log dicts.
NOISE = re.compile(r"it/s\]|%\||Warning|warn\(|Traceback|\{'loss'|Loading weights|de-quantizing")


def _run(tmp_path: Path, *extra: str, every: str = "0.1") -> subprocess.CompletedProcess[str]:
    sets = [a for key, value in TINY.items() for a in ("--set", f"{key}={value}")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PRESRM_PROGRESS_EVERY": every}
    env.pop("PYTHONWARNINGS", None)
    cmd = [
        sys.executable,
        "-m",
        "presrm.cli",
        "run",
        BUILTIN,
        *sets,
        "--out",
        str(tmp_path / "run.duckdb"),
        *extra,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _foreign(lines: list[str]) -> list[str]:
    return [line for line in lines if not OWN_LINE.match(line)]


@pytest.mark.slow
def test_a_piped_run_writes_only_its_own_lines_and_plain_progress(tmp_path: Path) -> None:
    done = _run(tmp_path)
    err = done.stderr.splitlines()
    assert _foreign(err) == []  # not one blank line, bar or warning from another library
    assert not NOISE.search(done.stdout)
    # Every stage ends with one summary line.
    assert [line.split(" done in")[0] for line in err if " done in " in line] == [
        "M0 eval",
        "M1 search",
        "M1 train",
        "M1 eval",
    ]
    # Long stages write done/total and an estimate of the time left while they run.
    count = r"  (\d+)/(\d+) problems \(\d+ %\)  \S+ elapsed, (about \S+ left|time left unknown)$"
    for label, total in (("M0 greedy", 3), ("M1 search", 6), ("M1 greedy", 3)):
        seen = [m for line in err if (m := re.match(re.escape(label) + count, line))]
        assert seen, f"no progress line for {label}:\n{done.stderr}"
        assert all(int(m[2]) == total and int(m[1]) < total for m in seen)
        assert any(int(m[1]) > 0 and m[3].startswith("about") for m in seen)
    # Training counts updates without a known total; only the interval's heartbeat writes it.
    assert any(re.match(r"M1 step-dpo  updates: \d+  \S+ elapsed$", line) for line in err), done.stderr
    # No line comes after the count's last one within a stage but its summary line.
    search = err.index(next(line for line in err if line.startswith("M1 search done")))
    assert "6/6" not in " ".join(err[:search])


@pytest.mark.slow
def test_verbose_keeps_other_libraries_output_and_the_default_interval_is_quiet(tmp_path: Path) -> None:
    done = _run(tmp_path, "--verbose", every="30")
    err = done.stderr.splitlines()
    # transformers' own bar when the trained model is saved: what the quiet run leaves out.
    assert any("Writing model shards" in line for line in _foreign(err)), done.stderr
    # At 30 s a few-second run writes no progress line: stage lines and summaries only.
    own = [line for line in err if OWN_LINE.match(line)]
    assert all(" done in " in line or "training on" in line for line in own), done.stderr


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRESRM_PROGRESS_EVERY", raising=False)
    assert every_from_env() == 30.0
    monkeypatch.setenv("PRESRM_PROGRESS_EVERY", "2.5")
    assert every_from_env() == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        monkeypatch.setenv("PRESRM_PROGRESS_EVERY", bad)
        with pytest.raises(PresrmError, match="PRESRM_PROGRESS_EVERY"):
            every_from_env()
    assert [duration(s) for s in (4.4, 65, 7260)] == ["4s", "1m05s", "2h01m"]


def test_a_count_writes_each_tenth_but_not_faster_than_a_sixth_of_the_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    plain = PlainProgress(lines.append, every=60.0, clock=lambda: now[0])
    with plain.count("M1 search", 100, "problems") as advance:
        advance(5)  # under a tenth: nothing
        now[0] = 20.0
        advance(10)  # a tenth crossed, 20 s after the last line
        now[0] = 25.0
        advance(10)  # another tenth, but only 5 s later (under 60 / 6): held back
        now[0] = 40.0
        advance(1)  # the held-back tenth is written now
        now[0] = 100.0
        advance(74)  # done: the stage's summary line follows instead
    assert lines == [
        "M1 search  15/100 problems (15 %)  20s elapsed, about 1m53s left",
        "M1 search  26/100 problems (26 %)  40s elapsed, about 1m54s left",
    ]


def test_solve_prints_its_answer_and_no_other_librarys_output() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)
    question = "Ana has 3 apples. She buys 2 more. How many apples does she have now?"
    cmd = [sys.executable, "-m", "presrm.cli", "solve", question, "--width", "2", "--max-steps", "4"]
    quiet = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "answer:" in quiet.stdout
    assert not NOISE.search(quiet.stdout + quiet.stderr), quiet.stdout + quiet.stderr
    loud = subprocess.run([*cmd, "--verbose"], env=env, capture_output=True, text=True, timeout=300)
    assert "Loading weights" in loud.stdout + loud.stderr  # what the quiet call leaves out
