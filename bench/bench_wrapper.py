"""Steps per second of NonstationaryWrapper against the raw env, side by side in one process.

For each env, a raw ``gymnasium.make(env_id)`` and a wrapped one (piecewise friction on every geom,
cycling between 1x and 0.999x every 10,000 steps at episode end, so changes happen during the
measurement while the physics, and hence MuJoCo's own cost, stay the raw env's) step the
same pre-drawn random actions, resetting at episode ends, taking turns every 500 steps. The
result is the median over all adjacent chunk pairs of the ratio wrapped / raw steps per second.
The wrapper's own cost per step is also measured on an env whose step does nothing.

    .venv/bin/python -m bench.bench_wrapper [--steps 10000] [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper

ENVS = ("HalfCheetah-v5", "Ant-v5")
# MuJoCo's own step cost depends on the friction (contacts, solver iterations): a wrapped env
# with friction 0.05 is not comparable with a raw one at 1.0. So the benchmark's schedule alternates
# between 1x and 0.999x the env's own friction: the physics stay those of the raw env while the
# wrapper still writes every geom's friction at each change.
CONFIG = {
    "apply_at": "episode_end",
    "drift": [
        {
            "parameter": "friction",
            "mode": "scale",
            "schedule": {
                "kind": "piecewise",
                "every": 10_000,
                "sample": "cycle",
                "values": [1.0, 0.999],
            },
        }
    ],
}


def _run(env: gym.Env, actions: np.ndarray) -> tuple[float, float]:
    """Step ``env`` through ``actions`` (resetting at episode ends).

    :return: (wall-clock seconds, CPU seconds of this process)
    """
    step = env.step
    wall, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(env_id: str, steps: int, repeats: int, chunk: int = 500) -> dict:
    """Raw and wrapped steps/s, interleaved in chunks of ``chunk`` steps.

    Raw and wrapped take turns every ``chunk`` steps (which goes first alternates), so both see
    the same machine load. Ratios are medians over all adjacent (raw, wrapped) chunk pairs of
    wrapped steps/s over raw steps/s, by wall clock and by this process's CPU time (which a busy
    shared machine disturbs less); a burst of load from other jobs spoils a few pairs, not the
    median. Throughputs are medians over repeats of ``steps`` steps each.
    """
    raw = gym.make(env_id)
    wrapped = NonstationaryWrapper(gym.make(env_id), CONFIG)
    rng = np.random.default_rng(0)
    space = raw.action_space
    actions = rng.uniform(space.low, space.high, size=(chunk, *space.shape)).astype(space.dtype)
    for env in (raw, wrapped):
        env.reset(seed=0)
        _run(env, actions)  # warm up
    raw_sps, wrapped_sps, wall_ratios, cpu_ratios = [], [], [], []
    for _ in range(repeats):
        seconds = {"raw": 0.0, "wrapped": 0.0}
        for k in range(steps // chunk):
            pair = (("raw", raw), ("wrapped", wrapped))
            took = {name: _run(env, actions) for name, env in (pair if k % 2 == 0 else pair[::-1])}
            wall_ratios.append(took["raw"][0] / took["wrapped"][0])
            cpu_ratios.append(took["raw"][1] / took["wrapped"][1])
            for name in took:
                seconds[name] += took[name][0]
        n = (steps // chunk) * chunk
        raw_sps.append(n / seconds["raw"])
        wrapped_sps.append(n / seconds["wrapped"])
    return {
        "env": env_id,
        "raw": statistics.median(raw_sps),
        "wrapped": statistics.median(wrapped_sps),
        "ratio": statistics.median(wall_ratios),
        "quartiles": statistics.quantiles(wall_ratios, n=4),
        "cpu_ratio": statistics.median(cpu_ratios),
        "cpu_quartiles": statistics.quantiles(cpu_ratios, n=4),
        "pairs": len(wall_ratios),
        "phase": wrapped.context["phase"],
    }


class _StubEnv(gym.Env):
    """An env whose step does nothing, holding a real MuJoCo model for the setters."""

    def __init__(self, env_id: str) -> None:
        self.model = gym.make(env_id).unwrapped.model
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (17,))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (6,))
        self._obs = np.zeros(17)

    def step(self, action):
        return self._obs, 0.0, False, False, {}

    def reset(self, *, seed=None, options=None):
        return self._obs, {}


def wrapper_cost_us(steps: int = 200_000) -> float:
    """The wrapper's own time per step in microseconds: wrapped stub minus bare stub."""
    bare, wrapped = (
        _StubEnv("HalfCheetah-v5"),
        NonstationaryWrapper(_StubEnv("HalfCheetah-v5"), CONFIG),
    )
    wrapped.reset()
    actions = np.zeros((steps, 6))
    costs = []
    for _ in range(5):
        costs.append((_run(wrapped, actions)[1] - _run(bare, actions)[1]) / steps * 1e6)
    return statistics.median(costs)


def _quartiles(q: list[float]) -> str:
    return f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="steps per env per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (medians are reported)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/wrapper.md"))
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = []
    for env_id in ENVS:
        r = measure(env_id, args.steps, args.repeats)
        print(
            f"{env_id}: raw {r['raw']:,.0f} steps/s, wrapped {r['wrapped']:,.0f} steps/s, "
            f"wrapped/raw {r['ratio']:.3f} by wall clock (quartiles {_quartiles(r['quartiles'])}), "
            f"{r['cpu_ratio']:.3f} by CPU time (quartiles {_quartiles(r['cpu_quartiles'])}), "
            f"{r['pairs']} chunk pairs",
            flush=True,
        )
        rows.append(r)
    cost = wrapper_cost_us()
    print(f"wrapper's own cost: {cost:.2f} us per step", flush=True)
    command = " ".join(["python -m bench.bench_wrapper", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# NonstationaryWrapper overhead",
        "",
        f"Command: `.venv/bin/{command}`  ",
        f"Date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other jobs (1-minute load average {load:.1f} at the "
        f"start), Python {platform.python_version()}.",
        "",
        "Raw `gymnasium.make(env_id)` against the same wrapped in `NonstationaryWrapper` "
        "(friction on every geom, piecewise, cycling between 1x and 0.999x the env's own every "
        "10,000 steps at episode end: the model is written at each change while the physics, and "
        "so MuJoCo's own step cost, which depends on friction through the contacts, stay those of "
        "the raw env). Random actions, resets at episode ends. Raw and wrapped take turns every "
        f"500 steps, {args.steps:,} steps each per repeat, {args.repeats} repeats. Steps/s: "
        "medians over repeats (wall clock). Ratios: medians over all adjacent (raw, wrapped) "
        "chunk pairs, by wall clock and by the process's CPU time (less disturbed by other jobs "
        "on the shared cores).",
        "",
        "| env | raw steps/s | wrapped steps/s | wrapped / raw (wall) | wrapped / raw (CPU) "
        "| changes applied |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['raw']:,.0f} | {r['wrapped']:,.0f} | {r['ratio']:.3f} "
            f"| {r['cpu_ratio']:.3f} | {r['phase']} |"
        )
    lines += [
        "",
        "Quartiles (25% / 50% / 75%) of the per-pair ratios, wall clock; CPU time:",
        "",
        *(
            f"- {r['env']}: {_quartiles(r['quartiles'])}; {_quartiles(r['cpu_quartiles'])} "
            f"({r['pairs']} pairs)"
            for r in rows
        ),
        "",
        f"The wrapper's own cost, measured on an env whose step does nothing: {cost:.2f} us of CPU "
        "per step (median of 5 runs of 200,000 steps).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
