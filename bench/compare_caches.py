"""Compare two run caches file by file: single runs against population members.

For every run file present in both folders (bench_regression's ``.npz``: binned errors;
bench.method_table's ``.npy``: per-task errors): the largest difference between their errors,
and the first bin (or task) where they differ by more than ``--tolerance``; then, per learner, in
how many seeds the two agree everywhere, and the mean error over the last tenth of the bins in
each with the paired difference (95% t-interval over seeds): the same distribution or not, where
the trajectories have parted.

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
from rl_plasticity.report.statistics import t_interval


def _errors(path: Path) -> np.ndarray:
    return np.load(path)["errors"] if path.suffix == ".npz" else np.load(path)


def compare(first: Path, second: Path, tolerance: float) -> list[str]:
    """Table rows comparing the caches' common files, and one summary line per learner."""
    lines = [
        f"| run | largest bin difference | first bin differing by more than {tolerance:g} |",
        "|---|---|---|",
    ]
    agree, total = Counter(), Counter()
    late: dict[str, list[tuple[float, float]]] = {}
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
        k = max(1, len(a) // 10)
        late.setdefault(learner, []).append((float(a[-k:].mean()), float(b[-k:].mean())))
        where = "none" if not len(parted) else f"bin {parted[0]} of {len(a)}"
        lines.append(f"| {path.stem} | {difference.max():.1e} | {where} |")
    lines.append("")
    for learner in total:
        pairs = np.array(late[learner])
        paired = t_interval(pairs[:, 1] - pairs[:, 0])
        interval = ""
        if paired.n > 1:
            half = paired.high - paired.mean
            interval = f", paired difference (second - first) {paired.mean:+.4f} ± {half:.4f}"
        lines.append(
            f"- {learner}: {agree[learner]} of {total[learner]} seeds agree within {tolerance:g} "
            f"in every bin; mean over the last tenth: first {pairs[:, 0].mean():.4f}, second "
            f"{pairs[:, 1].mean():.4f}{interval} (95% t-interval)"
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
