"""The registry of drifting parameters: one entry per parameter, read by every layer that needs it.

An entry says how a value reaches the env (its setter), which values are allowed (the lower
bound that :mod:`.config` checks), how a reader names it (title and unit, for the report's
figures) and what it touches (the geoms or bodies a drift may narrow it to). The setter is named
by its ``"module:Class"`` entry point, as ``gymnasium.register`` names an env's, and imported only
when an env is built: this module is pure Python, so the report reads the names without loading
MuJoCo.

Adding a parameter is one entry here and its setter class (in :mod:`.physics` for the physics:
``__init__(model, mode[, <selects>=names])`` and ``apply(value)``);
``tests/test_parameter_registry.py`` fails for an entry without a name, a bound or a setter that
imports, and for a setter class without an entry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rl_plasticity.errors import ConfigError, one_of


@dataclass(frozen=True)
class DriftingParameter:
    """One drifting parameter.

    :param setter: entry point of the class that applies a value, ``"module:Class"``
    :param title: readable name, e.g. ``"friction coefficient"``
    :param unit: unit of an absolute value (``""`` for a plain number); in scale mode a value is
        a multiplier of the env's own, shown as ``x``
    :param lower_bound: smallest value allowed (a multiplier or an absolute value alike)
    :param bound_allowed: whether ``lower_bound`` itself is allowed (a mass must be ``> 0``)
    :param touches: what it writes by default, in words (``"every geom"``)
    :param selects: the drift key naming a subset of what it touches (``"geoms"``, ``"bodies"``),
        or None when it cannot be narrowed
    :param transform: it transforms observations or actions instead of the physics (the wrapper
        builds its setter from the env's space, with a piecewise ``"permutation"`` schedule)
    """

    setter: str
    title: str
    unit: str
    lower_bound: float
    bound_allowed: bool
    touches: str
    selects: str | None = None
    transform: bool = False

    def setter_class(self) -> type:
        """The setter class, imported from :attr:`setter`.

        :return: the class
        """
        module, _, name = self.setter.partition(":")
        return getattr(importlib.import_module(module), name)

    def label(self, mode: str | None = None, axis: str = "") -> str:
        """Readable name with its unit: ``"gravity (m/s^2)"``, or ``"gravity (x)"`` in scale mode.

        :param mode: the drift's mode; None: the absolute unit
        :param axis: a vector value's component (``"z"``: ``"gravity z (m/s^2)"``)
        """
        title = f"{self.title} {axis}" if axis else self.title
        unit = "x" if mode == "scale" else self.unit
        return f"{title} ({unit})" if unit else title


_PHYSICS = "rl_plasticity.nonstationary.physics"
_PERMUTATION = "rl_plasticity.nonstationary.permutation:SignedPermutation"

#: Every drifting parameter, by the name env specs use (``parameter = "friction"``).
PARAMETERS: dict[str, DriftingParameter] = {
    "friction": DriftingParameter(
        setter=f"{_PHYSICS}:Friction",
        title="friction coefficient",
        unit="",
        lower_bound=0.0,
        bound_allowed=True,
        touches="every geom",
        selects="geoms",
    ),
    "gravity": DriftingParameter(
        setter=f"{_PHYSICS}:Gravity",
        title="gravity",
        unit="m/s^2",
        lower_bound=0.0,
        bound_allowed=True,
        touches="the gravity vector",
    ),
    "body_mass": DriftingParameter(
        setter=f"{_PHYSICS}:BodyMass",
        title="body mass",
        unit="kg",
        lower_bound=0.0,
        bound_allowed=False,
        touches="every body",
        selects="bodies",
    ),
    "actuator_gear": DriftingParameter(
        setter=f"{_PHYSICS}:ActuatorGear",
        title="actuator gear",
        unit="",
        lower_bound=0.0,
        bound_allowed=True,
        touches="every actuator",
    ),
    "joint_damping": DriftingParameter(
        setter=f"{_PHYSICS}:JointDamping",
        title="joint damping",
        unit="N m s/rad",
        lower_bound=0.0,
        bound_allowed=True,
        touches="the actuated joints",
    ),
    # A permutation's schedule values are segment indices, never negative.
    "observation_permutation": DriftingParameter(
        setter=_PERMUTATION,
        title="observation permutation",
        unit="segment",
        lower_bound=0.0,
        bound_allowed=True,
        touches="the observation vector",
        transform=True,
    ),
    "action_permutation": DriftingParameter(
        setter=_PERMUTATION,
        title="action permutation",
        unit="segment",
        lower_bound=0.0,
        bound_allowed=True,
        touches="the action vector",
        transform=True,
    ),
}

#: The parameters that change the physics (a setter in :mod:`.physics`).
PHYSICS = tuple(name for name, p in PARAMETERS.items() if not p.transform)
#: The "parameters" that transform observations or actions.
TRANSFORMS = tuple(name for name, p in PARAMETERS.items() if p.transform)


def drifting_parameter(name: str) -> DriftingParameter:
    """The entry of ``name``.

    :param name: a parameter name
    :raises ConfigError: for an unknown name (key ``parameter``)
    """
    if name not in PARAMETERS:
        raise ConfigError("parameter", name, one_of(name, PARAMETERS))
    return PARAMETERS[name]
