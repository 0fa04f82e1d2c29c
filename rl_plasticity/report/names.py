"""Readable names of the report's other parts: hidden layers, networks and drifting parameters.

The metrics' titles, units and figures are in :mod:`rl_plasticity.metrics.registry`, which the
metrics callback reads too.
"""

from __future__ import annotations

import re

#: Network part (a module name's component) -> readable name.
NETWORK_PARTS = {
    "policy_net": "policy",
    "value_net": "value",
    "shared_net": "shared",
    "latent_pi": "actor",
    "qf0": "critic Q1",
    "qf1": "critic Q2",
    "q_net": "Q",
    "mu": "actor",
}

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


_INDEXED = re.compile(r"^(?P<part>.*?)\.?(?P<index>\d+)$")


def layer_names(layers: list[str]) -> dict[str, str]:
    """Readable names of hidden layers: ``mlp_extractor.policy_net.0`` -> ``policy layer 1``.

    A layer is numbered by its position among the layers of the same network part (Sequential
    indices 0, 2 -> layers 1, 2). A part missing from :data:`NETWORK_PARTS` keeps its own name.

    :param layers: layer names as the callback writes them (the incoming Linear's module name)
    :return: layer -> readable name
    """
    indexed: dict[str, list[tuple[int, str]]] = {}
    names = {}
    for layer in layers:
        match = _INDEXED.match(layer)
        if match is None:
            names[layer] = layer
            continue
        indexed.setdefault(match["part"], []).append((int(match["index"]), layer))
    for part, members in indexed.items():
        last = part.split(".")[-1] if part else ""
        readable = NETWORK_PARTS.get(last, part or "layer")
        for position, (_, layer) in enumerate(sorted(members), start=1):
            names[layer] = f"{readable} layer {position}"
    return names


def network_name(net: str) -> str:
    """Readable network name: ``q_net`` -> ``Q``, ``policy`` -> ``policy``.

    :param net: the ``<net>`` part of a column
    """
    return NETWORK_PARTS.get(net, net)


def parameter_name(key: str) -> str:
    """Readable name of a context column (a drifting parameter).

    :param key: e.g. ``friction`` or ``gravity_z``
    """
    return PARAMETERS.get(key, key.replace("_", " "))
