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

The study's regime (issue 32): ``--agent fric-ppo-cbp --callbacks`` trains the friction study's
base agent with CBP (64x64, 4 envs, 320 minibatch updates of 64 per 2,048 steps) with its method
and metrics callback attached to every run and member (the population's update batched, methods
and metrics on member stacks); the goal is 3x separate FastPPO runs and 4x SB3 per core:

    .venv/bin/python -m bench.bench_population --agent fric-ppo-cbp --callbacks --env Hopper-v5 \\
        --members 6 --steps 20480 --repeats 3 --out bench/results/population_study_speed.md

Equivalence (``--equivalence``). For each seed, the single FastPPO run (``rlp train``'s model)
and the same seed as a member of a population (all seeds in one population) train ``--steps``
steps on a stationary env; every episode's return is recorded. Per run: the final return
(episodes ending in the last quarter) and the mean return over the run; the two samples are
compared as in ``bench.engine_equivalence`` (Mann-Whitney U, permutation test on the difference
of means, paired Wilcoxon: the two runs of a seed start from the same weights and env state).

    .venv/bin/python -m bench.bench_population --equivalence --env HalfCheetah-v5 --seeds 8 \\
        --steps 32768 --out bench/results/population_equivalence.md

With ``--agent`` and ``--callbacks``, each run and member trains with the agent's method and the
metrics callback, and the header counts the units the method replaced (issue 32: the friction
study's base agent and its CBP agent, on stacks; 163,840 steps are 25,600 updates, past CBP's
maturity of 10,000):

    .venv/bin/python -m bench.bench_population --equivalence --agent fric-ppo-cbp --callbacks \\
        --env Hopper-v5 --seeds 10 --steps 163840 \\
        --out bench/results/population_equivalence_fric-ppo-cbp.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from bench.bench_engine import matmul_rate, raw_env_rate
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


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every variant trains: an agent spec (by name) on a stationary env.

    :param agent: the agent spec's name (``ppo``: the paper's; ``fric-ppo-cbp``: the study's base
        agent with CBP)
    :param callbacks: attach the spec's plasticity method and metrics callback (as ``rlp train``
        does, without a CSV), to SB3 and FastPPO runs and to each member alike
    """

    agent: str = "ppo"
    callbacks: bool = False

    def model(self, env_id: str, seed: int, algorithm: str = "FastPPO"):
        """The agent with ``algorithm`` on a stationary ``env_id``, as ``rlp train`` builds it."""
        spec = dataclasses.replace(load_agent_spec(self.agent), algorithm=algorithm)
        env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
        return build_model(spec, make_vec_env(env, spec), seed, "cpu")

    def fresh_callbacks(self) -> list:
        """A fresh method callback and metrics callback for one run (none without callbacks)."""
        if not self.callbacks:
            return []
        spec = load_agent_spec(self.agent)
        made = (spec.make_method_callback(), spec.make_metrics(csv_path=None))
        return [c for c in made if c is not None]


def model(env_id: str, seed: int, algorithm: str = "FastPPO"):
    """The shipped ``ppo`` agent with ``algorithm`` on a stationary ``env_id``."""
    return Setup().model(env_id, seed, algorithm)


def population_rate(
    setup: Setup, env_id: str, members: int, steps: int, seed: int, per_member: bool = False
) -> float:
    """Aggregate steps per CPU second of one population, after a warm-up rollout.

    :param per_member: hook every member's optimizer (a no-op hook, of no plasticity method or
        metrics callback), so the updates run per member and only the rollouts' policy calls are
        batched
    """
    population = PopulationPPO.build(lambda s: setup.model(env_id, s), range(seed, seed + members))
    if per_member:
        for member in population.members:
            member.policy.optimizer.register_step_post_hook(lambda *_: None)
    callbacks = [setup.fresh_callbacks() for _ in range(members)]
    warm_up = population.members[0].n_steps * population.members[0].n_envs
    population.learn(warm_up, callback=callbacks)
    before = sum(m.num_timesteps for m in population.members)
    start = time.process_time()
    population.learn(steps, callback=callbacks, reset_num_timesteps=False)
    seconds = time.process_time() - start
    assert population.update_mode.startswith("per member" if per_member else "batched"), (
        population.update_mode
    )
    return (sum(m.num_timesteps for m in population.members) - before) / seconds


def singles_rate(
    setup: Setup, env_id: str, algorithm: str, members: int, steps: int, seed: int
) -> float:
    """Aggregate steps per CPU second of ``members`` runs one after another (warm-up each)."""
    seconds, done = 0.0, 0
    for s in range(seed, seed + members):
        single = setup.model(env_id, s, algorithm)
        callbacks = setup.fresh_callbacks()
        warm_up = single.n_steps * single.n_envs
        single.learn(warm_up, callback=callbacks)
        start = time.process_time()
        single.learn(steps, callback=callbacks, reset_num_timesteps=False)
        seconds += time.process_time() - start
        done += single.num_timesteps - warm_up
    return done / seconds


def update_floor_per_step(setup: Setup, env_id: str, flops: float) -> float:
    """Seconds of the update's FLOP floor per env step for this agent: 6 FLOPs per parameter and
    sample (forward and backward) for every minibatch sample of every epoch."""
    built = setup.model(env_id, 0)
    params = sum(p.numel() for p in built.policy.parameters())
    return 6 * params * built.n_epochs / flops


def speed(setup: Setup, env_ids: list[str], steps: int, repeats: int, members: int) -> list[str]:
    """The speed table and the machine's limit beside it."""
    flops = matmul_rate()
    load = os.getloadavg()[0]
    watched = "its method and metrics callback" if setup.callbacks else "no callbacks"
    lines = [
        f"Agent {setup.agent} ({watched}). {members} seeds x {steps} timed steps per variant and "
        f"repeat ({repeats} repeats, interleaved), 1 torch thread, aggregate env steps per CPU "
        f"second (median); matmul {flops / 1e9:.0f} GFLOP/s; load average {load:.2f} on "
        f"{os.cpu_count()} CPUs at the start",
        "",
        "| env | variant | steps/s per core | ratio to SB3 | per repeat | env limit | of limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id in env_ids:

        def measure(variant: str, repeat: int, env_id: str = env_id) -> float:
            seed = 100 * repeat
            population, per_member = (v.format(n=members) for v in (POPULATION, PER_MEMBER))
            if variant in (population, per_member):
                return population_rate(setup, env_id, members, steps, seed, variant == per_member)
            algorithm = "PPO" if variant == SB3.format(n=members) else "FastPPO"
            return singles_rate(setup, env_id, algorithm, members, steps, seed)

        rates = interleaved(
            [v.format(n=members) for v in VARIANTS], repeats, measure, unit=f"steps/s {env_id}"
        )
        raw = raw_env_rate(env_id)
        limit = 1 / (1 / raw + update_floor_per_step(setup, env_id, flops))
        for variant, (median, ratio) in medians(rates).items():
            each = ", ".join(f"{r:.0f}" for r in rates[variant])
            lines.append(
                f"| {env_id} | {variant} | {median:.0f} | {ratio:.2f} | {each} | {limit:.0f} | "
                f"{median / limit:.2f} |"
            )
    lines += [
        "",
        "env limit: 1 / (raw env step + FLOP floor of the update per step: 6 x parameters x "
        "epochs FLOPs at the measured matmul rate), inference taken as free (bench.bench_engine's "
        "limit, for this agent, measured here in the same process).",
    ]
    return lines


def equivalence(setup: Setup, env_id: str, seeds: int, steps: int) -> list[str]:
    """Learning curves of single FastPPO runs against the same seeds in one population, each run
    and member with the setup's callbacks (its method and metrics callback, or none)."""
    singles, members, replaced = {}, {}, {"single": 0, "member": 0}
    start = time.process_time()
    for seed in range(seeds):
        single = setup.model(env_id, seed)
        episodes = Episodes()
        callbacks = setup.fresh_callbacks()
        single.learn(steps, callback=[episodes, *callbacks])
        singles[seed] = episodes.episodes
        replaced["single"] += units_replaced(callbacks)
    single_seconds = time.process_time() - start
    start = time.process_time()
    population = PopulationPPO.build(lambda s: setup.model(env_id, s), range(seeds))
    recorders = [Episodes() for _ in range(seeds)]
    callbacks = [setup.fresh_callbacks() for _ in range(seeds)]
    population.learn(steps, callback=[[r, *c] for r, c in zip(recorders, callbacks, strict=True)])
    population_seconds = time.process_time() - start
    replaced["member"] = sum(units_replaced(c) for c in callbacks)
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
    watched = "its method and metrics callback" if setup.callbacks else "no callbacks"
    lines = [
        f"{env_id}, seeds 0-{seeds - 1}, {steps} steps per run, agents/{setup.agent}.toml with "
        f"{watched} (1 torch thread; the population's update: {population.update_mode}); "
        f"CPU seconds: {seeds} single FastPPO runs {single_seconds:.0f}, one population of "
        f"{seeds} {population_seconds:.0f}",
        "",
    ]
    if setup.callbacks:
        lines[0] += (
            f"; units replaced by the method, all seeds: single runs {replaced['single']}, "
            f"members {replaced['member']}"
        )
    return lines + curve_table(
        ("single runs", "population members"),
        final["single"],
        final["member"],
        area["single"],
        area["member"],
        same,
    )


def units_replaced(callbacks: list) -> int:
    """Units a run's method replaced on all its networks (continual backprop's count, kept by its
    callback after training; 0 for methods that replace none)."""
    return sum(sum(getattr(c, "replaced_total", {}).values()) for c in callbacks)


def main() -> None:
    """Run the speed table, or with ``--equivalence`` the learning-curve test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["HalfCheetah-v5", "Ant-v5"])
    parser.add_argument("--steps", type=int, default=4096, help="timed steps per seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--agent", default="ppo", help="the agent spec every variant trains")
    parser.add_argument(
        "--callbacks", action="store_true", help="attach the spec's method and metrics callback"
    )
    parser.add_argument("--equivalence", action="store_true", help="the learning-curve test")
    parser.add_argument("--seeds", type=int, default=8, help="--equivalence: seeds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.equivalence:
        lines = equivalence(Setup(args.agent, args.callbacks), args.env[0], args.seeds, args.steps)
    else:
        setup = Setup(args.agent, args.callbacks)
        lines = speed(setup, args.env, args.steps, args.repeats, args.members)
    emit(lines, args.out, __doc__)


if __name__ == "__main__":
    main()
