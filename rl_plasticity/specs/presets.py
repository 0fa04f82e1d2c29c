"""The shipped env specs with a ``gym_id``, registered with gymnasium."""

from __future__ import annotations

from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.specs.env import load_env_spec
from rl_plasticity.specs.files import available_specs, read_toml


def make_preset(spec: str, **kwargs: Any) -> Any:
    """Entry point of the registered gymnasium ids: build the env of a shipped spec.

    :param spec: the spec's name
    :param kwargs: extra keyword arguments for ``gymnasium.make``
    """
    return load_env_spec(spec).make(**kwargs)


def register_presets() -> list[str]:
    """Register every shipped env spec that has a ``gym_id`` with gymnasium; return the ids.

    Reads only the ``gym_id`` line of each file, so importing the package stays cheap; the spec is
    validated when the env is made.
    """
    import gymnasium as gym

    ids = []
    for name, path in available_specs("envs").items():
        try:
            gym_id = read_toml(path).get("gym_id")
        except ConfigError:
            continue  # a broken file is reported when it is used, not on import
        if isinstance(gym_id, str) and gym_id not in gym.registry:
            gym.register(
                gym_id,
                entry_point="rl_plasticity.specs:make_preset",
                kwargs={"spec": name},
                disable_env_checker=True,
            )
            ids.append(gym_id)
    return ids
