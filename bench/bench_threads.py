"""Torch threads per run: PPO (paper settings, HalfCheetah-v5) steps/s with 1 thread vs more.

Interleaved in one process, median of several repeats, so machine noise hits both alike.

    .venv/bin/python -m bench.bench_threads [--steps 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import interleaved, medians, paper_ppo


def steps_per_second(threads: int, steps: int, seed: int) -> float:
    """Train a fresh paper-settings PPO for ``steps`` with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    model = paper_ppo(seed=seed)
    start = time.perf_counter()
    model.learn(steps)
    elapsed = time.perf_counter() - start
    model.env.close()
    return steps / elapsed


def main() -> None:
    """Print a Markdown table of steps/s per thread count and the ratio to 1 thread."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    results = interleaved(
        counts, args.repeats, lambda t, r: steps_per_second(t, args.steps, seed=r)
    )
    print(f"| torch threads | steps/s (median of {args.repeats}) | ratio to {counts[0]} |")
    print("|---|---|---|")
    for t, (med, ratio) in medians(results).items():
        print(f"| {t} | {med:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
