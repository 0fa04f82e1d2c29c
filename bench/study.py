"""The plasticity study: a sweep of the paper's PPO variants on a compressed Slippery Cheetah.

Runs ``rlp sweep`` then ``rlp report`` and copies the report and its figures into
``bench/results/<group>/`` (small PNGs that BENCHMARKS.md and the README show). Resumable: run it
again after an interruption and only the missing runs are trained.

    .venv/bin/python -m bench.study [--steps 800000] [--seeds 0-2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rl_plasticity.report import write_report
from rl_plasticity.sweep import parse_seeds, sweep

ENV = "study-slippery-cheetah"
AGENTS = ("ppo", "ppo-ns-adam", "ppo-l2", "ppo-cbp", "ppo-snp", "ppo-reset")
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Run the study's sweep and report; return 1 if a run failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.study", description=__doc__)
    parser.add_argument("--env", default=ENV)
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--steps", type=int, default=800_000)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--root", type=Path, default=Path("runs"))
    parser.add_argument("--group", default="study")
    args = parser.parse_args(argv)
    result = sweep(
        [args.env],
        args.agents.split(","),
        parse_seeds(args.seeds),
        args.steps,
        root=args.root,
        group=args.group,
        jobs=args.jobs,
    )
    print(result.summary())
    report = write_report(args.root / args.group)
    results = RESULTS / args.group
    results.mkdir(parents=True, exist_ok=True)
    for path in report.parent.iterdir():
        if path.suffix in (".md", ".png"):
            shutil.copy(path, results / path.name)
    print(f"report: {report}; copied to {results}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
