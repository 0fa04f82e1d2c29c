"""FastPPO and SB3's PPO learn alike: learning curves over several seeds and a test of a difference.

For each seed, SB3's PPO and the engine are built from ``agents/ppo.toml`` (the paper's settings,
n_envs 1, one torch thread) as ``rlp train`` builds them, on the same stationary env, and trained
``--steps`` steps; every finished episode's return is recorded (SB3's Monitor). Per run:

* final return: the mean return of the episodes that end in the last quarter of the steps;
* area under the curve: the mean return over every episode of the run.

The two samples (one value per seed and engine) are compared with a two-sided Mann-Whitney U test
and a two-sided permutation test on the difference of means (scipy); and, since the two runs of a
seed start from the same weights and the same first rollout, with a two-sided Wilcoxon
signed-rank test on the per-seed differences. Large p-values say the
engines are indistinguishable at this sample size (they cannot prove equality; the single-update
test in ``tests/test_fast_ppo.py`` does that part). Also reported: how many of the first
episodes of each seed had the same return in both engines (the rollout is the same to the bit
until float rounding in the update makes the parameters drift apart).

    .venv/bin/python -m bench.engine_equivalence --env HalfCheetah-v5 --seeds 8 --steps 32768 \\
        --out bench/results/engine_equivalence.md
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.experiment import build_model, make_vec_env
from rl_plasticity.specs import EnvSpec, load_agent_spec

ENGINES = ("PPO", "FastPPO")


class Episodes(BaseCallback):
    """Keeps (timestep, return) of every finished episode."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.episodes.append((self.num_timesteps, float(info["episode"]["r"])))
        return True


def run(
    algorithm: str, env_id: str, seed: int, steps: int
) -> tuple[list[tuple[int, float]], float]:
    """Episodes of one training run and its CPU seconds."""
    spec = dataclasses.replace(load_agent_spec("ppo"), algorithm=algorithm)
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    model = build_model(spec, make_vec_env(env, spec), seed, "cpu")
    episodes = Episodes()
    start = time.process_time()
    model.learn(steps, callback=episodes)
    return episodes.episodes, time.process_time() - start


def summaries(episodes: list[tuple[int, float]], steps: int) -> tuple[float, float]:
    """Final return (episodes ending in the last quarter) and mean return over the run."""
    returns = np.array([r for _, r in episodes])
    final = np.array([r for t, r in episodes if t > 0.75 * steps])
    return float(final.mean()), float(returns.mean())


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Two-sided p-values: Mann-Whitney U, permutation test on the difference of means, Wilcoxon
    signed-rank test on the paired differences."""
    u = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    perm = stats.permutation_test(
        (a, b),
        lambda x, y: np.mean(x) - np.mean(y),
        permutation_type="independent",
        alternative="two-sided",
        n_resamples=20_000,
        rng=0,
    ).pvalue
    paired = stats.wilcoxon(a, b, alternative="two-sided").pvalue
    return float(u), float(perm), float(paired)


def main() -> None:
    """Train both engines on every seed, test, print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32_768)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    final = {e: [] for e in ENGINES}
    area = {e: [] for e in ENGINES}
    cpu = {e: 0.0 for e in ENGINES}
    same = []
    for seed in range(args.seeds):
        runs = {}
        for engine in ENGINES:
            runs[engine], seconds = run(engine, args.env, seed, args.steps)
            cpu[engine] += seconds
            f, a = summaries(runs[engine], args.steps)
            final[engine].append(f)
            area[engine].append(a)
            print(f"seed {seed} {engine:8s} final {f:8.1f} area {a:8.1f} ({seconds:.0f} CPU s)")
        pairs = zip(runs["PPO"], runs["FastPPO"], strict=False)
        same.append(next((i for i, (x, y) in enumerate(pairs) if x != y), len(runs["PPO"])))
    lines = [
        f"{args.env}, {args.seeds} seeds x {args.steps} steps per engine, agents/ppo.toml "
        f"(n_envs 1, 1 torch thread); CPU seconds: SB3 {cpu['PPO']:.0f}, FastPPO "
        f"{cpu['FastPPO']:.0f}",
        "",
        "| measure | SB3 PPO, mean (sd) | FastPPO, mean (sd) | Mann-Whitney U p | permutation p |",
        "|---|---|---|---|---|",
    ]
    for name, values in (("final return (last quarter)", final), ("mean return (area)", area)):
        a, b = np.array(values["PPO"]), np.array(values["FastPPO"])
        u, perm, paired = compare(a, b)
        lines.append(
            f"| {name} | {a.mean():.1f} ({a.std(ddof=1):.1f}) | {b.mean():.1f} "
            f"({b.std(ddof=1):.1f}) | {u:.2f} | {perm:.2f} | {paired:.2f} | "
            f"{int((b > a).sum())} of {len(a)} seeds |"
        )
    lines += [
        "",
        "per seed, final return SB3 / FastPPO: "
        + "; ".join(
            f"{x:.0f} / {y:.0f}" for x, y in zip(final["PPO"], final["FastPPO"], strict=True)
        ),
        "",
        "episodes with the same return in both engines, from the first, per seed: "
        + ", ".join(str(n) for n in same),
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(__doc__ + "\n" + text + "\n")


if __name__ == "__main__":
    main()
