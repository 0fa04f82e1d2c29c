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

With ``--drift``, the calibration of "the same within float rounding": SB3's PPO, SB3's PPO with
Adam fused (a change of float rounding only) and the engine train on the same buffers (collected
by the first), from the same weights and random state; after each ``train()`` it prints how far
each is from SB3's PPO: the largest parameter difference and the largest difference of log pi
on the buffer's observations. PPO amplifies rounding (Adam divides by small moments; a ratio on
either side of the clip edge switches a sample's gradient off), so the engine should be as far
from SB3 as SB3 is from itself with fused Adam, no farther.

    .venv/bin/python -m bench.engine_equivalence --drift --steps 8192
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from bench.common import emit
from rl_plasticity.experiment.build import build_model, make_vec_env
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


def curve_table(
    names: tuple[str, str],
    final_a: list[float],
    final_b: list[float],
    area_a: list[float],
    area_b: list[float],
    same: list[int],
) -> list[str]:
    """The comparison's Markdown lines: per measure, both samples and the three tests' p-values,
    then the per-seed final returns and how many first episodes were the same.

    :param names: the two variants, as the table names them
    :param final_a: final return per seed of the first (then of the second)
    :param final_b: of the second
    :param area_a: mean return over the run per seed of the first
    :param area_b: of the second
    :param same: per seed, episodes with the same return in both, from the first
    """
    first, second = names
    lines = [
        f"| measure | {first}, mean (sd) | {second}, mean (sd) | Mann-Whitney U p | permutation p "
        f"| paired Wilcoxon p | {second} higher in |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a, b in (
        ("final return (last quarter)", np.array(final_a), np.array(final_b)),
        ("mean return (area)", np.array(area_a), np.array(area_b)),
    ):
        u, perm, paired = compare(a, b)
        lines.append(
            f"| {name} | {a.mean():.1f} ({a.std(ddof=1):.1f}) | {b.mean():.1f} "
            f"({b.std(ddof=1):.1f}) | {u:.2f} | {perm:.2f} | {paired:.2f} | "
            f"{int((b > a).sum())} of {len(a)} seeds |"
        )
    return [
        *lines,
        "",
        f"per seed, final return {first} / {second}: "
        + "; ".join(f"{x:.0f} / {y:.0f}" for x, y in zip(final_a, final_b, strict=True)),
        "",
        "episodes with the same return in both, from the first, per seed: "
        + ", ".join(str(n) for n in same),
    ]


def drift(env_id: str, rollouts: int) -> list[str]:
    """SB3's PPO, SB3's PPO with fused Adam and the engine trained on the same buffers."""
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    models = {}
    for name, algorithm in (("SB3", "PPO"), ("SB3 fused Adam", "PPO"), ("FastPPO", "FastPPO")):
        spec = dataclasses.replace(load_agent_spec("ppo"), algorithm=algorithm)
        models[name] = build_model(spec, make_vec_env(env, spec), 0, "cpu")
        models[name].policy.load_state_dict(models["SB3"].policy.state_dict())
        models[name]._setup_learn(10**9)
    for group in models["SB3 fused Adam"].policy.optimizer.param_groups:
        group["fused"], group["foreach"] = True, None
    reference = models["SB3"]
    callback = CallbackList([])
    callback.init_callback(reference)
    lines = [
        f"{env_id}, agents/ppo.toml: distance from SB3's PPO after each train() on the same "
        "buffer (largest |parameter difference|; largest |log pi difference| on the buffer)",
        "",
        "| train() | SB3, fused Adam | FastPPO |",
        "|---|---|---|",
    ]
    for index in range(rollouts):
        reference.collect_rollouts(reference.env, callback, reference.rollout_buffer, 2048)
        buffer = reference.rollout_buffer
        observations = torch.as_tensor(buffer.observations).float().flatten(0, 1)
        actions = torch.as_tensor(buffer.actions).flatten(0, 1)
        state = np.random.get_state()
        for model in models.values():
            model.rollout_buffer = copy.deepcopy(buffer)
            np.random.set_state(state)
            model.train()
        with torch.no_grad():
            log_pi = {
                n: m.policy.evaluate_actions(observations, actions)[1] for n, m in models.items()
            }
        cells = []
        for name in ("SB3 fused Adam", "FastPPO"):
            params = zip(
                reference.policy.parameters(), models[name].policy.parameters(), strict=True
            )
            weight = max((a - b).abs().max().item() for a, b in params)
            policy = (log_pi[name] - log_pi["SB3"]).abs().max().item()
            cells.append(f"{weight:.1e}; {policy:.1e}")
        lines.append(f"| {index + 1} | {cells[0]} | {cells[1]} |")
    return lines


def main() -> None:
    """Train both engines on every seed, test, print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--seeds", type=int, default=8, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=32_768)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--drift", action="store_true", help="only the rounding calibration")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.drift:
        text = "\n".join(drift(args.env, args.steps // 2048))
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n")
        return
    final = {e: [] for e in ENGINES}
    area = {e: [] for e in ENGINES}
    cpu = {e: 0.0 for e in ENGINES}
    same = []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
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
        f"{args.env}, seeds {seeds.start}-{seeds.stop - 1}, {args.steps} steps per engine, "
        "agents/ppo.toml "
        f"(n_envs 1, 1 torch thread); CPU seconds: SB3 {cpu['PPO']:.0f}, FastPPO "
        f"{cpu['FastPPO']:.0f}",
        "",
    ]
    lines += curve_table(
        ("SB3 PPO", "FastPPO"), final["PPO"], final["FastPPO"], area["PPO"], area["FastPPO"], same
    )
    emit(lines, args.out, __doc__)


if __name__ == "__main__":
    main()
