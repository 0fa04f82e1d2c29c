"""Environment specs: the validated :class:`EnvSpec` and :func:`load_env_spec`."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.specs.checks import check_kwargs, check_table
from rl_plasticity.specs.files import load_table
from rl_plasticity.validate import check_finite_tree

#: The MuJoCo warning gymnasium's HalfCheetah-v5 model raises when it is compiled (a regex).
SETTOTALMASS = r"MuJoCo: compiler attribute 'settotalmass' is deprecated"

ENV_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "description": (str, "a one-line string"),
    "env_id": (str, "a gymnasium environment id such as 'Ant-v5'"),
    "gym_id": (str, "an id to register the preset under, such as 'rl_plasticity/SlipperyAnt-v0'"),
    "env_kwargs": (dict, "a table of keyword arguments for gymnasium.make"),
    "nonstationary": (dict, "a table describing what drifts and when"),
}


@dataclass
class EnvSpec:
    """A validated environment spec.

    :param name: the spec's name (its file stem)
    :param path: the file it was loaded from
    :param env_id: the gymnasium id of the base environment
    :param description: one line for ``rlp envs``
    :param gym_id: the id the preset is registered under, if any
    :param env_kwargs: keyword arguments for ``gymnasium.make``
    :param nonstationary: what drifts and when, or None for a stationary env
    """

    name: str
    path: Path
    env_id: str
    description: str = ""
    gym_id: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    nonstationary: Any = None

    def make(
        self, n_envs: int = 1, start_step: int = 0, seed: int | None = None, **kwargs: Any
    ) -> Any:
        """Build one environment: the base env, wrapped to drift as the spec says.

        :param n_envs: sub-envs stepping in lockstep beside this one (for the global step)
        :param start_step: global step at which this env starts (a resumed run's)
        :param seed: the run's seed, for ``schedule_seed = "run"`` (each seed its own schedule)
        :param kwargs: extra keyword arguments for ``gymnasium.make`` (e.g. ``render_mode``)
        :return: the environment
        """
        import gymnasium as gym

        from rl_plasticity.nonstationary.physics import MujocoWarning
        from rl_plasticity.nonstationary.wrapper import NonstationaryWrapper

        with warnings.catch_warnings():
            # gymnasium's own HalfCheetah-v5 XML uses the deprecated settotalmass: nothing the
            # user wrote or can change, on every run. Only that message is silenced.
            warnings.filterwarnings("ignore", SETTOTALMASS, MujocoWarning)
            env = gym.make(self.env_id, **{**self.env_kwargs, **kwargs})
        if self.nonstationary is not None:
            env = NonstationaryWrapper(
                env, self.nonstationary, n_envs=n_envs, start_step=start_step, seed=seed
            )
        return env

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for config.json)."""
        ns = self.nonstationary.to_dict() if self.nonstationary is not None else None
        return {
            "name": self.name,
            "path": str(self.path),
            "env_id": self.env_id,
            "description": self.description,
            "gym_id": self.gym_id,
            "env_kwargs": self.env_kwargs,
            "nonstationary": ns,
        }


#: Keyword arguments ``gymnasium.make`` itself takes besides the env's.
MAKE_KWARGS = ("max_episode_steps", "autoreset", "disable_env_checker", "render_mode")


def _check_env_kwargs(entry_point: Any, kwargs: dict[str, Any]) -> None:
    """Check ``env_kwargs`` against the env's constructor: names it has, types of its defaults.

    A constructor that passes ``**kwargs`` on (the MuJoCo envs pass them to ``MujocoEnv``) may
    take names it does not list; only the listed ones are checked then.
    """
    from gymnasium.envs.registration import load_env_creator

    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    params = inspect.signature(creator).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    own = {k: v for k, v in kwargs.items() if k not in MAKE_KWARGS}
    if open_ended:
        own = {k: v for k, v in own.items() if k in params}
    check_kwargs(creator, own)


def load_env_spec(name_or_path: str | Path) -> EnvSpec:
    """Load and validate an environment spec.

    :param name_or_path: a shipped spec name (``slippery-ant``) or a path to a TOML file
    :raises ConfigError: naming the file, key, value and what is allowed
    """
    import gymnasium as gym

    from rl_plasticity.nonstationary.config import NonstationaryConfig

    path, data = load_table("envs", name_or_path)
    try:
        check_table(data, ENV_KEYS)
        check_finite_tree(data)
        if "env_id" not in data:
            raise ConfigError("env_id", None, "required: " + ENV_KEYS["env_id"][1])
        env_id = data["env_id"]
        try:
            entry_point = gym.spec(env_id).entry_point
        except gym.error.Error:
            mujoco = sorted(k for k in gym.registry if k.endswith("-v5") and "/" not in k)
            raise ConfigError(
                "env_id", env_id, f"not a registered gymnasium id; e.g. {', '.join(mujoco)}"
            ) from None
        try:
            _check_env_kwargs(entry_point, data.get("env_kwargs", {}))
        except ConfigError as e:
            raise e.under("env_kwargs") from None
        ns = None
        if "nonstationary" in data:
            try:
                ns = NonstationaryConfig.from_dict(data["nonstationary"])
            except ConfigError as e:
                raise e.under("nonstationary") from None
        return EnvSpec(
            name=path.stem,
            path=path,
            env_id=env_id,
            description=data.get("description", ""),
            gym_id=data.get("gym_id"),
            env_kwargs=dict(data.get("env_kwargs", {})),
            nonstationary=ns,
        )
    except ConfigError as e:
        raise e.with_file(str(path)) from None
