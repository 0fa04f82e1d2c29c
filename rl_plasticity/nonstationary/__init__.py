"""Nonstationary MuJoCo environments: physics that change on a schedule of the global step.

Three parts, one concern each: :mod:`.schedules` (what value, when: pure functions of
``(seed, step)``), :mod:`.physics` (how a value reaches ``mjModel``), :mod:`.wrapper` (when to ask
and where to report it). :mod:`.config` validates the ``[nonstationary]`` table of an env spec;
its docstring and ``envs/README.md`` give the schema.

    >>> import gymnasium as gym
    >>> from rl_plasticity.nonstationary import NonstationaryWrapper
    >>> env = NonstationaryWrapper(gym.make("HalfCheetah-v5"), {"drift": [{
    ...     "parameter": "friction", "mode": "absolute",
    ...     "schedule": {"kind": "piecewise", "every": 20_000, "low": 0.02, "high": 2.0}}]})
    >>> obs, info = env.reset(seed=0)
    >>> sorted(info["context"])
    ['friction', 'global_step', 'phase']
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it; imported on first use (PEP 562), so importing
#: the pure ``schedules`` loads neither gymnasium nor mujoco.
_EXPORTS = {
    "Drift": "config",
    "NonstationaryConfig": "config",
    "describe": "config",
    "PARAMETERS": "physics",
    "make_setter": "physics",
    "Constant": "schedules",
    "Linear": "schedules",
    "Piecewise": "schedules",
    "Schedule": "schedules",
    "Sinusoid": "schedules",
    "change_count": "schedules",
    "first_values": "schedules",
    "schedule_from_dict": "schedules",
    "NonstationaryWrapper": "wrapper",
}

__all__ = [
    "PARAMETERS",
    "Constant",
    "Drift",
    "Linear",
    "NonstationaryConfig",
    "NonstationaryWrapper",
    "Piecewise",
    "Schedule",
    "Sinusoid",
    "change_count",
    "describe",
    "first_values",
    "make_setter",
    "schedule_from_dict",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
