"""Speed of the FastPPO engine against SB3's PPO, the machine's limit, and each plasticity spec.

Everything runs in one process, one torch thread, interleaved (SB3, engine, SB3, engine, ...), each
repeat a fresh model built from ``agents/ppo.toml`` (the paper's settings, n_envs 1) as
``rlp train`` builds it: a warm-up of one rollout (untimed), then ``--steps`` timed steps.
Reported: median environment steps per CPU second (CPU time, because the machine is shared) and
the ratio to SB3's. Beside them, the machine's limit for this PPO:

* the raw environment: ``env.unwrapped.step`` with random actions, steps per CPU second;
* the FLOP floor of the update: 6 x batch x parameters per minibatch (forward 2, backward 4) at
  the single-thread matmul rate measured here (a 128 x 256 x 256 product), spread over the
  rollout's steps;
* the limit: 1 / (raw env step + floor update per step), inference taken as free.

With ``--specs``, every shipped PPO agent spec (``ppo-*``, plasticity method and metrics callback
as the spec sets them) is timed on the engine against the plain engine (the ``ppo`` spec without
callbacks), interleaved the same way. With ``--n-envs``, the engine also runs with that many
environments in one DummyVecEnv and ``n_steps = 2048 / n_envs`` (the same samples per update).

    .venv/bin/python -m bench.bench_engine --env HalfCheetah-v5 Ant-v5 --steps 8192 --repeats 3 \\
        --n-envs 8 --specs --out bench/results/engine.md
    .venv/bin/python -m bench.bench_engine --env HalfCheetah-v5 --steps 8192 --profile
    .venv/bin/python -m bench.bench_engine --only-specs ppo ppo-cbp ... --repeats 5 \\
        --out bench/results/engine_specs.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from bench.common import emit, interleaved, medians
from rl_plasticity.experiment.build import build_model, make_env_fn, make_vec_env
from rl_plasticity.specs import AgentSpec, EnvSpec, available_specs, load_agent_spec

SB3 = "SB3 PPO"
ENGINE = "FastPPO"
PLAIN = "ppo, no callbacks"


def agent(name: str = "ppo", algorithm: str = "FastPPO", n_envs: int = 1) -> AgentSpec:
    """The shipped spec ``name`` with ``algorithm`` and ``n_envs`` (n_steps = 2048 / n_envs)."""
    spec = load_agent_spec(name)
    hyper = dict(spec.hyperparameters)
    hyper["n_steps"] = hyper["n_steps"] // n_envs
    return dataclasses.replace(
        spec, algorithm=algorithm, n_envs=n_envs, vec_env="dummy", hyperparameters=hyper
    )


def steps_per_cpu_second(
    spec: AgentSpec, env_id: str, steps: int, seed: int, callbacks: bool = False
) -> float:
    """Steps per CPU second of ``steps`` steps after a one-rollout warm-up, fresh model."""
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    model = build_model(spec, make_vec_env(env, spec), seed, "cpu")
    used: list[BaseCallback] = []
    if callbacks:
        used = [c for c in (spec.make_method_callback(), spec.make_metrics(None)) if c is not None]
    model.learn(model.n_steps * spec.n_envs, callback=used)
    start = time.process_time()
    model.learn(steps, callback=used, reset_num_timesteps=False)
    return steps / (time.process_time() - start)


def raw_env_rate(env_id: str, steps: int = 5000) -> float:
    """Steps per CPU second of the bare MuJoCo env (``unwrapped.step``), random actions."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *env.action_space.shape))
    start = time.process_time()
    for action in actions:
        _, _, terminated, _, _ = env.step(action.astype(np.float32))
        if terminated:
            env.reset()
    return steps / (time.process_time() - start)


def wrapped_env_rate(env_id: str, steps: int = 5000) -> float:
    """Steps per CPU second of the env as a run sees it (gymnasium's wrappers and Monitor)."""
    env_spec = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    env = make_env_fn(env_spec, 1, 0)()
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *env.action_space.shape))
    start = time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action.astype(np.float32))
        if terminated or truncated:
            env.reset()
    return steps / (time.process_time() - start)


def matmul_rate(repeats: int = 2000) -> float:
    """FLOP per CPU second of a 128 x 256 x 256 float32 matrix product, one thread."""
    a, b = torch.randn(128, 256), torch.randn(256, 256)
    for _ in range(50):
        a @ b
    start = time.process_time()
    for _ in range(repeats):
        a @ b
    return 2 * 128 * 256 * 256 * repeats / (time.process_time() - start)


def floor_update_per_step(env_id: str, flops: float) -> tuple[float, float]:
    """The FLOP floor of one minibatch update and of the update time per env step (seconds)."""
    spec = agent()
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    model = build_model(spec, make_vec_env(env, spec), 0, "cpu")
    params = sum(p.numel() for p in model.policy.parameters())
    per_update = 6 * model.batch_size * params / flops
    updates = model.n_epochs * model.n_steps // model.batch_size
    return per_update, per_update * updates / model.n_steps


