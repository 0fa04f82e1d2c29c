"""One deterministic episode of a run's final policy at given frictions: return and speed.

What an agent does with a physics, in numbers: the episode's return, its mean and largest
forward velocity (HalfCheetah's ``x_velocity``) and the torso's angle (about 0 upright, about pi
on its back). The friction is written to every geom's sliding friction, as the slippery presets
do, on the run's base env without the nonstationary wrapper.

    .venv/bin/python -m bench.rollout \
        runs/study-800k/study-slippery-cheetah__ppo__s1 --friction 0.036 0.38
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from rl_plasticity.specs import algorithm_class, load_env_spec


def rollout(run: Path, friction: float, seed: int = 0) -> dict[str, float]:
    """Return, mean and largest forward velocity, and torso angle of one deterministic episode."""
    config = json.loads((run / "config.json").read_text())
    model = algorithm_class(config["agent"]["algorithm"]).load(
        run / "final_model.zip", device="cpu"
    )
    env = gym.make(load_env_spec(config["env"]["path"]).env_id)
    env.unwrapped.model.geom_friction[:, 0] = friction
    obs, _ = env.reset(seed=seed)
    total, velocity, angle = 0.0, [], []
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        velocity.append(info["x_velocity"])
        angle.append(float(env.unwrapped.data.qpos[2]))
        done = terminated or truncated
    env.close()
    return {
        "return": total,
        "mean_velocity": float(np.mean(velocity)),
        "max_velocity": float(np.max(velocity)),
        "mean_angle": float(np.mean(angle)),
    }


def main() -> None:
    """Print one line per friction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with final_model.zip")
    parser.add_argument("--friction", type=float, nargs="+", required=True)
    args = parser.parse_args()
    for friction in args.friction:
        r = rollout(args.run, friction)
        print(
            f"friction {friction}: return {r['return']:.0f}, forward velocity mean"
            f" {r['mean_velocity']:.1f} m/s (max {r['max_velocity']:.1f}),"
            f" torso angle mean {r['mean_angle']:.2f} rad"
        )


if __name__ == "__main__":
    main()
