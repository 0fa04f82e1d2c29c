"""Speed of every shipped PPO agent spec, as ``rlp train`` runs it, relative to plain PPO.

Each spec is built as ``rlp train`` builds it (its hyperparameters, initialization, optimizer,
plasticity-method callback and, where the spec enables it, the ``PlasticityMetrics`` callback at
its default cadence) on a stationary HalfCheetah-v5, one torch thread. The reference is the
``ppo`` spec with no callback at all: SB3's PPO alone. All variants run interleaved in one
process (reference, ppo, ppo-ns-adam, ..., reference, ppo, ...), each repeat a fresh model: a
warm-up of one rollout (untimed; it holds the metrics callback's first, baseline measurement),
then ``--steps`` timed steps, which cross exactly one multiple of the metrics cadence (20,000)
when ``--steps`` is 20,480. The ratio of median environment steps per CPU second to the
reference's is reported; CPU time, not wall time, because the machine is shared.

The stationary env never changes, so ``ppo-reset`` never resets here (its cost is one
re-initialization per change), and 20,480 steps are fewer than CBP's maturity (10,000 updates,
about 128,000 steps): CBP's row is the cost of its utility tracking, replacements being rare
(rho 1e-4: one unit per layer about every 40 updates) and cheap.

    .venv/bin/python -m bench.bench_agents --steps 20480 --repeats 3 --out bench/results/agents.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import BaseCallback

from bench.common import interleaved, medians
from rl_plasticity.experiment.build import build_model, make_vec_env
from rl_plasticity.specs import EnvSpec, available_specs, load_agent_spec

REFERENCE = "ppo, no callbacks"


def ppo_specs() -> list[str]:
    """The shipped agent specs that train PPO, ``ppo`` first."""
    ppo = ("PPO", "FastPPO")
    names = [n for n in available_specs("agents") if load_agent_spec(n).algorithm in ppo]
    return sorted(names, key=lambda n: (n != "ppo", n))


def steps_per_cpu_second(variant: str, env_id: str, steps: int, seed: int) -> float:
    """Steps per CPU second of ``steps`` PPO steps after a one-rollout warm-up, fresh model."""
    spec = load_agent_spec("ppo" if variant == REFERENCE else variant)
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    model = build_model(spec, make_vec_env(env, spec), seed, "cpu")
    callbacks: list[BaseCallback] = []
    if variant != REFERENCE:
        callbacks = [
            c for c in (spec.make_method_callback(), spec.make_metrics(None)) if c is not None
        ]
    model.learn(model.n_steps, callback=callbacks)
    start = time.process_time()
    model.learn(steps, callback=callbacks, reset_num_timesteps=False)
    return steps / (time.process_time() - start)


def main() -> None:
    """Measure, print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=20_480, help="timed PPO steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [REFERENCE, *ppo_specs()]
    rates = interleaved(
        variants,
        args.repeats,
        lambda variant, repeat: steps_per_cpu_second(variant, args.env, args.steps, repeat),
        unit="steps/s",
    )
    lines = [
        f"{args.env}, {args.steps} timed steps x {args.repeats} repeats per variant, interleaved,"
        " 1 torch thread; median steps per CPU second",
        "",
        "| agent spec (as `rlp train` runs it) | metrics callback | steps/s | ratio to PPO alone |",
        "|---|---|---|---|",
    ]
    for variant, (median, ratio) in medians(rates).items():
        metrics = "no" if variant == REFERENCE else _metrics_column(variant)
        lines.append(f"| {variant} | {metrics} | {median:.0f} | {ratio:.3f} |")
    lines += [
        "",
        "per repeat (steps/s): "
        + "; ".join(f"{v} " + ", ".join(f"{x:.0f}" for x in rates[v]) for v in variants),
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(__doc__ + "\n" + text + "\n")


def _metrics_column(name: str) -> str:
    spec = load_agent_spec(name)
    if not spec.metrics_enabled:
        return "no"
    return f"every {spec.metrics.get('every', 20_000):,} steps"


if __name__ == "__main__":
    main()
