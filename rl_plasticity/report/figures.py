"""The report's return figures and the summary row, and what every figure shares: one colour per
row (agent) in every figure, step ticks as 200k / 1.5M, markers where points are few, legends
outside the data, change markers at the exact change steps, PNGs saved uncropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from PIL import Image

from rl_plasticity.report.changes import drift_modes, drift_values, phase_boundaries
from rl_plasticity.report.names import parameter_name
from rl_plasticity.report.runs import Run, by_attribute
from rl_plasticity.report.statistics import (
    MIN_SEEDS_FOR_CI,
    Estimate,
    binned_on_grid,
    mean_with_band,
    min_max_normalize,
    nan_mean_over_rows,
    performance_profile,
)

#: Points on the common step grid that return curves are binned onto.
GRID_POINTS = 100
#: Curves with at most this many points are drawn with markers.
FEW_POINTS = 30
DPI = 100


#: Colours rows are drawn in: tab10 without its grey (the change markers' colour), then black
#: and three dark tones far from the rest; no two are alike, unlike tab20's light/dark pairs.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#000000",
    "#393b79", "#637939",
)  # fmt: skip


def colors_for(labels: Iterable[str]) -> dict[str, str]:
    """One colour per row, fixed by the row's name: the same agent has the same colour in every
    figure and in every report, whatever else the report holds.

    A name's colour is :data:`PALETTE` at ``blake2b(name) mod len(PALETTE)`` (a stable hash, not
    Python's salted ``hash``; crc32 put ppo-reset, ppo-cbp and ppo-l2init on one colour). When
    two names of one report fall on one colour, the later name (sorted) takes the nearest free
    colour: only then does a name's colour depend on the report's other rows, and colours repeat
    only beyond ``len(PALETTE)`` rows.

    :param labels: every row label of the report
    :return: label -> colour, in sorted label order
    """
    ordered = sorted(set(labels))
    preferred = {label: _colour_index(label) for label in ordered}
    # Names that have their own colour keep it; collisions move in sorted order.
    taken: dict[int, str] = {}
    for label in ordered:
        taken.setdefault(preferred[label], label)
    colors = {}
    for label in ordered:
        index = preferred[label]
        if taken[index] != label:
            free = [k for k in range(len(PALETTE)) if k not in taken]
            if free:
                index = min(free, key=lambda k: (k - preferred[label]) % len(PALETTE))
                taken[index] = label
        colors[label] = PALETTE[index]
    return colors


def _colour_index(label: str) -> int:
    return int(hashlib.blake2b(label.encode()).hexdigest(), 16) % len(PALETTE)


def steps_label(x: float, _pos: int | None = None) -> str:
    """Step-axis tick as 200k or 1.5M, so that narrow panels stay readable."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    return f"{x / 1e3:g}k" if x else "0"


def row_width(label: str, colors: dict[str, str]) -> float:
    """Line width of a row: the first rows thickest, so that rows with equal values stay visible
    as a halo around the one drawn last.

    :param label: the row
    :param colors: row label -> colour (its order is the rows' order)
    """
    return max(2.8 - 0.6 * list(colors).index(label), 1.2)


