"""Speed of PPO with continual backprop and with shrink-and-perturb, relative to plain PPO.

The paper's PPO settings on HalfCheetah-v5 (256-256 ReLU, LeCun uniform init, n_steps 2048,
minibatch 128, 10 epochs, Adam lr 1e-4), one torch thread. The variants run interleaved (plain,
CBP, SnP, SnP every 10, plain, ...) in one process, each repeat a fresh model; the ratio of median
environment steps per CPU second is reported.

    .venv/bin/python -m bench.bench_methods --steps 20480 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import interleaved, medians, paper_ppo
from rl_plasticity.sb3.callbacks import MethodCallback

VARIANTS = {
    "ppo": lambda: None,
    "ppo+cbp": lambda: MethodCallback("cbp", replacement_rate=1e-4, maturity_threshold=10_000),
    "ppo+snp": lambda: MethodCallback("snp"),  # soft: 1 - 1e-6 toward a fresh init every step
    "ppo+snp/10": lambda: MethodCallback(
        "snp", every_updates=10
    ),  # the same, drawn every 10th step
}


def steps_per_second(variant: str, env_id: str, steps: int, seed: int) -> float:
    """Environment steps per CPU second of ``model.learn(steps)`` for one fresh model.

    CPU time of this process (one torch thread, one env), not wall time: on a machine shared with
    other work, wall time measures the neighbours as much as the method.
    """
    model = paper_ppo(env_id, seed)
    callback = VARIANTS[variant]()
    start = time.process_time()
    model.learn(steps, callback=callback)
    return steps / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=20480, help="PPO steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rates = interleaved(
        list(VARIANTS),
        args.repeats,
        lambda variant, repeat: steps_per_second(variant, args.env, args.steps, seed=repeat),
        unit="steps/s",
    )
    print(f"\n{args.env}, {args.steps} steps x {args.repeats} repeats, 1 torch thread")
    print("| variant | median steps per CPU second | ratio to PPO |")
    print("|---|---|---|")
    for variant, (median, ratio) in medians(rates).items():
        print(f"| {variant} | {median:.0f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
