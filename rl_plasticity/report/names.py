"""Readable names of drifting parameters (the context columns), for the report's figures.

The names and units themselves are in the registry of drifting parameters,
:mod:`rl_plasticity.nonstationary.parameters`; the metrics' titles, units and figures in
:mod:`rl_plasticity.metrics.registry`; the hidden layers' and networks' names in
:mod:`rl_plasticity.sb3.layer_names`.
"""

from __future__ import annotations

from collections.abc import Mapping

from rl_plasticity.nonstationary.parameters import PARAMETERS

#: Suffixes of a vector value's context columns (``gravity_x``: ``config.context_keys``).
_AXES = ("x", "y", "z")


def parameter_name(key: str, modes: Mapping[str, str] | None = None) -> str:
    """Readable name of a context column (a drifting parameter), with its unit.

    :param key: e.g. ``friction`` or ``gravity_z``
    :param modes: each drifting parameter's mode (``"scale"``: values are multipliers of the
        env's own, unit ``x``); a parameter not in it is named with its absolute unit
    :return: e.g. ``"gravity z (m/s^2)"``; an unknown key with its underscores as spaces
    """
    modes = modes or {}
    if key in PARAMETERS:
        return PARAMETERS[key].label(modes.get(key))
    base, _, axis = key.rpartition("_")
    if base in PARAMETERS and axis in _AXES:
        return PARAMETERS[base].label(modes.get(base), axis)
    return key.replace("_", " ")