def load() -> str:
    """The 1-minute load average and the number of CPUs, for the record."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def engine_table(env_ids: list[str], steps: int, repeats: int, n_envs: list[int]) -> list[str]:
    """SB3 against the engine (and the vectorized engine) per env, with the machine's limit."""
    flops = matmul_rate()
    lines = [
        f"{steps} timed steps x {repeats} repeats per variant, interleaved, 1 torch thread, "
        f"median steps per CPU second; matmul {flops / 1e9:.0f} GFLOP/s; {load()} at the start",
        "",
        "| env | variant | steps/s | ratio to SB3 | per repeat |",
        "|---|---|---|---|---|",
    ]
    limits = []
    for env_id in env_ids:
        variants = {SB3: agent(algorithm="PPO"), ENGINE: agent()}
        for n in n_envs:
            variants[f"{ENGINE}, {n} envs (n_steps {2048 // n})"] = agent(n_envs=n)
        rates = interleaved(
            list(variants),
            repeats,
            lambda v, r, env_id=env_id, variants=variants: steps_per_cpu_second(
                variants[v], env_id, steps, r
            ),
            unit="steps/s",
        )
        for variant, (median, ratio) in medians(rates).items():
            each = ", ".join(f"{x:.0f}" for x in rates[variant])
            lines.append(f"| {env_id} | {variant} | {median:.0f} | {ratio:.2f} | {each} |")
        raw, wrapped = raw_env_rate(env_id), wrapped_env_rate(env_id)
        update, update_per_step = floor_update_per_step(env_id, flops)
        limit = 1 / (1 / raw + update_per_step)
        engine = medians(rates)[ENGINE][0]
        limits.append(
            f"| {env_id} | {raw:.0f} | {wrapped:.0f} | {update * 1e3:.2f} ms "
            f"({update_per_step * 1e3:.3f} ms/step) | {limit:.0f} | {engine / limit:.2f} |"
        )
    lines += [
        "",
        "The machine's limit (one core): raw env, env with gymnasium's wrappers and Monitor, "
        "FLOP floor of a minibatch update, and 1 / (raw env step + floor update per step)",
        "",
        "| env | raw env steps/s | wrapped env steps/s | floor update | limit steps/s "
        "| engine / limit |",
        "|---|---|---|---|---|---|",
        *limits,
        "",
        f"{load()} at the end",
    ]
    return lines


def spec_table(env_id: str, steps: int, repeats: int, names: list[str] | None = None) -> list[str]:
    """Shipped PPO specs (``names``, default every one) on the engine, relative to the plain
    engine without callbacks."""
    if not names:
        names = [n for n in available_specs("agents") if n == "ppo" or n.startswith("ppo-")]
    variants = [PLAIN, *names]
    rates = interleaved(
        variants,
        repeats,
        lambda v, r: steps_per_cpu_second(
            agent("ppo" if v == PLAIN else v), env_id, steps, r, callbacks=v != PLAIN
        ),
        unit="steps/s",
    )
    lines = [
        f"{env_id}, engine (FastPPO) for each spec, {steps} timed steps x {repeats} repeats, "
        f"interleaved, median steps per CPU second; {load()} at the end",
        "",
        "| agent spec (method and metrics callback as the spec sets them) | steps/s "
        "| ratio to the plain engine |",
        "|---|---|---|",
    ]
    for variant, (median, ratio) in medians(rates).items():
        lines.append(f"| {variant} | {median:.0f} | {ratio:.3f} |")
    return lines


def profile(env_id: str, steps: int) -> None:
    """Print pyinstrument's profile of ``steps`` steps of SB3's PPO and of the engine, each after
    a one-rollout warm-up (pyinstrument is in the ``dev`` extra)."""
    from pyinstrument import Profiler

    for algorithm in ("PPO", "FastPPO"):
        spec = agent(algorithm=algorithm)
        env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
        model = build_model(spec, make_vec_env(env, spec), 0, "cpu")
        model.learn(model.n_steps)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        model.learn(steps, reset_num_timesteps=False)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=True))


def main() -> None:
    """Measure, print and optionally write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["HalfCheetah-v5", "Ant-v5"])
    parser.add_argument("--steps", type=int, default=8192, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-envs", type=int, nargs="*", default=[], help="vectorized variants")
    parser.add_argument("--specs", action="store_true", help="also every PPO spec on the engine")
    parser.add_argument("--specs-env", default="HalfCheetah-v5")
    parser.add_argument(
        "--only-specs", nargs="+", default=None, help="only the spec table, of these specs"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--profile", action="store_true", help="only print a profile of each")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.profile:
        profile(args.env[0], args.steps)
        return
    if args.only_specs:
        lines = spec_table(args.specs_env, args.steps, args.repeats, args.only_specs)
    else:
        lines = engine_table(args.env, args.steps, args.repeats, args.n_envs)
    if args.specs and not args.only_specs:
        lines += ["", *spec_table(args.specs_env, args.steps, args.repeats)]
    emit(lines, args.out, __doc__)


if __name__ == "__main__":
    main()
