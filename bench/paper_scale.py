"""What a paper-scale study costs here: steps/s of the shipped paper specs on each slippery body.

Each (env, agent) pair is trained for ``--steps`` with ``rlp train`` exactly as a study would run
it (metrics callback on, checkpoints on), ``--jobs`` of them at a time (two on this 2-core
machine, as a study runs), and its speed is read from SB3's ``time/fps`` in the run's
``progress.csv`` at its last row (environment steps per second of wall time since ``learn()``
started, so start-up is left out). From that: the hours of one 20M-step run on one core, and the
core-hours of the paper's Slippery Ant figure (5 agents x 10 seeds x 20M steps).

    .venv/bin/python -m bench.paper_scale [--steps 40960] [--jobs 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ENVS = ("slippery-ant", "slippery-halfcheetah", "slippery-hopper")
AGENTS = ("ppo", "ppo-cbp", "ppo-l2")
PAPER_RUN_STEPS = 20_000_000
#: The paper's Slippery Ant figure: standard PPO, non-stationary Adam, L2, CBP, shrink-and-perturb.
FIGURE_RUNS = 5 * 10


def last_fps(progress_csv: Path) -> float:
    """SB3's ``time/fps`` in the last row of a run's ``progress.csv`` that has one."""
    with progress_csv.open(newline="") as f:
        values = [row["time/fps"] for row in csv.DictReader(f) if row.get("time/fps")]
    if not values:
        raise RuntimeError(f"{progress_csv}: no time/fps value")
    return float(values[-1])


def measure(env: str, agent: str, steps: int, root: Path) -> float:
    """Train one run with ``rlp train`` and return its steps per second."""
    group = f"{env}-{agent}"
    command = [
        *(sys.executable, "-m", "rl_plasticity.cli", "train"),
        *("--env", env, "--agent", agent, "--seed", "0", "--steps", str(steps)),
        *("--root", str(root), "--group", group, "--no-progress"),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return last_fps(root / group / f"{env}__{agent}__s0" / "progress.csv")


def main(argv: list[str] | None = None) -> int:
    """Measure every pair and write the Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.paper_scale", description=__doc__)
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--steps", type=int, default=40_960)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one per core)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/paper_scale.md"))
    args = parser.parse_args(argv)
    pairs = [(e, a) for e in args.envs.split(",") for a in args.agents.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        start = time.perf_counter()
        rates = list(pool.map(lambda p: measure(*p, args.steps, Path(tmp)), pairs))
        wall = time.perf_counter() - start
    lines = [
        "# Paper-scale cost of the shipped specs",
        "",
        f"`python -m bench.paper_scale --steps {args.steps} --jobs {args.jobs}`, "
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average before {load_before:.1f}, {wall / 60:.1f} min.",
        "",
        "| env | agent | steps/s | one 20M-step run, hours of one core |",
        "|---|---|---|---|",
    ]
    for (env, agent), rate in zip(pairs, rates, strict=True):
        lines.append(f"| {env} | {agent} | {rate:,.0f} | {PAPER_RUN_STEPS / rate / 3600:.1f} |")
    ant = [r for (e, _), r in zip(pairs, rates, strict=True) if e == "slippery-ant"]
    if ant:
        hours = FIGURE_RUNS * PAPER_RUN_STEPS / min(ant) / 3600
        lines += [
            "",
            f"The paper's Slippery Ant figure (5 agents x 10 seeds x 20M steps) at the slowest "
            f"Ant speed above: about {hours:,.0f} core-hours.",
        ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
