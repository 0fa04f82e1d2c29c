"""Readable names of drifting parameters (the context columns), for the report's figures.

The metrics' titles, units and figures are in :mod:`rl_plasticity.metrics.registry`; the hidden
layers' and networks' names in :mod:`rl_plasticity.sb3.layer_names`.
"""

from __future__ import annotations

#: Readable names of drifting parameters (context columns), with their unit.
PARAMETERS = {
    "friction": "friction coefficient",
    "gravity": "gravity (m/s^2)",
    "gravity_x": "gravity x (m/s^2)",
    "gravity_y": "gravity y (m/s^2)",
    "gravity_z": "gravity z (m/s^2)",
    "body_mass": "body mass (x)",
    "actuator_gear": "actuator gear (x)",
    "joint_damping": "joint damping (x)",
}


def parameter_name(key: str) -> str:
    """Readable name of a context column (a drifting parameter).

    :param key: e.g. ``friction`` or ``gravity_z``
    """
    return PARAMETERS.get(key, key.replace("_", " "))
