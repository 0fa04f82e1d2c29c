"""Periodic evaluation: the deterministic policy's return on the current physics and on each earlier
phase's physics (forgetting versus plasticity), written to ``eval.csv``.

A drifting env's physics are a pure function of the global step (see
:mod:`rl_plasticity.nonstationary.schedules`), so an evaluation env is pinned to a phase by
setting its global step to the step the phase started at (and back there after every step, so an
episode never drifts into the next phase). Phases are counted by the piecewise schedules' change
points, as in ``info["context"]["phase"]``; a continuous drift (linear, sinusoid) takes its value
at the pinned step. A stationary env has one phase, the current one.

Evaluation episodes start from fixed seeds (the same at every evaluation), draw nothing from the
training's random streams and run after a rollout, before the update: a run with evaluation trains
exactly as one without it.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary.schedules import Piecewise
from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper
from rl_plasticity.specs import EnvSpec


@dataclass(frozen=True)
class EvalSettings:
    """When and how much to evaluate.

    :param every: evaluate when ``num_timesteps`` crosses a multiple of this (after that rollout)
    :param episodes: episodes per physics evaluated
    :param phases: how many earlier phases to evaluate besides the current one, the most recent
        first (None: all of them)
    """

    every: int
    episodes: int = 5
    phases: int | None = None

    def __post_init__(self) -> None:
        for key, value, low in (("every", self.every, 1), ("episodes", self.episodes, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"eval_{key}", value, f"an integer >= {low}")
        phases = self.phases
        if phases is not None and (isinstance(phases, bool) or not isinstance(phases, int)):
            raise ConfigError("eval_phases", phases, "all, or an integer >= 0")
        if phases is not None and phases < 0:
            raise ConfigError("eval_phases", phases, "all, or an integer >= 0")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for config.json)."""
        return asdict(self)


def phase_starts(schedules: list[Piecewise], step: int) -> list[int]:
    """The first step of every phase up to ``step``: 0, then each distinct change point.

    :param schedules: the piecewise schedules (their ``every`` decides the change points)
    :param step: the current global step
    """
    points = {0}
    for schedule in schedules:
        points.update(range(schedule.every, step + 1, schedule.every))
    return sorted(points)


class EvalCallback(BaseCallback):
    """Evaluate the deterministic policy every ``settings.every`` steps into ``csv_path``.

    One row per physics evaluated: ``timestep`` (the training step), ``target`` (``current`` or
    ``earlier``), ``phase`` (the phase whose physics were used), the context values (the drifting
    parameters), ``return_mean``, ``return_std``, ``length_mean`` and ``episodes``.

    :param env_spec: the training env's spec (the evaluation env is built from it)
    :param settings: cadence, episodes and phases
    :param csv_path: the file to append to (the header is written when it is new)
    :param seed: the run's seed; episode ``i`` of every evaluation starts from the seeds
        ``(seed, i)``
    """

    def __init__(
        self, env_spec: EnvSpec, settings: EvalSettings, csv_path: Path, seed: int = 0
    ) -> None:
        super().__init__()
        self.env_spec = env_spec
        self.settings = settings
        self.csv_path = Path(csv_path)
        self.seed = seed
        self.last_step: int | None = None
        self._env: Any = None
        self._bucket = 0
        ns = env_spec.nonstationary
        drifts = ns.drifts if ns is not None else ()
        self._piecewise = [d.schedule for d in drifts if isinstance(d.schedule, Piecewise)]

    def _on_training_start(self) -> None:
        self._bucket = self.num_timesteps // self.settings.every

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        bucket = self.num_timesteps // self.settings.every
        if bucket > self._bucket:
            self._bucket = bucket
            self.evaluate(self.model, self.num_timesteps)

    def _on_training_end(self) -> None:
        self.close()

    def finish(self, model: BaseAlgorithm) -> None:
        """Evaluate the final model, unless the last evaluation was at its step; then close.

        :param model: the trained model
        """
        if self.last_step != model.num_timesteps:
            self.evaluate(model, model.num_timesteps)
        self.close()

    def close(self) -> None:
        """Close the evaluation env (a later evaluation makes a new one)."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def targets(self, step: int) -> list[tuple[str, int]]:
        """``(target, pinned global step)`` of each physics evaluated at training step ``step``.

        :param step: the training step
        """
        starts = phase_starts(self._piecewise, step) if self._piecewise else [0]
        earlier = starts[:-1]
        if self.settings.phases is not None:
            earlier = earlier[-self.settings.phases :] if self.settings.phases else []
        return [("current", step)] + [("earlier", s) for s in reversed(earlier)]

    def evaluate(self, model: BaseAlgorithm, step: int) -> list[dict[str, Any]]:
        """Evaluate now and append the rows to the CSV.

        :param model: the model whose policy is evaluated
        :param step: the training step (the current physics are those due at it)
        :return: the rows written
        """
        if self._env is None:
            self._env = self.env_spec.make(n_envs=1, start_step=step, seed=self.seed)
        rows = [self._evaluate_at(model, step, target, pin) for target, pin in self.targets(step)]
        self._write(rows)
        self.last_step = step
        return rows

    def _evaluate_at(self, model: BaseAlgorithm, step: int, target: str, pin: int) -> dict:
        env = self._env
        wrapper = env if isinstance(env, NonstationaryWrapper) else None
        returns, lengths = [], []
        context: dict[str, Any] = {"phase": 0}
        for episode in range(self.settings.episodes):
            if wrapper is not None:
                wrapper.set_global_step(pin)
            seed = int(np.random.SeedSequence([self.seed, episode]).generate_state(1)[0])
            obs, info = env.reset(seed=seed)
            context = info.get("context", context)
            total, length, done = 0.0, 0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated
                if wrapper is not None:
                    wrapper.set_global_step(pin)
            returns.append(total)
            lengths.append(length)
        row: dict[str, Any] = {"timestep": step, "target": target, "phase": context["phase"]}
        row |= {k: v for k, v in context.items() if k not in ("phase", "global_step")}
        row |= {
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "length_mean": float(np.mean(lengths)),
            "episodes": len(returns),
        }
        return row

    def _write(self, rows: list[dict[str, Any]]) -> None:
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerows(rows)


def parse_phases(text: str) -> int | None:
    """``all`` (None) or a count of earlier phases, from the command line.

    :param text: ``all`` or an integer >= 0
    :raises ConfigError: for anything else
    """
    if text == "all":
        return None
    if not text.isdigit():
        raise ConfigError("eval_phases", text, "all, or an integer >= 0")
    return int(text)