def marker_for(n_points: int) -> dict:
    """Line style keywords: a marker when a curve has few points.

    :param n_points: finite points of the curve
    """
    return {"marker": "o", "markersize": 3.5} if n_points <= FEW_POINTS else {}


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG quantized to 64 colours (a fourth of the size, nothing visible
    lost), its bounding box grown to hold legends and titles outside the axes."""
    fig.savefig(path, bbox_inches="tight", pad_inches=0.1)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def grid_edges(tables: Iterable[dict[str, np.ndarray]], points: int = GRID_POINTS) -> np.ndarray:
    """One step grid for every run of a figure: 0 to the last step any of them logged.

    :param tables: column tables with a ``timestep`` column
    :param points: number of bins
    """
    last = max(
        (float(np.nanmax(t["timestep"])) for t in tables if t.get("timestep", np.empty(0)).size),
        default=1.0,
    )
    return np.linspace(0.0, max(last, 1.0), points + 1)


def mark_changes(ax: Axes, boundaries: list[float], label: bool = True) -> None:
    """Grey vertical bands at the physics changes (line styles are left to the data).

    :param ax: the axes
    :param boundaries: change steps
    :param label: give the first line a legend entry
    """
    for i, step in enumerate(boundaries):
        ax.axvline(
            step,
            color="0.45",
            linestyle="-",
            linewidth=1.6,
            alpha=0.35,
            zorder=0,
            label="physics change" if i == 0 and label else None,
        )


def style_axes(ax: Axes, steps: bool = True, last: float | None = None) -> None:
    """Grid, small ticks, and step ticks as 200k on the x axis.

    :param ax: the axes
    :param steps: the x axis counts environment steps
    :param last: the runs' last step: the x axis spans 0 to it (a single measurement is then
        drawn where it lies in the run, not on an axis of its own few steps)
    """
    ax.grid(alpha=0.3)
    ax.tick_params(which="both", labelsize=7)
    if steps:
        ax.xaxis.set_major_formatter(FuncFormatter(steps_label))
    if last:
        ax.set_xlim(0.0, 1.02 * last)


def last_step(runs: Iterable[Run]) -> float:
    """The last step any run logged an episode or a measurement at."""
    steps = [
        float(np.nanmax(t["timestep"]))
        for r in runs
        for t in (r.episodes, r.metrics, r.progress)
        if t.get("timestep", np.empty(0)).size
    ]
    return max(steps, default=0.0)


def percent_axis(ax: Axes, values: Iterable[np.ndarray]) -> None:
    """A percentage axis from 0 to a little above the largest value (at least 1%).

    :param ax: the axes
    :param values: the values drawn, in %
    """
    finite = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values] or [[0.0]])
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 0.0
    ax.set_ylim(0.0, max(1.0, 1.1 * top))


def legend_outside(ax: Axes, fontsize: int = 7) -> None:
    """The axes' legend to the right of the axes, off the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def figure_legend(fig: Figure, axes: Iterable[Axes], title: str | None = None) -> None:
    """One legend for the whole figure, right of the panels: every labelled line of ``axes``
    once, the physics change last.

    :param fig: the figure
    :param axes: the panels whose lines are listed
    :param title: the legend's title
    """
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if "physics change" in entries:
        entries["physics change"] = entries.pop("physics change")
    fig.legend(
        list(entries.values()), list(entries), fontsize=7, loc="center left",
        bbox_to_anchor=(1.0, 0.5), title=title, title_fontsize=7, frameon=False,
    )  # fmt: skip


def band_words(n_min: int) -> str:
    """What the shaded band around a mean is, given the fewest seeds of a row."""
    if n_min >= MIN_SEEDS_FOR_CI:
        return "bootstrap 95% CI"
    return f"range over seeds (n < {MIN_SEEDS_FOR_CI}: no CI)"


def bar_words(n_min: int, n_max: int) -> str:
    """What the error bars of an IQM over seeds are (:func:`statistics.iqm_estimate`'s percentile
    bootstrap), given the fewest and most seeds of a point: with few seeds the bootstrap cannot
    leave the seeds' range, so it is named for what it is."""
    n = f"n={n_min}" if n_min == n_max else f"n={n_min}-{n_max}"
    if n_min >= MIN_SEEDS_FOR_CI:
        return f"bars: bootstrap 95% CI ({n} seeds)"
    if n_max < 2:
        return "no bars (1 seed)"
    return f"bars: bootstrap over {n} seeds, within their range (< {MIN_SEEDS_FOR_CI}: no CI)"


