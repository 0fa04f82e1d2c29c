"""Compare two run caches file by file: single runs against population members.

For every run file present in both folders (bench_regression's ``.npz``: binned errors;
bench.method_table's ``.npy``: per-task errors): the largest difference between their errors,
and the first bin (or task) where they differ by more than ``--tolerance``; then, per learner, in
how many seeds the two agree everywhere.

    .venv/bin/python -m bench.compare_caches ~/studies/regression10/cache \\
        ~/studies/regression30/cache --out bench/results/regression30/population_vs_single.md
    .venv/bin/python -m bench.compare_caches ~/studies/digits100/cache \\
        ~/studies/digits-pop/cache --tolerance 0.00084 --out bench/results/digits_population.md
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import emit


def _errors(path: Path) -> np.ndarray:
    return np.load(path)["errors"] if path.suffix == ".npz" else np.load(path)


def compare(first: Path, second: Path, tolerance: float) -> list[str]:
    """Table rows comparing the caches' common files, and one summary line per learner."""
    lines = [
        f"| run | largest bin difference | first bin differing by more than {tolerance:g} |",
        "|---|---|---|",
    ]
    agree, total = Counter(), Counter()
    for path in sorted([*first.glob("*.npz"), *first.glob("*.npy")]):
        other = second / path.name
        if not other.exists():
            continue
        a, b = _errors(path), _errors(other)
        difference = np.abs(a.astype(np.float64) - b)
        parted = np.flatnonzero(difference > tolerance)
        learner = path.name.split("_s")[0]
        total[learner] += 1
        agree[learner] += not len(parted)
        where = "none" if not len(parted) else f"bin {parted[0]} of {len(a)}"
        lines.append(f"| {path.stem} | {difference.max():.1e} | {where} |")
    lines.append("")
    for learner in total:
        lines.append(
            f"- {learner}: {agree[learner]} of {total[learner]} seeds agree within {tolerance:g} "
            "in every bin"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    emit(compare(args.first, args.second, args.tolerance), args.out, __doc__)


if __name__ == "__main__":
    main()
