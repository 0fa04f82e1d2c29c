"""The report's one naming table: what a column of ``metrics.csv`` or ``progress.csv`` is called
in a figure, its unit, and which figure (metric family) shows it.

Column contract (written by ``rl_plasticity.metrics.callback.PlasticityMetrics`` and the method
callbacks): ``plasticity/<net>/<layer>/<metric>`` per hidden layer, ``plasticity/<net>/<metric>``
per network; ``method/<net>/<layer>/<count>`` and ``method/<...>`` for what a method did. A
metric missing from :data:`METRICS` still reaches a figure (family ``other``, its raw name): a
new metric is never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """How one metric is shown.

    :param title: readable name
    :param family: the figure it belongs to (a key of :data:`FAMILIES`)
    :param percent: a fraction shown in % (values multiplied by 100)
    :param log: plotted on a log axis
    """

    title: str
    family: str
    percent: bool = False
    log: bool = False


#: Figure title per metric family, in the order the report shows them.
FAMILIES = {
    "units": "unit activity",
    "rank": "feature rank",
    "features": "features",
    "weights": "weights",
    "gradients": "gradients",
    "policy": "policy",
    "curvature": "curvature and probe",
    "other": "other metrics",
}

#: Metric name (last part of the column) -> how it is shown.
METRICS = {
    "dead": MetricInfo("dead units", "units", percent=True),
    "rarely_active": MetricInfo("rarely active units (<=1%)", "units", percent=True),
    "dormant_0.025": MetricInfo("dormant units (tau 0.025)", "units", percent=True),
    "dormant_0.1": MetricInfo("dormant units (tau 0.1)", "units", percent=True),
    "saturated": MetricInfo("saturated units", "units", percent=True),
    "effective_rank": MetricInfo("effective rank", "rank"),
    "srank": MetricInfo("srank (delta 0.01)", "rank"),
    "stable_rank": MetricInfo("stable rank", "rank"),
    "feature_norm": MetricInfo("feature norm", "features"),
    "cloned": MetricInfo("cloned units", "features", percent=True),
    "weight_mean_abs": MetricInfo("weight mean |w|", "weights"),
    "weight_rms": MetricInfo("weight RMS", "weights"),
    "weight_change": MetricInfo("weight change (RMS)", "weights", log=True),
    "grad_norm": MetricInfo("gradient norm", "gradients", log=True),
    "entropy": MetricInfo("policy entropy", "policy"),
    "action_std": MetricInfo("action std", "policy"),
    "ent_coef": MetricInfo("entropy coefficient", "policy", log=True),
    "hessian_erank": MetricInfo("Hessian epsilon-rank", "curvature", percent=True),
    "hessian_top_eig": MetricInfo("Hessian top eigenvalue", "curvature", log=True),
    "probe_loss": MetricInfo("probe loss", "curvature"),
    "probe_loss_pi": MetricInfo("probe loss (policy)", "curvature"),
    "probe_loss_vf": MetricInfo("probe loss (value)", "curvature"),
}

#: Method activity (``progress.csv``): counter name -> title. Per-layer counters are summed over
#: layers; a counter not listed keeps its own name.
METHOD_COUNTERS = {
    "replaced_total": "units replaced (cumulative, all layers)",
    "events": "method events (cumulative)",
    "resets": "resets (cumulative)",
}

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


def metric_info(name: str) -> MetricInfo:
    """How metric ``name`` (the last part of its column) is shown; unknown: family ``other``.

    :param name: e.g. ``dead`` or ``dormant_0.025``
    """
    return METRICS.get(name, MetricInfo(name, "other"))


def split_column(column: str) -> tuple[str, str | None, str] | None:
    """``plasticity/<net>/<layer>/<metric>`` -> (net, layer, metric); ``plasticity/<net>/<metric>``
    -> (net, None, metric); any other column -> None.

    :param column: a column name of ``metrics.csv``
    """
    parts = column.split("/")
    if parts[0] != "plasticity" or len(parts) < 3:
        return None
    if len(parts) == 3:
        return parts[1], None, parts[2]
    return parts[1], "/".join(parts[2:-1]), parts[-1]


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
