"""`presrm` commands forked from one warm process: many short real runs without paying the imports.

A ``presrm run`` of the tiny model spends most of its time importing torch, transformers and
TRL (about 10 s of a 13 s run on the test machine). :class:`ForkRunner` starts this file as a
server once; the server imports the run path and then forks one child per command. A child
is a real process running ``presrm.cli.main()`` with its own argv and environment, so a
fault point's SIGKILL (presrm/faults.py) kills it exactly as it would kill ``presrm run``.
The server itself never runs a model, so no thread pool exists when it forks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The run path's imports, done once by the server (the loop imports some of them lazily).
PRELOAD = (
    "presrm.cli",
    "presrm.run.start",
    "presrm.train.dpo",
    "presrm.train.sft",
    "presrm.train.ppo_stage",
    "presrm.train.eft",
    "presrm.train.eft_rollouts",
    "presrm.eval.evaluate",
    "presrm.eval.judge_eval",
)


class ForkRunner:
    """A client of the fork server: ``run(argv, env, log)`` → the child's exit status
    (negative: killed by that signal, as ``subprocess`` reports it)."""

    def __init__(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"argv": argv, "env": env or {}, "log": str(log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server died (exit {self.proc.wait()})")
        return int(json.loads(answer)["status"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _child(request: dict) -> None:
    """In the forked child: become ``presrm ARGV`` with output in the log file; never return."""
    code = 1
    try:
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(request["env"])
        sys.argv = ["presrm", *request["argv"]]
        import presrm.cli

        try:
            presrm.cli.main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
