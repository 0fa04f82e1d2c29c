"""The metric registry, read by both sides: what the metrics callback records and what the report
shows (title, unit, figure) and how it combines a metric's columns.

Column contract: ``plasticity/<net>/<layer>/<metric>`` per hidden layer and
``plasticity/<net>/<metric>`` per network in ``metrics.csv`` (:func:`column` writes them,
:func:`split_column` reads them); ``method/<net>/<layer>/<counter>`` and ``method/<counter>`` in
``progress.csv`` for what a method did (:data:`METHOD_COUNTERS`). A metric missing from
:data:`METRICS` still reaches a figure (family ``other``, its raw name): a new metric is never
dropped silently; a test checks that every metric the callback records has an entry.

Pure Python: importing it loads neither torch nor SB3.
"""

from __future__ import annotations

from dataclasses import dataclass

#: First part of every column the metrics callback writes.
PREFIX = "plasticity"

#: How the report combines a metric's columns over layers and networks.
AGGREGATES = ("mean", "sum")


@dataclass(frozen=True)
class Metric:
    """How one metric is shown and combined.

    :param title: readable name
    :param family: the figure it belongs to (a key of :data:`FAMILIES`)
    :param percent: a fraction shown in % (values multiplied by 100)
    :param log: plotted on a log axis
    :param aggregate: one of :data:`AGGREGATES`: ``"mean"`` over hidden layers (a fraction, a
        rank), ``"sum"`` over layers and networks (a count of what a method did)
    """

    title: str
    family: str
    percent: bool = False
    log: bool = False
    aggregate: str = "mean"


#: Figure title per metric family, in the order the report shows them (``method``: the method
#: activity figure, from ``progress.csv``).
FAMILIES = {
    "units": "unit activity",
    "rank": "feature rank",
    "features": "features",
    "weights": "weights",
    "gradients": "gradients",
    "policy": "policy",
    "curvature": "curvature and probe",
    "other": "other metrics",
    "method": "method activity",
}

#: tau values of the ReDo dormant fraction that the callback records (``dormant_<tau>``).
DORMANT_TAUS = (0.025, 0.1)

#: Metric name (last part of the column) -> how it is shown, in the report's order.
METRICS = {
    "dead": Metric("dead units", "units", percent=True),
    "rarely_active": Metric("rarely active units (<=1%)", "units", percent=True),
    **{
        f"dormant_{tau}": Metric(f"dormant units (tau {tau})", "units", percent=True)
        for tau in DORMANT_TAUS
    },
    "saturated": Metric("saturated units", "units", percent=True),
    "effective_rank": Metric("effective rank", "rank"),
    "srank": Metric("srank (delta 0.01)", "rank"),
    "stable_rank": Metric("stable rank", "rank"),
    "feature_norm": Metric("feature norm", "features"),
    "cloned": Metric("cloned units", "features", percent=True),
    "weight_mean_abs": Metric("weight mean |w|", "weights"),
    "weight_rms": Metric("weight RMS", "weights"),
    "weight_change": Metric("weight change (RMS)", "weights", log=True),
    "grad_norm": Metric("gradient norm", "gradients", log=True),
    "entropy": Metric("policy entropy", "policy"),
    "action_std": Metric("action std", "policy"),
    "ent_coef": Metric("entropy coefficient", "policy", log=True),
    "hessian_erank": Metric("Hessian epsilon-rank", "curvature", percent=True),
    "hessian_top_eig": Metric("Hessian top eigenvalue", "curvature", log=True),
    "probe_loss": Metric("probe loss", "curvature"),
    "probe_loss_pi": Metric("probe loss (policy)", "curvature"),
    "probe_loss_vf": Metric("probe loss (value)", "curvature"),
}

#: Method activity (``progress.csv``): counter name -> how it is shown; summed over layers and
#: networks. A counter not listed keeps its own name (:func:`counter_info`).
METHOD_COUNTERS = {
    "replaced_total": Metric("units replaced (cumulative, all layers)", "method", aggregate="sum"),
    "events": Metric("method events (cumulative)", "method", aggregate="sum"),
    "resets": Metric("resets (cumulative)", "method", aggregate="sum"),
}


def metric_info(name: str) -> Metric:
    """How metric ``name`` (the last part of its column) is shown; unknown: family ``other``.

    :param name: e.g. ``dead`` or ``dormant_0.025``
    :return: its entry of :data:`METRICS`
    """
    return METRICS.get(name, Metric(name, "other"))


def counter_info(name: str) -> Metric:
    """How method counter ``name`` is shown; unknown: its name with spaces, summed.

    :param name: the last part of a ``method/...`` column, e.g. ``replaced_total``
    :return: its entry of :data:`METHOD_COUNTERS`
    """
    return METHOD_COUNTERS.get(name, Metric(name.replace("_", " "), "method", aggregate="sum"))


def column(net: str, metric: str, layer: str | None = None) -> str:
    """The ``metrics.csv`` column of a metric: ``plasticity/<net>/<layer>/<metric>`` for a hidden
    layer, ``plasticity/<net>/<metric>`` for a whole network (``layer`` None).

    :param net: the network's short name (``policy``, ``actor``, ``critic``, ``q_net``)
    :param metric: the metric's name (a key of :data:`METRICS`)
    :param layer: the hidden layer's name (its incoming Linear's module name), or None
    :return: the column name
    """
    return f"{PREFIX}/{net}/{metric}" if layer is None else f"{PREFIX}/{net}/{layer}/{metric}"


def split_column(name: str) -> tuple[str, str | None, str] | None:
    """Inverse of :func:`column`: ``plasticity/<net>/<layer>/<metric>`` -> (net, layer, metric);
    ``plasticity/<net>/<metric>`` -> (net, None, metric); any other column -> None.

    :param name: a column name of ``metrics.csv``
    :return: (net, layer or None, metric), or None
    """
    parts = name.split("/")
    if parts[0] != PREFIX or len(parts) < 3:
        return None
    if len(parts) == 3:
        return parts[1], None, parts[2]
    return parts[1], "/".join(parts[2:-1]), parts[-1]
