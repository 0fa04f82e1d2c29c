"""A study's verdicts and robust secondaries recomputed from its committed ``phase_returns.csv``.

The run directories of a study live outside the work tree (``--root ~/studies``); what is
committed is the report's per-seed CSV. This recomputes, from that file alone, what ``rlp report
DIR --study NAME`` prints today (its correction, its secondaries), so that a reading of an old
study can be checked against the current report:

    .venv/bin/python -m bench.study_verdicts bench/results/perm_study/main/phase_returns.csv \\
        --study permuted-hopper --out bench/results/perm_study/main/verdicts_holm.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import emit
from rl_plasticity.report.secondaries import read_phase_returns, secondary_lines
from rl_plasticity.report.verdicts import comparisons, verdict_lines
from rl_plasticity.specs.study import load_study_spec


def main(argv: list[str] | None = None) -> int:
    """Print (and with ``--out`` write) the verdicts and secondaries."""
    parser = argparse.ArgumentParser(prog="python -m bench.study_verdicts", description=__doc__)
    parser.add_argument("phase_returns", type=Path, help="a study report's phase_returns.csv")
    parser.add_argument("--study", required=True, help="the study spec (name or .toml)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here too")
    args = parser.parse_args(argv)
    spec = load_study_spec(args.study)
    returns = read_phase_returns(args.phase_returns)
    found = comparisons(returns, spec.test)
    lines = [
        f"# {spec.name}: verdicts recomputed from `{args.phase_returns}`",
        "",
        f"`python -m bench.study_verdicts {args.phase_returns} --study {args.study}`",
        "",
        "**Verdicts**",
        "",
        *[f"- {v}" for v in verdict_lines(found, spec.test)],
        "",
        *secondary_lines(found, returns, spec.test),
    ]
    emit(lines, args.out, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
