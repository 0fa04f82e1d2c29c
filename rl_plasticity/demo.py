"""``make demo``: a small sweep that tells the loss-of-plasticity story, then its report.

Four agents on ``fast-slippery-hopper`` (Hopper; the friction of every geom is redrawn every
20,000 steps, three changes in a demo run): PPO, the reset reference (a fresh network and
optimizer at every change), PPO+CBP and PPO+ReDo, three seeds each, run in parallel on every
core (each agent's seeds one population, as ``rlp sweep`` forms them by default); then
``rlp report``. Running it again reuses the finished runs. Prints the report's path
last.

The agents use DEMO settings (``agents/demo-*.toml``), not the paper's: FastPPO (SB3's PPO,
faster), a 64x64 network, 1,024 steps and 16 updates per rollout, a learning rate of 3e-4, and
method settings that act within the demo's ~1,250 updates (CBP: maturity 100 updates, rho 5e-4;
ReDo: every 50 updates). What the demo shows: agents that learn within minutes, the reset
reference dropping to scratch at every change while the others carry on, each method's activity
(units replaced, resets), the plasticity metrics moving. What it does not show: loss of
plasticity itself, which takes millions of steps (``bench/study.py``); with 3 seeds and 80,000
steps no difference between agents is significant.

    python -m rl_plasticity.demo [--steps N] [--root DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rl_plasticity.report import write_report
from rl_plasticity.sweep import SweepProgress, sweep

ENV = "fast-slippery-hopper"
AGENTS = ("demo-ppo", "demo-ppo-reset", "demo-ppo-cbp", "demo-ppo-redo")
SEEDS = (0, 1, 2)
STEPS = 79_872  # 78 rollouts of 1,024 steps: three changes, none in the last rollout


def main(argv: list[str] | None = None) -> int:
    """Run the demo sweep and report; return the exit code (1 if a run failed).

    :param argv: command-line arguments (default: the process's)
    """
    parser = argparse.ArgumentParser(prog="python -m rl_plasticity.demo", description=__doc__)
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per run")
    parser.add_argument("--root", type=Path, default=Path("runs"), help="folder of run groups")
    parser.add_argument("--jobs", type=int, default=None, help="parallel runs (default: cores)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"demo: {len(AGENTS)} agents x {len(SEEDS)} seeds x {args.steps} steps on {ENV}")
    print("demo: agents/demo-*.toml hold DEMO settings, chosen to act within this budget")
    with SweepProgress() as progress:  # runs done/running, steps, steps/s and time left
        result = sweep(
            [ENV],
            list(AGENTS),
            list(SEEDS),
            args.steps,
            root=args.root,
            group="demo",
            jobs=args.jobs,
            echo=progress.echo,
            progress=progress,
        )
    print(result.summary())
    report = write_report(args.root / "demo")
    print(f"demo: finished in {time.perf_counter() - start:.0f} s")
    print(f"report: {report}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
