"""Figures of what the callbacks recorded: one figure per metric family (every ``plasticity/...``
column of ``metrics.csv`` reaches one), the methods' activity over time (``method/...`` columns
of ``progress.csv``), and returns and key metrics aligned on each physics change.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rl_plasticity.metrics.registry import (
    FAMILIES,
    METRICS,
    counter_info,
    metric_info,
    split_column,
)
from rl_plasticity.report.changes import change_steps, phase_boundaries
from rl_plasticity.report.figures import (
    DPI,
    figure_legend,
    last_step,
    mark_changes,
    marker_for,
    mean_curve,
    percent_axis,
    row_width,
    save,
    seed_curves,
    style_axes,
)
from rl_plasticity.report.runs import Run, by_attribute
from rl_plasticity.report.statistics import nan_mean_over_rows
from rl_plasticity.report.tables import SUMMARY_METRICS, combine_columns, layer_mean
from rl_plasticity.sb3.layer_names import layer_names, network_name

_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P")


def family_plan(columns: set[str]) -> dict[str, list[tuple[str, str | None, list[str]]]]:
    """Which panels each metric family's figure has: family -> [(metric, net or None, columns)].

    A per-layer metric is one panel row (``net`` None, one line per layer); a per-network metric
    is one panel row per network. Every ``plasticity/...`` column lands in exactly one panel.

    :param columns: column names of ``metrics.csv`` files
    """
    order = {name: i for i, name in enumerate(METRICS)}
    rows: dict[tuple[str, str | None], list[str]] = {}
    for column in columns:
        parts = split_column(column)
        if parts is None:
            continue
        net, layer, metric = parts
        rows.setdefault((metric, None if layer is not None else net), []).append(column)
    plan: dict[str, list[tuple[str, str | None, list[str]]]] = {}
    for (metric, net), members in sorted(
        rows.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][0], kv[0][1] or "")
    ):
        plan.setdefault(metric_info(metric).family, []).append((metric, net, sorted(members)))
    return {family: plan[family] for family in FAMILIES if family in plan}


def _line_style(i: int, n_points: int) -> dict:
    style = {"linestyle": _STYLES[i % len(_STYLES)], "linewidth": max(2.4 - 0.5 * i, 0.9)}
    if n_points <= 30:
        style.update(marker=_MARKERS[i % len(_MARKERS)], markersize=3.5)
    return style


def _line_name(column: str, names: dict[str, str]) -> str:
    _, layer, _ = split_column(column)
    return names.get(layer, layer) if layer is not None else "whole network"


def plot_family(
    env: str, runs: list[Run], family: str, panels: list, path: Path, colors: dict[str, str]
) -> None:
    """One metric family over time: a row per metric, a column per row of runs (in its colour),
    a line per hidden layer (per network for network-level metrics), mean over seeds.

    :param env: the environment's label (title)
    :param runs: the finished runs of that environment
    :param family: a key of :data:`rl_plasticity.metrics.registry.FAMILIES`
    :param panels: that family's entry of :func:`family_plan`
    :param path: the PNG to write
    :param colors: row label -> colour
    """
    by_row = by_attribute(runs, "label")
    layers = sorted({s[1] for p in panels for c in p[2] if (s := split_column(c))[1] is not None})
    names = layer_names(layers)
    fig = Figure(figsize=(2.9 * len(by_row) + 1.9, 2.0 * len(panels) + 0.9), dpi=DPI)
    axes = fig.subplots(len(panels), len(by_row), squeeze=False, sharex=True, sharey="row")
    boundaries = phase_boundaries(runs)
    last = last_step(runs)
    legend: dict[str, object] = {}
    for r, (metric, net, columns) in enumerate(panels):
        info = metric_info(metric)
        scale = 100.0 if info.percent else 1.0
        row_values: list[np.ndarray] = []
        for c, (label, row_runs) in enumerate(by_row.items()):
            ax = axes[r, c]
            plotted = [np.empty(0)]
            for column in columns:
                steps, curves = seed_curves([run.metrics for run in row_runs], column)
                curve = nan_mean_over_rows(curves) if curves.size else np.empty(0)
                n = int(np.sum(np.isfinite(curve)))
                if n == 0:
                    continue
                # One style per layer in every panel (the whole network after the layers).
                layer = split_column(column)[1]
                style = _line_style(layers.index(layer) if layer is not None else len(layers), n)
                name = _line_name(column, names)
                ax.plot(steps, scale * curve, color=colors[label], **style)
                if len(curves) > 1:  # the seeds' range, so that one seed's outlier shows
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan steps
                        low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
                    ax.fill_between(
                        steps, scale * low, scale * high, color=colors[label], alpha=0.15,
                        linewidth=0,
                    )  # fmt: skip
                plotted.append(curve[np.isfinite(curve)])
                legend.setdefault(name, Line2D([], [], color="0.25", **style))
            mark_changes(ax, boundaries, label=False)
            style_axes(ax, last=last)
            finite = np.concatenate(plotted)
            row_values += plotted
            if info.log and finite.size and np.all(finite > 0):
                ax.set_yscale("log")
            if r == 0:
                ax.set_title(label, fontsize=9, color=colors[label])
            if c == 0:
                unit = " (%)" if info.percent else ""
                several = len({n for _, n, _ in panels if n is not None}) > 1
                where = f"\n({network_name(net)} network)" if net is not None and several else ""
                ax.set_ylabel(f"{info.title}{unit}{where}", fontsize=8)
            if r == len(panels) - 1:
                ax.set_xlabel("environment steps", fontsize=8)
        if info.percent:  # the row shares its y axis: one range for every column
            percent_axis(axes[r, 0], [100.0 * v for v in row_values])
    fig.legend(
        list(legend.values()), list(legend), fontsize=7, loc="center left",
        bbox_to_anchor=(1.0, 0.5), title="line", title_fontsize=7, frameon=False,
    )  # fmt: skip
    fig.suptitle(
        f"{env}: {FAMILIES[family]} (mean over seeds; band: range over seeds; grey lines: "
        "physics changes)",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, path)


def method_counters(columns: set[str]) -> dict[str, list[str]]:
    """``method/...`` columns of ``progress.csv`` by counter (their last part).

    A per-update count (``replaced``) is left out where its cumulative twin
    (``replaced_total``) is there.

    :param columns: column names
    """
    counters: dict[str, list[str]] = {}
    for column in sorted(columns):
        if column.startswith("method/"):
            counters.setdefault(column.split("/")[-1], []).append(column)
    return {k: v for k, v in counters.items() if f"{k}_total" not in counters}


def plot_method_activity(env: str, runs: list[Run], path: Path, colors: dict[str, str]) -> bool:
    """What each method did over time: a panel per counter (units replaced, events, resets),
    summed over layers and networks, one line per row (mean over seeds).

    :param env: the environment's label (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    :param colors: row label -> colour
    :return: whether any run recorded method activity (nothing is written otherwise)
    """
    counters = method_counters({c for r in runs for c in r.progress})
    if not counters:
        return False
    fig = Figure(figsize=(3.6 * len(counters) + 1.8, 3.0), dpi=DPI)
    axes = fig.subplots(1, len(counters), squeeze=False)[0]
    boundaries = phase_boundaries(runs)
    for ax, (counter, columns) in zip(axes, counters.items(), strict=True):
        info = counter_info(counter)
        for label, row_runs in by_attribute(runs, "label").items():
            tables = []
            for run in row_runs:
                present = [run.progress[c] for c in columns if c in run.progress]
                if present and "timestep" in run.progress:
                    total = combine_columns(present, info.aggregate)
                    tables.append({"timestep": run.progress["timestep"], "total": total})
            steps, curve = mean_curve(tables, "total")
            if steps.size:
                ax.plot(
                    steps, curve, color=colors[label], label=label,
                    linewidth=row_width(label, colors), **marker_for(steps.size),
                )  # fmt: skip
        mark_changes(ax, boundaries)
        ax.set_title(info.title, fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
        style_axes(ax, last=last_step(runs))
    figure_legend(fig, axes)
    fig.suptitle(f"{env}: {FAMILIES['method']} (mean over seeds)", fontsize=10)
    fig.tight_layout()
    save(fig, path)
    return True


def _aligned(runs: list[Run], values_of, window: float, bins: int) -> tuple[np.ndarray, ...]:
    # Samples within +-window of each change of each run, binned on steps since the change.
    edges = np.linspace(-window, window, bins + 1)
    curves = []
    for run in runs:
        steps, values = values_of(run)
        if steps is None:
            continue
        for change in change_steps(run):
            rel = steps - change
            inside = (rel > -window) & (rel <= window) & np.isfinite(values)
            if inside.any():
                index = np.clip(np.searchsorted(edges, rel[inside]) - 1, 0, bins - 1)
                sums = np.bincount(index, weights=values[inside], minlength=bins)
                counts = np.bincount(index, minlength=bins)
                curve = np.full(bins, np.nan)
                np.divide(sums, counts, out=curve, where=counts > 0)
                curves.append(curve)
    if not curves:
        return np.empty(0), np.empty(0)
    return 0.5 * (edges[1:] + edges[:-1]), nan_mean_over_rows(np.vstack(curves))


def plot_around_changes(env: str, runs: list[Run], path: Path, colors: dict[str, str]) -> bool:
    """Before and after each change: the return and the summary metrics against steps since the
    change (every change of every seed averaged), one line per row.

    The window is half the shortest time between changes on each side.

    :param env: the environment's label (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    :param colors: row label -> colour
    :return: whether there was a change to align on (nothing is written otherwise)
    """
    boundaries = phase_boundaries(runs)
    if not boundaries:
        return False
    last = max(r.last_step for r in runs)
    # Half the shortest phase that ends in a change (a run's last phase may be cut short).
    gaps = np.diff([0.0, *boundaries])
    window = 0.5 * float(np.min(gaps[gaps > 0])) if np.any(gaps > 0) else 0.5 * last

    def episodes(run: Run):
        return run.episodes.get("timestep"), run.episodes.get("return")

    quantities = [("episodic return", episodes, 20, 1.0)]
    for title, metric in SUMMARY_METRICS:
        if any(layer_mean(r, metric) is not None for r in runs):
            percent = metric_info(metric).percent

            def metric_values(run: Run, metric=metric):
                return run.metrics.get("timestep"), layer_mean(run, metric)

            measured = max(r.metrics["timestep"].size for r in runs if "timestep" in r.metrics)
            bins = int(np.clip(2 * window * measured / max(last, 1.0), 2, 20))
            name = title + (" (%)" if percent else "")
            quantities.append((name, metric_values, bins, 100.0 if percent else 1.0))
    fig = Figure(figsize=(3.3 * len(quantities) + 1.8, 3.0), dpi=DPI)
    axes = fig.subplots(1, len(quantities), squeeze=False)[0]
    for ax, (title, values_of, bins, scale) in zip(axes, quantities, strict=True):
        for label, row_runs in by_attribute(runs, "label").items():
            x, curve = _aligned(row_runs, values_of, window, bins)
            n = int(np.sum(np.isfinite(curve)))
            if n:
                ax.plot(
                    x, scale * curve, color=colors[label], label=label,
                    linewidth=row_width(label, colors), **marker_for(n),
                )  # fmt: skip
        mark_changes(ax, [0.0])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("steps since the change", fontsize=8)
        style_axes(ax)
        ax.set_xlim(-window, window)
    figure_legend(fig, axes)
    fig.suptitle(
        f"{env}: around each physics change (mean over {len(boundaries)} changes and seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, path)
    return True