def plot_returns(env: str, runs: list[Run], path: Path, colors: dict[str, str]) -> None:
    """Episodic return against steps, one line per row (mean over seeds, band per
    :func:`statistics.mean_with_band`); below it the drifting parameters' values over time.

    :param env: the environment's label (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    :param colors: row label -> colour
    """
    edges = grid_edges(r.episodes for r in runs)
    x = edges[1:]
    boundaries = phase_boundaries(runs)
    # The drifting values on a fine grid that holds the change steps themselves.
    x_drift = np.unique(np.concatenate([np.linspace(0.0, edges[-1], 1000), boundaries]))
    drift = drift_values(runs[0], x_drift) if runs else {}
    heights = [3, 1] if drift else [1]
    fig = Figure(figsize=(7.6, 3.8 + (1.3 if drift else 0.0)), dpi=DPI)
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    ax = axes[0] if drift else axes
    n_min = math.inf
    for label, row_runs in by_attribute(runs, "label").items():
        curves = np.array(
            [
                binned_on_grid(r.episodes["timestep"], r.episodes["return"], edges)
                for r in row_runs
                if "timestep" in r.episodes and "return" in r.episodes
            ]
        )
        if curves.size == 0:
            continue
        n_min = min(n_min, len(curves))
        mean, low, high = mean_with_band(curves)
        color = colors[label]
        ax.plot(x, mean, color=color, label=f"{label} (n={len(curves)})", linewidth=1.5)
        ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    mark_changes(ax, boundaries)
    band = band_words(int(n_min)) if n_min != math.inf else ""
    ax.set_title(f"{env}: episodic return (mean over seeds; band: {band})", fontsize=10)
    ax.set_ylabel("episodic return")
    style_axes(ax, last=last_step(runs))
    legend_outside(ax, fontsize=8)
    if drift:
        low_ax = axes[1]
        names = [parameter_name(k, drift_modes(runs[0])) for k in drift]
        for name, values in zip(names, drift.values(), strict=True):
            low_ax.step(x_drift, values, where="post", linewidth=1.2, label=name)
        mark_changes(low_ax, boundaries, label=False)
        low_ax.set_ylabel(names[0] if len(names) == 1 else "value", fontsize=8)
        low_ax.set_title("drifting parameter" + ("s" if len(names) > 1 else ""), fontsize=9)
        style_axes(low_ax, last=last_step(runs))
        if len(names) > 1:
            legend_outside(low_ax)
        low_ax.set_xlabel("environment steps")
    else:
        ax.set_xlabel("environment steps")
    fig.tight_layout()
    save(fig, path)


def plot_summary(
    env: str,
    runs: list[Run],
    path: Path,
    table: dict[str, dict[int, Estimate]],
    reference: str | None,
    panels: list[tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]],
    colors: dict[str, str],
) -> None:
    """One row for the whole comparison: return per phase, then key metrics over time.

    The first panel is each row's end-of-phase return minus the reset agent's (same phase,
    same seed; IQM over seeds with its bootstrap interval as error bars) when there is a reset
    agent, else the end-of-phase return.

    :param env: the environment's label (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    :param table: relative table against ``reference``, or the phase table without one
    :param reference: the reset row, or None
    :param panels: (title, row label -> (steps, curve)) per metric panel
    :param colors: row label -> colour
    """
    panels = [(t, c) for t, c in panels if c]
    fig = Figure(figsize=(3.4 * (1 + len(panels)) + 1.6, 3.3), dpi=DPI)
    axes = fig.subplots(1, 1 + len(panels), squeeze=False)[0]
    ax = axes[0]
    shown = [label for label in sorted(table) if table[label]]
    all_phases = sorted({p for label in shown for p in table[label]})
    for i, label in enumerate(shown):
        phases = sorted(table[label])
        x = np.array(phases) + 0.5 * (i - (len(shown) - 1) / 2) / max(len(shown), 1)
        est = [table[label][p] for p in phases]
        y = np.array([e.iqm for e in est])
        low = np.array([e.iqm - e.low if not math.isnan(e.low) else 0.0 for e in est])
        high = np.array([e.high - e.iqm if not math.isnan(e.high) else 0.0 for e in est])
        ax.errorbar(
            x, y, yerr=[low, high], color=colors[label], marker="o", markersize=3.5,
            linewidth=1.2, capsize=2, label=label,
        )  # fmt: skip
    when = "at the end of the run" if all_phases == [0] else "per phase"
    seeds = [table[label][p].n for label in shown for p in table[label]]
    bars = bar_words(min(seeds), max(seeds)) if seeds else ""
    if reference:
        ax.axhline(0.0, color=colors.get(reference, "0.3"), linewidth=1.0, linestyle=":")
        ax.set_ylabel(f"end-of-phase return\nminus {reference}'s", fontsize=8)
        ax.set_title(f"return {when} vs {reference} (= 0)\nIQM over seeds; {bars}", fontsize=8)
    else:
        ax.set_ylabel("end-of-phase return", fontsize=8)
        ax.set_title(f"return {when}\nIQM over seeds; {bars}", fontsize=8)
    ax.set_xlabel("phase", fontsize=8)
    if all_phases == [0]:  # no change: a stationary or continuously drifting env
        ax.set_xlabel("")
    if all_phases:
        ax.set_xticks(all_phases, ["end of run"] if all_phases == [0] else None)
        ax.set_xlim(all_phases[0] - 0.6, all_phases[-1] + 0.6)
    style_axes(ax, steps=False)
    boundaries = phase_boundaries(runs)
    for ax, (title, curves) in zip(axes[1:], panels, strict=True):
        for label, (steps, curve) in curves.items():
            n = int(np.sum(np.isfinite(curve)))
            width = row_width(label, colors)
            ax.plot(
                steps, curve, color=colors[label], linewidth=width, label=label, **marker_for(n)
            )
        mark_changes(ax, boundaries)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
        style_axes(ax, last=last_step(runs))
        if "(%)" in title:
            percent_axis(ax, [curve for _, curve in curves.values()])
    figure_legend(fig, [*axes[1:], axes[0]])
    fig.suptitle(f"{env}: summary (mean over seeds)", fontsize=10)
    fig.tight_layout()
    save(fig, path)


