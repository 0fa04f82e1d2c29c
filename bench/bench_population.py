"""Population PPO: speed against 8 FastPPO and 8 SB3 PPO runs, and equivalence to single runs.

Speed. In one process, one torch thread, interleaved (SB3 x 8, FastPPO x 8, population of 8,
then again), each repeat builds fresh models from ``agents/ppo.toml`` (the paper's settings,
n_envs 1) on a stationary env as ``rlp train`` builds them, trains one rollout untimed (warm-up),
then ``--steps`` more per seed (whole rollouts), timed in CPU seconds. Reported: aggregate env
steps per CPU second (the seeds' steps / CPU seconds: per core, since the process uses one),
medians over repeats, ratios to SB3; and beside them the machine's limit for this PPO from
``bench.bench_engine`` (raw env step + FLOP floor of the update per step; inference free). No
callbacks: the population's update runs batched; a fourth variant hooks each member's optimizer
with a no-op (as a plasticity method or the metrics callback does), so its updates run per
member and only its rollouts are batched.

    .venv/bin/python -m bench.bench_population --env HalfCheetah-v5 Ant-v5 --steps 4096 \\
        --repeats 3 --out bench/results/population_ppo_speed.md

Equivalence (``--equivalence``). For each seed, the single FastPPO run (``rlp train``'s model)
and the same seed as a member of a population (all seeds in one population) train ``--steps``
steps on a stationary env; every episode's return is recorded. Per run: the final return
(episodes ending in the last quarter) and the mean return over the run; the two samples are
compared as in ``bench.engine_equivalence`` (Mann-Whitney U, permutation test on the difference
of means, paired Wilcoxon: the two runs of a seed start from the same weights and env state).

    .venv/bin/python -m bench.bench_population --equivalence --env HalfCheetah-v5 --seeds 8 \\
        --steps 32768 --out bench/results/population_equivalence.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from bench.bench_engine import floor_update_per_step, matmul_rate, raw_env_rate
from bench.common import emit, interleaved, medians
from bench.engine_equivalence import Episodes, curve_table, summaries
from rl_plasticity.experiment.build import build_model, make_vec_env
from rl_plasticity.sb3.population_ppo import PopulationPPO
from rl_plasticity.specs import EnvSpec, load_agent_spec

SB3 = "{n} x SB3 PPO"
FAST = "{n} x FastPPO"
POPULATION = "population of {n}"
PER_MEMBER = "population of {n}, updates per member"
VARIANTS = (SB3, FAST, POPULATION, PER_MEMBER)


def model(env_id: str, seed: int, algorithm: str = "FastPPO"):
    """The shipped ``ppo`` agent with ``algorithm`` on a stationary ``env_id``, as ``rlp train``
    builds it."""
    spec = dataclasses.replace(load_agent_spec("ppo"), algorithm=algorithm)
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    return build_model(spec, make_vec_env(env, spec), seed, "cpu")


def population_rate(
    env_id: str, members: int, steps: int, seed: int, per_member: bool = False
) -> float:
    """Aggregate steps per CPU second of one population, after a warm-up rollout.

    :param per_member: hook every member's optimizer (a no-op hook, as a plasticity method or the
        metrics callback would hook it), so the updates run per member and only the rollouts'
        policy calls are batched
    """
    population = PopulationPPO.build(lambda s: model(env_id, s), range(seed, seed + members))
    if per_member:
        for member in population.members:
            member.policy.optimizer.register_step_post_hook(lambda *_: None)
    population.learn(2048)
    before = sum(m.num_timesteps for m in population.members)
    start = time.process_time()
    population.learn(steps, reset_num_timesteps=False)
    seconds = time.process_time() - start
    assert population.update_mode.startswith("per member" if per_member else "batched")
    return (sum(m.num_timesteps for m in population.members) - before) / seconds


def singles_rate(env_id: str, algorithm: str, members: int, steps: int, seed: int) -> float:
    """Aggregate steps per CPU second of ``members`` runs one after another (warm-up each)."""
    seconds, done = 0.0, 0
    for s in range(seed, seed + members):
        single = model(env_id, s, algorithm)
        single.learn(2048)
        start = time.process_time()
        single.learn(steps, reset_num_timesteps=False)
        seconds += time.process_time() - start
        done += single.num_timesteps - 2048
    return done / seconds


def speed(env_ids: list[str], steps: int, repeats: int, members: int) -> list[str]:
    """The speed table and the machine's limit beside it."""
    flops = matmul_rate()
    load = os.getloadavg()[0]
    lines = [
        f"{members} seeds x {steps} timed steps per variant and repeat ({repeats} repeats, "
        "interleaved), 1 torch thread, aggregate env steps per CPU second (median); matmul "
        f"{flops / 1e9:.0f} GFLOP/s; load average {load:.2f} on {os.cpu_count()} CPUs at the start",
        "",
        "| env | variant | steps/s per core | ratio to SB3 | per repeat | env limit | of limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id in env_ids:

        def measure(variant: str, repeat: int, env_id: str = env_id) -> float:
            seed = 100 * repeat
            population, per_member = (v.format(n=members) for v in (POPULATION, PER_MEMBER))
            if variant in (population, per_member):
                return population_rate(env_id, members, steps, seed, variant == per_member)
            algorithm = "PPO" if variant == SB3.format(n=members) else "FastPPO"
            return singles_rate(env_id, algorithm, members, steps, seed)

        rates = interleaved(
            [v.format(n=members) for v in VARIANTS], repeats, measure, unit=f"steps/s {env_id}"
        )
        raw = raw_env_rate(env_id)
        _, floor = floor_update_per_step(env_id, flops)  # seconds of update per env step
        limit = 1 / (1 / raw + floor)
        for variant, (median, ratio) in medians(rates).items():
            each = ", ".join(f"{r:.0f}" for r in rates[variant])
            lines.append(
                f"| {env_id} | {variant} | {median:.0f} | {ratio:.2f} | {each} | {limit:.0f} | "
                f"{median / limit:.2f} |"
            )
    lines += [
        "",
        "env limit: 1 / (raw env step + FLOP floor of the update per step), inference taken as "
        "free (bench.bench_engine's limit, measured here in the same process).",
    ]
    return lines


def equivalence(env_id: str, seeds: int, steps: int) -> list[str]:
    """Learning curves of single FastPPO runs against the same seeds in one population."""
    singles, members = {}, {}
    start = time.process_time()
    for seed in range(seeds):
        single = model(env_id, seed)
        episodes = Episodes()
        single.learn(steps, callback=episodes)
        singles[seed] = episodes.episodes
    single_seconds = time.process_time() - start
    start = time.process_time()
    population = PopulationPPO.build(lambda s: model(env_id, s), range(seeds))
    recorders = [Episodes() for _ in range(seeds)]
    population.learn(steps, callback=recorders)
    population_seconds = time.process_time() - start
    for seed, recorder in enumerate(recorders):
        members[seed] = recorder.episodes
    final = {name: [] for name in ("single", "member")}
    area = {name: [] for name in ("single", "member")}
    same = []
    for seed in range(seeds):
        for name, runs in (("single", singles), ("member", members)):
            f, a = summaries(runs[seed], steps)
            final[name].append(f)
            area[name].append(a)
        pairs = zip(singles[seed], members[seed], strict=False)
        same.append(next((i for i, (x, y) in enumerate(pairs) if x != y), len(singles[seed])))
    lines = [
        f"{env_id}, seeds 0-{seeds - 1}, {steps} steps per run, agents/ppo.toml (n_envs 1, 1 torch "
        f"thread), no callbacks (update batched: {population.update_mode}); CPU seconds: "
        f"{seeds} single FastPPO runs {single_seconds:.0f}, one population of {seeds} "
        f"{population_seconds:.0f}",
        "",
    ]
    return lines + curve_table(
        ("single runs", "population members"),
        final["single"],
        final["member"],
        area["single"],
        area["member"],
        same,
    )


def main() -> None:
    """Run the speed table, or with ``--equivalence`` the learning-curve test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["HalfCheetah-v5", "Ant-v5"])
    parser.add_argument("--steps", type=int, default=4096, help="timed steps per seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--equivalence", action="store_true", help="the learning-curve test")
    parser.add_argument("--seeds", type=int, default=8, help="--equivalence: seeds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.equivalence:
        lines = equivalence(args.env[0], args.seeds, args.steps)
    else:
        lines = speed(args.env, args.steps, args.repeats, args.members)
    emit(lines, args.out, __doc__)


if __name__ == "__main__":
    main()
