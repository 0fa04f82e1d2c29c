"""The wrapper: when to ask the schedules, when to write the physics, where to report the context.

Besides the physics, a drift may permute (and sign-flip) the observation or action vector
(:mod:`.permutation`); the wrapper applies those transforms on every step and reset.

Global step without messages: all sub-envs of a VecEnv step in lockstep, so sub-env ``j`` of
``n_envs`` knows the global step from its own step count alone,
``global_step = start_step + n_envs * steps_taken`` (SB3's ``num_timesteps`` after the same step).
Each sub-env (in any process) and the evaluation env (via :meth:`set_global_step`) therefore
evaluate the same pure schedules at the same step and see the same physics.

Timing: the context reported in a step's ``info`` is the physics that step was simulated with. A
change that becomes due is applied at the next reset (``apply_at = "episode_end"``, the paper's
rule) or before the next step (``"immediate"``). The MuJoCo model is written only when a value
changes: a piecewise schedule at its change points, a linear or sinusoid schedule at most every
``update_every`` steps. On the hot path a step costs one int comparison and one small dict copy.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary.config import NonstationaryConfig, context_keys
from rl_plasticity.nonstationary.permutation import SignedPermutation
from rl_plasticity.nonstationary.physics import make_setter
from rl_plasticity.nonstationary.schedules import Linear, Piecewise, change_count

_NEVER = sys.maxsize


class NonstationaryWrapper(gym.Wrapper):
    """Change a MuJoCo env's physics on schedules of the global step; report them in ``info``.

    Every ``info`` (of ``step`` and ``reset``) carries ``info["context"]``: ``{"phase": int,
    "global_step": int, <parameter>: float, ...}`` (a vector value becomes ``<parameter>_x``,
    ``_y``, ``_z``). ``phase`` counts the piecewise change points at or before the step whose
    values are in effect (0 until the first change; continuous schedules do not change it).

    :param env: a gymnasium MuJoCo env (``env.unwrapped.model`` is written)
    :param config: a :class:`NonstationaryConfig` or its ``[nonstationary]`` table
    :param n_envs: number of sub-envs stepping in lockstep with this one (a VecEnv's ``num_envs``)
    :param start_step: global step of this env's first step (the model's ``num_timesteps`` when
        resuming)
    :param seed: the run's seed, for ``schedule_seed = "run"`` (each seed its own schedule)
    :raises ConfigError: on a bad table, a body or geom name the model does not have, a
        permutation of a space it cannot permute, or ``schedule_seed = "run"`` without ``seed``
    """

    def __init__(
        self,
        env: gym.Env,
        config: NonstationaryConfig | Mapping[str, Any],
        *,
        n_envs: int = 1,
        start_step: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        if not isinstance(config, NonstationaryConfig):
            config = NonstationaryConfig.from_dict(config)
        if config.per_run:
            if seed is None:
                raise ConfigError(
                    "schedule_seed", "run", "needs the run's seed: NonstationaryWrapper(..., seed=)"
                )
            config = config.for_seed(seed)
        if n_envs < 1:
            raise ConfigError("n_envs", n_envs, "an integer >= 1")
        model = getattr(env.unwrapped, "model", None)
        if model is None:
            raise TypeError(f"{env.unwrapped!r} has no MuJoCo model (env.unwrapped.model)")
        self.config = config
        self._setters = []
        self._obs_perm: SignedPermutation | None = None
        self._action_perm: SignedPermutation | None = None
        for i, drift in enumerate(config.drifts):
            try:
                if drift.transform:
                    setter = self._permutation(drift.parameter, (config.schedule_seed, i), drift)
                else:
                    setter = make_setter(
                        drift.parameter, model, drift.mode, bodies=drift.bodies, geoms=drift.geoms
                    )
            except ConfigError as e:
                raise e.under(f"drift[{i}]") from None
            self._setters.append(setter)
        self._schedules = [d.schedule for d in config.drifts]
        self._seeds = [(config.schedule_seed, i) for i in range(len(config.drifts))]
        self._piecewise = [s for s in self._schedules if isinstance(s, Piecewise)]
        self._applied: list[Any] = [None] * len(self._schedules)
        self._applied_key: tuple = ()
        self._immediate = config.apply_at == "immediate"
        self._context_in_obs = config.context_in_obs
        self._n_envs = int(n_envs)
        self._global_step = int(start_step)
        self._context: dict[str, float | int] = {}
        self._context_values = np.zeros(0)
        self._next_due = _NEVER
        self._apply(self._global_step)
        if self._context_in_obs:
            space = env.observation_space
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise ConfigError("context_in_obs", True, "only for a flat Box observation space")
            extra = np.full(len(self._context_values), np.inf)
            self.observation_space = gym.spaces.Box(
                low=np.concatenate([space.low, -extra]),
                high=np.concatenate([space.high, extra]),
                dtype=space.dtype,
            )

    def _permutation(self, parameter: str, seed: tuple, drift: Any) -> SignedPermutation:
        """The permutation of observations or actions; their space must allow it: a flat Box whose
        entries share one range (symmetric when signs flip), so every permutation keeps it."""
        is_obs = parameter == "observation_permutation"
        space = self.env.observation_space if is_obs else self.env.action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ConfigError("parameter", parameter, "only for a flat Box space")
        low, high = space.low, space.high
        if not (np.all(low == low[0]) and np.all(high == high[0])):
            raise ConfigError("parameter", parameter, "only for a Box whose entries share a range")
        if drift.signs and not np.all(low == -high):
            raise ConfigError("signs", True, f"only for a symmetric range (low = -high): {space}")
        transform = SignedPermutation(parameter, space.shape[0], seed, drift.signs)
        if is_obs:
            self._obs_perm = transform
        else:
            self._action_perm = transform
        return transform

    # -- schedule state ---------------------------------------------------------------------

    def _schedule_step(self, schedule: Any, step: int) -> int:
        """The step whose value of ``schedule`` is in effect at ``step``: a continuous schedule is
        read every ``update_every`` steps, a piecewise one at every step."""
        if schedule.continuous:
            return step - step % self.config.update_every
        return step

    def _key(self, step: int) -> tuple:
        """What identifies the values due at ``step``: equal keys mean equal values."""
        return tuple(
            s.segment(step) if isinstance(s, Piecewise) else self._schedule_step(s, step)
            for s in self._schedules
            if isinstance(s, Piecewise) or s.continuous
        )

    def _next_change(self, step: int) -> int:
        """First global step after ``step`` at which a due value may differ."""
        candidates = [s.next_change(step) for s in self._piecewise]
        every = self.config.update_every
        for s in self._schedules:
            if s.continuous and not (isinstance(s, Linear) and step >= s.over):
                candidates.append(self._schedule_step(s, step) + every)
        return min(candidates, default=_NEVER)

    def _apply(self, step: int) -> None:
        """Write the values due at ``step`` into the model (only those that changed)."""
        context: dict[str, float | int] = {
            "phase": change_count(self._piecewise, step),
            "global_step": step,
        }
        for i, (schedule, setter) in enumerate(zip(self._schedules, self._setters, strict=True)):
            value = schedule.at(self._seeds[i], self._schedule_step(schedule, step))
            if value != self._applied[i]:
                setter.apply(value)
                self._applied[i] = value
            parameter = self.config.drifts[i].parameter
            parts = value if isinstance(value, tuple) else (value,)
            for key, part in zip(context_keys(parameter, value), parts, strict=True):
                context[key] = float(part)
        self._context = context
        self._context_values = np.array(
            [v for k, v in context.items() if k not in ("phase", "global_step")], dtype=np.float64
        )
        self._applied_key = self._key(step)
        self._next_due = self._next_change(step)

    # -- gymnasium API ----------------------------------------------------------------------

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env; report the context the step ran with; apply a due change if immediate."""
        if self._action_perm is not None:
            action = self._action_perm.action(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._obs_perm is not None:
            obs = self._obs_perm.observation(obs)
        step = self._global_step = self._global_step + self._n_envs
        context = self._context.copy()
        context["global_step"] = step
        info["context"] = context
        if self._context_in_obs:
            obs = np.concatenate((obs, self._context_values))
        if self._immediate and step >= self._next_due:
            self._apply(step)
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Apply what is due at the current global step, then reset the env."""
        if self._global_step >= self._next_due:
            self._apply(self._global_step)
        obs, info = self.env.reset(seed=seed, options=options)
        if self._obs_perm is not None:
            obs = self._obs_perm.observation(obs)
        context = self._context.copy()
        context["global_step"] = self._global_step
        info["context"] = context
        if self._context_in_obs:
            obs = np.concatenate((obs, self._context_values))
        return obs, info

    # -- control ----------------------------------------------------------------------------

    def set_global_step(self, step: int) -> None:
        """Set the global step (e.g. an evaluation env to ``model.num_timesteps``).

        Values due at ``step`` that differ from the applied ones take effect at the next reset
        (or, in immediate mode, also after the next step).

        :param step: the global step
        """
        self._global_step = int(step)
        if self._key(self._global_step) != self._applied_key:
            self._next_due = self._global_step
        else:
            self._next_due = self._next_change(self._global_step)

    def state_dict(self) -> dict[str, Any]:
        """The schedule position and the values in effect (for an exact resume)."""
        return {
            "global_step": self._global_step,
            "applied": list(self._applied),
            "context": dict(self._context),
            "next_due": self._next_due,
            "applied_key": self._applied_key,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` and write its values into the model.

        :param state: from :meth:`state_dict` of a wrapper with the same config
        """
        for setter, value in zip(self._setters, state["applied"], strict=True):
            setter.apply(value)
        self._applied = list(state["applied"])
        self._context = dict(state["context"])
        self._context_values = np.array(
            [v for k, v in self._context.items() if k not in ("phase", "global_step")],
            dtype=np.float64,
        )
        self._global_step = int(state["global_step"])
        self._next_due = int(state["next_due"])
        self._applied_key = tuple(state["applied_key"])

    @property
    def global_step(self) -> int:
        """The global step after this env's last step."""
        return self._global_step

    @property
    def context(self) -> dict[str, float | int]:
        """The context in effect now (a copy)."""
        context = self._context.copy()
        context["global_step"] = self._global_step
        return context
