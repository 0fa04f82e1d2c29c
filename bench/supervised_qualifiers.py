"""Robust qualifiers of the supervised results, from their committed per-seed CSVs alone.

The slowly-changing regression: each learner's late error minus the linear learner's, paired by
seed, as mean, median and seeds below / above (a heavy tail can carry a mean). Permuted digits to
1,000 tasks: each learner's late error against the fresh ReLU network's as well as its own
architecture's fresh network's.

    .venv/bin/python -m bench.supervised_qualifiers --out bench/results/supervised_qualifiers.md
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from bench.common import emit

RESULTS = Path(__file__).resolve().parent / "results"
REGRESSION = RESULTS / "regression30" / "regression.per_seed.csv"
DIGITS = RESULTS / "digits1000" / "method_table_digits_1000.per_seed.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def regression_lines() -> list[str]:
    """Paired late-error differences to the linear learner, per learner."""
    late: dict[str, dict[int, float]] = {}
    for row in _rows(REGRESSION):
        late.setdefault(row["learner"], {})[int(row["seed"])] = float(row["late_error"])
    linear = late["linear"]
    lines = [
        f"## Slowly-changing regression (`{REGRESSION.relative_to(RESULTS.parent.parent)}`)",
        "",
        "| learner | late - linear's: mean | median | seeds below / above 0 |",
        "|---|---|---|---|",
    ]
    for learner, by_seed in late.items():
        if learner == "linear":
            continue
        d = np.array([by_seed[s] - linear[s] for s in sorted(linear)])
        lines.append(
            f"| {learner} | {d.mean():+.3f} | {np.median(d):+.3f} | "
            f"{int((d < 0).sum())} / {int((d > 0).sum())} |"
        )
    return lines


def digits_lines() -> list[str]:
    """Mean late error over seeds, against the fresh ReLU network's and the own architecture's."""
    late: dict[str, list[float]] = {}
    for row in _rows(DIGITS):
        late.setdefault(row["learner"], []).append(float(row["late_error_last_100"]))
    fresh = float(np.mean(late["fresh network"]))
    own = {"crelu": "fresh crelu", "fourier": "fresh fourier"}
    lines = [
        f"## Permuted digits, 1,000 tasks (`{DIGITS.relative_to(RESULTS.parent.parent)}`)",
        "",
        "| learner | late error (last 100 tasks) | / fresh ReLU network's "
        "| / its own fresh network's |",
        "|---|---|---|---|",
    ]
    for learner, values in late.items():
        mean = float(np.mean(values))
        mine = mean / float(np.mean(late[own[learner]])) if learner in own else mean / fresh
        lines.append(f"| {learner} | {mean:.3f} | {mean / fresh:.2f} | {mine:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print (and with ``--out`` write) both tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.supervised_qualifiers")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    lines = [
        "# Supervised results: robust qualifiers from the per-seed CSVs",
        "",
        "`.venv/bin/python -m bench.supervised_qualifiers`",
        "",
        *regression_lines(),
        "",
        *digits_lines(),
    ]
    emit(lines, args.out, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
