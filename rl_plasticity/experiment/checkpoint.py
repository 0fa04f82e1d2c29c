"""Checkpoints: what a resume needs, saved atomically between rounds of training, and put back.

A checkpoint ``checkpoints/step_<12 digits>/`` holds ``model.zip`` (the model with its optimizer,
``_last_obs`` and episode starts), ``replay_buffer.pkl`` (off-policy algorithms) and ``state.pt``:
the plasticity method's and the metrics callback's states, the non-finite guard's schedule, the
logger's values not yet written, the RNG states (torch, cuda, numpy, python), every sub-env's
:meth:`ResumableEnv.get_run_state` and the timestep. The format is read back by :func:`restore`
and :class:`Restorer`; runs checkpointed before ``env`` was saved resume with a fresh episode.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rl_plasticity.experiment.recording import NonFiniteGuard
from rl_plasticity.experiment.rundir import checkpoint_step, checkpoints, cut_csvs
from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper

#: Per wrapper class, the attributes that hold its part of an episode in progress.
_WRAPPER_STATE: dict[type, tuple[str, ...]] = {
    Monitor: (
        "rewards", "needs_reset", "episode_returns", "episode_lengths", "episode_times",
        "total_steps", "current_reset_info",
    ),
    TimeLimit: ("_elapsed_steps",),
    OrderEnforcing: ("_has_reset",),
    PassiveEnvChecker: (
        "checked_reset", "checked_step", "checked_render", "checked_data_reuse", "_previous_data",
    ),
}  # fmt: skip


def _wrapper_state_names(layer: Any) -> tuple[str, ...]:
    """The state attributes of a wrapper, found by its class or the nearest base class in the
    table (RL Zoo, once imported, replaces gymnasium's TimeLimit by a subclass)."""
    for cls in type(layer).__mro__:
        if cls in _WRAPPER_STATE:
            return _WRAPPER_STATE[cls]
    return ()


class ResumableEnv(gym.Wrapper):
    """The outermost wrapper of a training sub-env: its whole state, to checkpoint and restore.

    The state is the MuJoCo ``mjData`` (positions, velocities, actuator activations, time, the
    solver's warm start and the derived quantities the next reward reads), the base env's
    ``np_random``, the episode counters of :class:`Monitor`, ``TimeLimit``, ``OrderEnforcing`` and
    ``PassiveEnvChecker``, and the :class:`NonstationaryWrapper`'s schedule position and physics.
    Other wrappers are not known to hold state.

    :param env: the sub-env
    :param ignore_signals: ignore SIGINT and SIGTERM (in a SubprocVecEnv worker: the training
        process decides when to stop, and closes the worker)
    """

    def __init__(self, env: gym.Env, ignore_signals: bool = False) -> None:
        super().__init__(env)
        if ignore_signals:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _layers(self) -> Iterator[gym.Env]:
        layer = self.env
        while isinstance(layer, gym.Wrapper):
            yield layer
            layer = layer.env

    def get_run_state(self) -> dict[str, Any]:
        """Everything the sub-env's future steps depend on (picklable)."""
        layers = []
        for layer in self._layers():
            if isinstance(layer, NonstationaryWrapper):
                layers.append(layer.state_dict())
            else:
                names = _wrapper_state_names(layer)
                layers.append({n: copy.deepcopy(getattr(layer, n)) for n in names})
        base = self.env.unwrapped
        data = getattr(base, "data", None)
        return {
            "layers": layers,
            "np_random": base.np_random.bit_generator.state,
            "np_random_seed": base.np_random_seed,
            "mujoco_data": copy.copy(data) if data is not None else None,
        }

    def set_run_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_run_state` into a sub-env built from the same specs.

        :param state: from :meth:`get_run_state`
        """
        import mujoco

        for layer, saved in zip(self._layers(), state["layers"], strict=True):
            if isinstance(layer, NonstationaryWrapper):
                layer.load_state_dict(saved)
            else:
                for name, value in saved.items():
                    setattr(layer, name, copy.deepcopy(value))
        base = self.env.unwrapped
        base.np_random.bit_generator.state = state["np_random"]
        base._np_random_seed = state["np_random_seed"]
        if state["mujoco_data"] is not None:
            mujoco.mj_copyData(base.data, base.model, state["mujoco_data"])


class Checkpointer(BaseCallback):
    """Save everything a resume needs, atomically; stop after a checkpoint when asked to.

    A checkpoint is taken at the start of a rollout (after the previous round of training), when
    ``num_timesteps`` has reached the next multiple of ``every``, when ``minutes`` have passed
    since the last one, or when :attr:`stop_signal` is set (by a signal handler): then training
    stops right after it (``_on_step`` returns False before anything of the new rollout is kept).
    It must be the first callback, so that it saves before the others act on the new rollout. It
    holds the model (with its optimizer, ``_last_obs`` and episode starts), the method's and the
    metrics callback's states, the logger's values not yet written, the RNG states, every
    sub-env's :meth:`ResumableEnv.get_run_state` and, for off-policy algorithms, the replay
    buffer.

    :param directory: the run's ``checkpoints/`` folder
    :param every: steps between checkpoints
    :param method: the plasticity method callback whose state is saved, if any
    :param keep: how many recent checkpoints to keep
    :param metrics: the PlasticityMetrics callback whose state is saved, if any
    :param guard: the NonFiniteGuard whose schedule is saved, if any
    :param minutes: also checkpoint when this many minutes have passed since the last one
    """

    def __init__(
        self,
        directory: Path,
        every: int,
        method: Any = None,
        keep: int = 2,
        *,
        metrics: Any = None,
        guard: NonFiniteGuard | None = None,
        minutes: float | None = None,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.every = every
        self.method = method
        self.keep = keep
        self.metrics = metrics
        self.guard = guard
        self.minutes = minutes
        #: Set to a signal number to checkpoint and stop at the next rollout start.
        self.stop_signal: int | None = None
        #: The step training stopped at after a requested stop (None: it did not).
        self.stopped_at: int | None = None
        self._next = every
        self._saved_at = time.monotonic()

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every
        self._saved_at = time.monotonic()

    def _on_rollout_start(self) -> None:
        timed = self.minutes is not None and time.monotonic() - self._saved_at >= self.minutes * 60
        if self.stop_signal is not None or self.num_timesteps >= self._next or timed:
            self.save()
            self._next = (self.num_timesteps // self.every + 1) * self.every
        if self.stop_signal is not None:
            self.stopped_at = self.num_timesteps

    def _on_step(self) -> bool:
        return self.stopped_at is None

    def save(self) -> Path:
        """Write a checkpoint for the current step and return its folder."""
        step = self.num_timesteps
        final = self.directory / f"step_{step:012d}"
        tmp = self.directory / f".tmp_step_{step:012d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save(tmp / "model.zip")
        if isinstance(self.model, OffPolicyAlgorithm):
            self.model.save_replay_buffer(tmp / "replay_buffer.pkl")
        logger = self.model.logger
        torch.save(
            {
                "method": self.method.state_dict() if self.method is not None else None,
                "metrics": self.metrics.state_dict() if self.metrics is not None else None,
                "guard": self.guard.state_dict() if self.guard is not None else None,
                "logger": {
                    "values": dict(logger.name_to_value),
                    "counts": dict(logger.name_to_count),
                    "excluded": dict(logger.name_to_excluded),
                },
                "env": self.model.get_env().env_method("get_run_state"),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "random": random.getstate(),
                "timestep": step,
            },
            tmp / "state.pt",
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoints(self.directory)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        self._saved_at = time.monotonic()
        return final


class Restorer(BaseCallback):
    """Put a checkpoint's callback states and RNG states back once training has started.

    The last callback: its ``_on_training_start`` runs after every other callback has attached,
    and restores the RNG states last, so nothing drawn while attaching shifts them.

    :param state: the checkpoint's ``state.pt``
    :param metrics: the PlasticityMetrics callback, if any
    :param guard: the NonFiniteGuard, if any
    """

    def __init__(self, state: dict[str, Any], metrics: Any = None, guard: Any = None) -> None:
        super().__init__()
        self.state = state
        self.metrics = metrics
        self.guard = guard

    def _on_training_start(self) -> None:
        state = self.state
        if self.metrics is not None and state.get("metrics") is not None:
            self.metrics.load_state_dict(state["metrics"])
        if self.guard is not None and state.get("guard") is not None:
            self.guard.load_state_dict(state["guard"])
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(state["numpy"])
        random.setstate(state["random"])

    def _on_step(self) -> bool:
        return True


def load_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's ``state.pt``.

    :param folder: the checkpoint folder
    """
    return torch.load(folder / "state.pt", weights_only=False)


def restore(
    model: BaseAlgorithm,
    vec_env: VecEnv,
    folder: Path,
    state: dict[str, Any],
    method: Any,
    run_path: Path,
) -> None:
    """Put a checkpoint back into a loaded model before training goes on: the method's state,
    the replay buffer, the run's CSVs cut back to the checkpoint, and (for a checkpoint with the
    env states) every sub-env's state and the logger's values not yet written. The callbacks'
    and RNG states follow once training starts (:class:`Restorer`).

    :param model: the model loaded from the checkpoint, with the run's logger
    :param vec_env: the training env, built from the same specs
    :param folder: the checkpoint folder
    :param state: its ``state.pt``
    :param method: the plasticity method callback, if any
    :param run_path: the run directory
    """
    if method is not None and state["method"] is not None:
        method.load_state_dict(state["method"])
    if isinstance(model, OffPolicyAlgorithm):
        model.load_replay_buffer(folder / "replay_buffer.pkl")
    cut_csvs(run_path, checkpoint_step(folder))
    if "env" in state:
        for i, env_state in enumerate(state["env"]):
            vec_env.env_method("set_run_state", env_state, indices=[i])
        model.logger.name_to_value.update(state["logger"]["values"])
        model.logger.name_to_count.update(state["logger"]["counts"])
        model.logger.name_to_excluded.update(state["logger"]["excluded"])
