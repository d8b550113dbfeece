"""Self-trained runs against their controls, level by level, paired on the same held-out problems.

    python benchmarks/self_vs_control.py --self self0.duckdb self1.duckdb --control control0.duckdb control1.duckdb
        [--iteration 1 2]

Each self-trained run is set beside the control of the same seed (the same config with
``train.rft.control = true``, so the same held-out problems). For every evaluated level the script
prints M0, the self-trained model and the control's model of each iteration asked for (greedy, % with
Wilson 95 % intervals), then the self-trained model's paired gain over M0 and over the control of the
same iteration (normal 95 % intervals). It reads the stored ``evals`` rows only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from presrm.intervals import Interval, paired_difference, wilson_interval
from presrm.run.levels import LEVEL_MODE_PREFIX
from presrm.store.reader import query_rows

_SQL = "SELECT mode, problem_id, correct FROM evals WHERE iteration = ? AND mode LIKE 'greedy%'"


def outcomes(run: Path, iteration: int) -> dict[str, dict[str, bool]]:
    """mode -> problem id -> right, for one model's greedy evaluations."""
    out: dict[str, dict[str, bool]] = {}
    for mode, problem_id, correct in query_rows(run, _SQL, [iteration]):
        out.setdefault(mode, {})[problem_id] = bool(correct)
    return out


def _pct(i: Interval | None) -> str:
    return "–" if i is None else f"{100 * i.estimate:.1f} [{100 * i.low:.1f}, {100 * i.high:.1f}]"


def _diff(i: Interval | None) -> str:
    return "–" if i is None else f"{100 * i.estimate:+.1f} [{100 * i.low:+.1f}, {100 * i.high:+.1f}]"


def own_level(run: Path) -> str:
    """The name of the run's own task level by its option (e.g. ``n_ops=4``)."""
    config = json.loads(query_rows(run, "SELECT config_json FROM runs LIMIT 1")[0][0])
    option = config.get("curriculum", {}).get("option", "n_ops")
    value = config.get("task_options", {}).get(option)
    return "the run's own" if value is None else f"{option}={value}"


def _level_key(name: str) -> tuple[float, str]:
    """Levels in numeric order (``n_ops=2`` before ``n_ops=10``), names without a number last."""
    value = name.rpartition("=")[2]
    return (float(value), name) if value.isdigit() else (float("inf"), name)


def rows(self_run: Path, control_run: Path, iteration: int) -> list[list[str]]:
    base, trained, control = (
        outcomes(self_run, 0),
        outcomes(self_run, iteration),
        outcomes(control_run, iteration),
    )
    own = own_level(self_run)
    table = []
    for mode in sorted(base, key=lambda m: _level_key(own if m == "greedy" else m)):
        ids = sorted(base[mode])
        if not all(ids and set(ids) == set(m.get(mode, {})) for m in (trained, control)):
            raise SystemExit(f"{self_run} and {control_run} did not evaluate the same {mode} problems")
        m0 = [base[mode][i] for i in ids]
        mk = [trained[mode][i] for i in ids]
        mc = [control[mode][i] for i in ids]
        table.append(
            [
                own if mode == "greedy" else mode.removeprefix(LEVEL_MODE_PREFIX),
                f"M{iteration}",
                _pct(wilson_interval(sum(m0), len(m0))),
                _pct(wilson_interval(sum(mk), len(mk))),
                _pct(wilson_interval(sum(mc), len(mc))),
                _diff(paired_difference(mk, m0)),
                _diff(paired_difference(mk, mc)),
            ]
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self", dest="self_runs", nargs="+", type=Path, required=True)
    parser.add_argument("--control", dest="control_runs", nargs="+", type=Path, required=True)
    parser.add_argument("--iteration", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    if len(args.self_runs) != len(args.control_runs):
        raise SystemExit("give one control per self-trained run, in the same order")
    print("| run | level | iteration | M0 | self-trained | control | − M0 | − control |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for self_run, control_run in zip(args.self_runs, args.control_runs, strict=True):
        table = [row for k in args.iteration for row in rows(self_run, control_run, k)]
        table.sort(key=lambda row: _level_key(row[0]))  # stable: iterations in order within a level
        for row in table:
            print(f"| {self_run.stem} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