def seed_curves(tables: list[dict[str, np.ndarray]], column: str) -> tuple[np.ndarray, ...]:
    """One column of every seed, at common steps.

    Tables measured at the same steps are kept step by step; otherwise each is binned onto a
    common grid of as many points as the longest has measurements.

    :param tables: one column table per seed (``metrics``, ``progress``), with ``timestep``
    :param column: the column
    :return: (steps, seeds x steps), both empty when no table has the column
    """
    tables = [t for t in tables if column in t and "timestep" in t and t["timestep"].size]
    if not tables:
        return np.empty(0), np.empty((0, 0))
    first = tables[0]["timestep"]
    if all(t["timestep"].shape == first.shape and np.all(t["timestep"] == first) for t in tables):
        return first, np.vstack([t[column] for t in tables])
    edges = grid_edges(tables, min(GRID_POINTS, max(t["timestep"].size for t in tables)))
    return edges[1:], np.vstack([binned_on_grid(t["timestep"], t[column], edges) for t in tables])


def mean_curve(tables: list[dict[str, np.ndarray]], column: str) -> tuple[np.ndarray, ...]:
    """Mean over seeds of one column (see :func:`seed_curves`).

    :return: (steps, mean), both empty when no table has the column
    """
    steps, curves = seed_curves(tables, column)
    return steps, nan_mean_over_rows(curves) if curves.size else np.empty(0)


def plot_profiles(
    scores: dict[str, dict[str, np.ndarray]], path: Path, colors: dict[str, str]
) -> None:
    """Performance profiles (Agarwal et al. 2021): per row, the fraction of runs over all
    environments whose final return, min-max normalized per environment over every row's
    runs, exceeds each threshold.

    :param scores: :func:`tables.final_scores`
    :param path: the PNG to write
    :param colors: row label -> colour
    """
    envs = sorted({env for per_env in scores.values() for env in per_env})
    labels = sorted(scores)
    normalized: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    for env in envs:
        present = [label for label in labels if env in scores[label]]
        for label, values in zip(
            present, min_max_normalize([scores[label][env] for label in present]), strict=True
        ):
            normalized[label].append(values)
    taus = np.linspace(0.0, 1.0, 101)
    fig = Figure(figsize=(5.2, 3.4), dpi=DPI)
    ax = fig.subplots()
    for label in labels:
        profile = performance_profile(normalized[label], taus)
        ax.plot(taus, profile, color=colors[label], label=label, linewidth=row_width(label, colors))
    ax.set_xlabel("normalized final return tau (0: worst run, 1: best run, per environment)")
    ax.set_ylabel("fraction of runs with score > tau", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"performance profiles over {len(envs)} environment(s)", fontsize=10)
    style_axes(ax, steps=False)
    legend_outside(ax, fontsize=8)
    fig.tight_layout()
    save(fig, path)
