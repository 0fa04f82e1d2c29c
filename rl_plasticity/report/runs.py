"""Runs -> figures and a Markdown report: return curves, per-phase tables, plasticity metrics.

``write_report(run_root)`` reads every run directory below ``run_root`` (any folder holding a
``config.json``, laid out as ``experiment.py`` writes it) and writes, per environment:

- a summary row: return per phase relative to the reset agent, and weight magnitude, dead units
  and effective rank over time (hidden layers averaged), one line per agent;
- the episodic return against steps, mean over seeds with a 95% bootstrap band, physics changes
  marked;
- a table per agent of the return at the end of each phase (interquartile mean over seeds with a
  bootstrap 95% CI) and, when the sweep holds a reset agent, each agent's return minus the reset
  agent's in the same phase and seed;
- panels of plasticity metrics over time (dead, rarely active and dormant units, effective rank,
  weight magnitude), one column per agent, one line per hidden layer;

and lists the runs that failed or did not finish. Statistics come from scipy
(``scipy.stats.trim_mean``, ``scipy.stats.bootstrap``), as rliable computes its IQM.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image
from scipy import stats

#: Fraction of a phase's episodes (its last ones) whose returns stand for "the end of the phase".
END_OF_PHASE_FRACTION = 0.2
#: Points on the common step grid that curves are binned onto.
GRID_POINTS = 100
#: Resamples for every bootstrap confidence interval.
BOOTSTRAP_RESAMPLES = 2000
#: Agent names taken as the reset reference without looking at their config.
RESET_AGENT_NAMES = ("ppo-reset",)
#: Plasticity metric panels: (title, pattern on the metric name, the last part of a
#: ``plasticity/<net>/<layer>/<metric>`` column, as ``metrics.PlasticityMetrics`` names them).
METRIC_PANELS = (
    ("dead units", re.compile(r"^dead$")),
    ("rarely active (<=1%)", re.compile(r"^rarely_active$")),
    ("dormant (tau=0.025)", re.compile(r"^dormant_0\.025$")),
    ("effective rank", re.compile(r"^effective_rank$")),
    ("weight mean |w|", re.compile(r"^weight_mean_abs$")),
)
#: Longest failure reason shown in the report (the full one is in the run's status.json).
REASON_CHARS = 300
_DPI = 100


@dataclass
class Run:
    """One run directory, read.

    :param path: the run directory
    :param env: environment name (``config.json`` ``env_name``)
    :param agent: agent name (``config.json`` ``agent_name``)
    :param seed: the run's seed
    :param config: ``config.json`` as a dict
    :param status: ``"done"``, ``"failed"``, ``"running"`` or ``"missing"`` (no ``status.json``)
    :param reason: why it failed, from ``status.json``
    :param episodes: ``episodes.csv`` columns (``timestep``, ``return``, ``length``, ``phase``)
    :param metrics: ``metrics.csv`` columns
    """

    path: Path
    env: str
    agent: str
    seed: int
    config: dict
    status: str
    reason: str | None
    episodes: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def is_reset_agent(self) -> bool:
        """Whether this run's agent is the reset reference (a fresh network at every change)."""
        method = self.config.get("agent", {}).get("method", {})
        return self.agent in RESET_AGENT_NAMES or (
            isinstance(method, dict) and method.get("name") == "reset"
        )


@dataclass(frozen=True)
class Estimate:
    """An interquartile mean over seeds with its bootstrap 95% confidence interval.

    :param iqm: interquartile mean (the plain mean below 4 seeds, where nothing is trimmed)
    :param low: lower end of the 95% CI (nan with fewer than 2 seeds)
    :param high: upper end of the 95% CI
    :param n: number of seeds
    """

    iqm: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if math.isnan(self.low):
            return f"{self.iqm:.1f} (n={self.n})"
        return f"{self.iqm:.1f} [{self.low:.1f}, {self.high:.1f}]"


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """Read a numeric CSV file into float columns; missing file -> ``{}``.

    Empty or non-numeric cells become nan; a row with the wrong number of fields (a line cut off
    by a killed run) is skipped.

    :param path: the CSV file
    :return: column name -> values
    """
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}
        rows = [row for row in reader if len(row) == len(header)]
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(header):
        columns[name] = np.array([_to_float(row[i]) for row in rows], dtype=float)
    return columns


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def load_runs(run_root: Path) -> list[Run]:
    """Read every run directory below ``run_root`` (any folder with a ``config.json``).

    :param run_root: a run directory, a group folder, or a folder of groups
    :return: the runs, sorted by (env, agent, seed)
    """
    runs = []
    for config_path in sorted(Path(run_root).rglob("config.json")):
        path = config_path.parent
        config = json.loads(config_path.read_text())
        status_path = path / "status.json"
        status = json.loads(status_path.read_text()) if status_path.is_file() else {}
        runs.append(
            Run(
                path=path,
                env=str(config.get("env_name", "?")),
                agent=str(config.get("agent_name", "?")),
                seed=int(config.get("seed", 0)),
                config=config,
                status=str(status.get("status", "missing")),
                reason=status.get("reason"),
                episodes=read_csv_columns(path / "episodes.csv"),
                metrics=read_csv_columns(path / "metrics.csv"),
            )
        )
    return sorted(runs, key=lambda r: (r.env, r.agent, r.seed))


def iqm_estimate(values: Iterable[float], seed: int = 0) -> Estimate:
    """Interquartile mean of per-seed values with a percentile-bootstrap 95% CI.

    The IQM is ``scipy.stats.trim_mean(values, 0.25)`` (rliable's ``aggregate_iqm``); the CI
    resamples seeds with replacement (``scipy.stats.bootstrap``). nan values are dropped.

    :param values: one number per seed
    :param seed: seed of the bootstrap's random generator (reports are reproducible)
    :return: the estimate
    """
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    iqm = float(stats.trim_mean(x, 0.25))
    if x.size < 2:
        return Estimate(iqm, math.nan, math.nan, 1)
    ci = stats.bootstrap(
        (x,),
        lambda a, axis: stats.trim_mean(a, 0.25, axis=axis),
        method="percentile",
        n_resamples=BOOTSTRAP_RESAMPLES,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return Estimate(iqm, float(ci.low), float(ci.high), int(x.size))


def end_of_phase_returns(run: Run, fraction: float = END_OF_PHASE_FRACTION) -> dict[int, float]:
    """Mean return of the last ``fraction`` of each phase's episodes (at least one episode).

    A run's last phase is left out when it holds fewer than half as many episodes as its other
    phases have (median): a run usually stops a little after a change (PPO finishes its last
    rollout), and the few episodes of the new physics say nothing about the end of that phase.

    :param run: a run with ``episodes.csv``
    :param fraction: share of the phase's episodes, counted from its end
    :return: phase -> mean return
    """
    phases = run.episodes.get("phase")
    returns = run.episodes.get("return")
    if phases is None or returns is None:
        return {}
    seen = np.unique(phases[~np.isnan(phases)])
    counts = [int(np.sum(phases == phase)) for phase in seen]
    if len(counts) > 1 and counts[-1] < 0.5 * np.median(counts[:-1]):
        seen = seen[:-1]
    out = {}
    for phase in seen:
        phase_returns = returns[phases == phase]
        count = max(1, math.ceil(fraction * phase_returns.size))
        out[int(phase)] = float(np.mean(phase_returns[-count:]))
    return out


def phase_boundaries(runs: list[Run]) -> list[float]:
    """Steps at which the physics changed: per phase k >= 1, the median over runs of the first
    episode end at which the run had reached phase k.

    :param runs: runs of one environment
    :return: one step per change, in order
    """
    firsts: dict[int, list[float]] = {}
    for run in runs:
        phases = run.episodes.get("phase")
        steps = run.episodes.get("timestep")
        if phases is None or steps is None or phases.size == 0:
            continue
        reached = np.maximum.accumulate(np.nan_to_num(phases, nan=0.0))
        for k in range(1, int(reached[-1]) + 1):
            firsts.setdefault(k, []).append(float(steps[np.argmax(reached >= k)]))
    return [float(np.median(firsts[k])) for k in sorted(firsts)]


def binned_on_grid(steps: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` in each step bin ``(edges[i], edges[i+1]]``; empty bins between the first
    and the last sample are interpolated linearly from their neighbours, bins outside are nan.

    :param steps: step of each sample, increasing
    :param values: the samples
    :param edges: bin edges, increasing
    :return: one value per bin
    """
    keep = ~np.isnan(values) & ~np.isnan(steps)
    steps, values = steps[keep], values[keep]
    out = np.full(edges.size - 1, np.nan)
    if steps.size == 0:
        return out
    index = np.clip(np.searchsorted(edges, steps, side="left") - 1, 0, edges.size - 2)
    sums = np.bincount(index, weights=values, minlength=edges.size - 1)
    counts = np.bincount(index, minlength=edges.size - 1)
    filled = np.flatnonzero(counts)
    span = np.arange(filled[0], filled[-1] + 1)
    out[span] = np.interp(span, filled, sums[filled] / counts[filled])
    return out


def mean_with_band(curves: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) with a percentile-bootstrap 95% band, per grid point (column).

    The band is nan where fewer than two seeds have a value.

    :param curves: seeds x grid points, nan where a seed has no value
    :param seed: seed of the bootstrap's random generator
    :return: mean, band low, band high
    """
    mean = _nan_mean_over_rows(curves)
    low = np.full_like(mean, np.nan)
    high = np.full_like(mean, np.nan)
    full = np.all(~np.isnan(curves), axis=0)
    if curves.shape[0] >= 2 and full.any():
        ci = stats.bootstrap(
            (curves[:, full],),
            np.mean,
            axis=0,
            vectorized=True,
            method="percentile",
            n_resamples=BOOTSTRAP_RESAMPLES,
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low[full], high[full] = ci.low, ci.high
    return mean, low, high


def _nan_mean_over_rows(curves: np.ndarray) -> np.ndarray:
    # np.nanmean, without its warning on all-nan columns (grid points no seed reached).
    count = np.sum(~np.isnan(curves), axis=0)
    mean = np.full(curves.shape[1], np.nan)
    np.divide(np.nansum(curves, axis=0), count, out=mean, where=count > 0)
    return mean


def _metric_of(column: str) -> str | None:
    # The metric of a plasticity/<net>/<layer>/<metric> column (None for any other column).
    parts = column.split("/")
    return parts[-1] if len(parts) >= 4 and parts[0] == "plasticity" else None


def metric_columns(columns: Iterable[str]) -> dict[str, list[str]]:
    """Group ``plasticity/<net>/<layer>/<metric>`` columns by panel title.

    :param columns: column names of ``metrics.csv``
    :return: panel title -> matching columns (only panels that match something)
    """
    panels: dict[str, list[str]] = {}
    for name in columns:
        metric = _metric_of(name)
        if metric is None:
            continue
        for title, pattern in METRIC_PANELS:
            if pattern.search(metric):
                panels.setdefault(title, []).append(name)
                break
    return {title: sorted(panels[title]) for title, _ in METRIC_PANELS if title in panels}


def _grid_edges(tables: Iterable[dict[str, np.ndarray]]) -> np.ndarray:
    # One grid for every run of a figure: 0 to the last step any of them logged.
    last = max(
        (float(np.nanmax(t["timestep"])) for t in tables if t.get("timestep", np.empty(0)).size),
        default=1.0,
    )
    return np.linspace(0.0, max(last, 1.0), GRID_POINTS + 1)


def _steps_label(x: float, _pos: int | None = None) -> str:
    # Step-axis ticks as 200k or 1.5M, so that six narrow panels stay readable.
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    return f"{x / 1e3:g}k" if x else "0"


def _save(fig: Figure, path: Path) -> None:
    # A PNG quantized to 64 colours: line plots lose nothing visible and shrink about fourfold,
    # which matters for the figures committed beside BENCHMARKS.md.
    fig.savefig(path)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _by(runs: Iterable[Run], attribute: str) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(getattr(run, attribute), []).append(run)
    return groups


def _mark_changes(ax, boundaries: list[float]) -> None:
    for i, step in enumerate(boundaries):
        ax.axvline(
            step,
            color="0.4",
            linestyle="--",
            linewidth=0.8,
            label="physics change" if i == 0 else None,
        )


def plot_returns(env: str, runs: list[Run], path: Path) -> None:
    """Episodic return against steps, one line per agent: mean over seeds, 95% bootstrap band.

    :param env: the environment name (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    """
    edges = _grid_edges(r.episodes for r in runs)
    x = edges[1:]
    fig = Figure(figsize=(6.4, 3.8), dpi=_DPI)
    ax = fig.subplots()
    for agent, agent_runs in _by(runs, "agent").items():
        curves = np.array(
            [
                binned_on_grid(r.episodes["timestep"], r.episodes["return"], edges)
                for r in agent_runs
                if "timestep" in r.episodes and "return" in r.episodes
            ]
        )
        if curves.size == 0:
            continue
        mean, low, high = mean_with_band(curves)
        (line,) = ax.plot(x, mean, label=f"{agent} (n={len(curves)})", linewidth=1.5)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    _mark_changes(ax, phase_boundaries(runs))
    ax.set_title(f"{env}: episodic return (mean over seeds, 95% bootstrap band)", fontsize=10)
    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    ax.set_ylabel("episodic return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _layer_label(column: str) -> str:
    # plasticity/<net>/<layer>/<metric> -> "<net> <layer>", the layer shortened to its last two
    # parts (mlp_extractor.policy_net.0 -> policy_net.0) so legends stay narrow.
    _, net, *layer, _ = column.split("/")
    return f"{net} {'.'.join('/'.join(layer).split('.')[-2:])}"


def plot_metrics(env: str, runs: list[Run], path: Path) -> bool:
    """Plasticity metrics over time: one row per metric, one column per agent, one line per layer
    (mean over seeds).

    :param env: the environment name (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    :return: whether there was anything to plot (nothing is written otherwise)
    """
    panels = metric_columns({c for r in runs for c in r.metrics})
    if not panels:
        return False
    by_agent = _by(runs, "agent")
    edges = _grid_edges(r.metrics for r in runs)
    x = edges[1:]
    boundaries = phase_boundaries(runs)
    fig = Figure(figsize=(3.3 * len(by_agent), 2.3 * len(panels) + 0.6), dpi=_DPI)
    axes = fig.subplots(len(panels), len(by_agent), squeeze=False, sharex=True, sharey="row")
    for row, (title, columns) in enumerate(panels.items()):
        for col, (agent, agent_runs) in enumerate(by_agent.items()):
            ax = axes[row, col]
            for column in columns:
                curves = np.array(
                    [
                        binned_on_grid(r.metrics["timestep"], r.metrics[column], edges)
                        for r in agent_runs
                        if column in r.metrics and "timestep" in r.metrics
                    ]
                )
                if curves.size:
                    label = _layer_label(column)
                    ax.plot(x, _nan_mean_over_rows(curves), linewidth=1.2, label=label)
            _mark_changes(ax, boundaries)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(agent, fontsize=9)
            if col == 0:
                ax.set_ylabel(title, fontsize=8)
                ax.legend(fontsize=6)
            if row == len(panels) - 1:
                ax.set_xlabel("environment steps", fontsize=8)
            ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    fig.suptitle(f"{env}: plasticity metrics (mean over seeds)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return True


#: The summary figure's metric panels: (title, the metric's name, the last part of its columns).
SUMMARY_METRICS = (
    ("weight mean |w|", "weight_mean_abs"),
    ("dead units", "dead"),
    ("effective rank", "effective_rank"),
)


def layer_mean_curves(runs: list[Run], metric: str, edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per agent, one metric averaged over every layer that reports it, then over seeds.

    :param runs: runs of one environment
    :param metric: the last part of a ``plasticity/<net>/<layer>/<metric>`` column
    :param edges: the step grid's bin edges (see :func:`binned_on_grid`)
    :return: agent -> curve on the grid (agents without that metric are left out)
    """
    curves: dict[str, np.ndarray] = {}
    for agent, agent_runs in _by(runs, "agent").items():
        per_seed = []
        for run in agent_runs:
            mean = _layer_mean(run, metric)
            if mean is not None and "timestep" in run.metrics:
                per_seed.append(binned_on_grid(run.metrics["timestep"], mean, edges))
        if per_seed:
            curves[agent] = _nan_mean_over_rows(np.array(per_seed))
    return curves


def metric_change_table(runs: list[Run]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per agent, each summary metric at the first and at the last measurement.

    Each value averages every hidden layer of every network (unweighted), then the seeds.

    :param runs: runs of one environment
    :return: agent -> metric title -> (first, last); metrics an agent lacks are left out
    """
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for agent, agent_runs in _by(runs, "agent").items():
        row: dict[str, tuple[float, float]] = {}
        for title, metric in SUMMARY_METRICS:
            ends = []
            for run in agent_runs:
                mean = _layer_mean(run, metric)
                finite = mean[np.isfinite(mean)] if mean is not None else np.empty(0)
                if finite.size:
                    ends.append((finite[0], finite[-1]))
            if ends:
                first, last = np.mean(np.array(ends), axis=0)
                row[title] = (float(first), float(last))
        if row:
            table[agent] = row
    return table


def _layer_mean(run: Run, metric: str) -> np.ndarray | None:
    # Per measurement, the mean of the run's plasticity/<net>/<layer>/<metric> columns of that
    # metric (None when it has none).
    columns = [c for c in run.metrics if _metric_of(c) == metric]
    if not columns:
        return None
    return _nan_mean_over_rows(np.vstack([run.metrics[c] for c in columns]))


def plot_summary(
    env: str,
    runs: list[Run],
    path: Path,
    table: dict[str, dict[int, Estimate]],
    reference: str | None,
) -> None:
    """One row for the whole comparison: return per phase, weight magnitude, dead units and
    effective rank over time, one line per agent.

    The first panel is each agent's end-of-phase return minus the reset agent's (same phase,
    same seed; IQM over seeds with its 95% CI as error bars) when the sweep has a reset agent,
    else the end-of-phase return. The metric panels average every hidden layer of every network
    (unweighted), then the seeds.

    :param env: the environment name (title)
    :param runs: the finished runs of that environment
    :param path: the PNG to write
    :param table: :func:`relative_table` against ``reference``, or :func:`phase_table` when
        there is no reference
    :param reference: the reset agent (see :func:`reset_reference`), or None
    """
    edges = _grid_edges(r.metrics for r in runs)
    panels = [(t, layer_mean_curves(runs, m, edges)) for t, m in SUMMARY_METRICS]
    panels = [(t, c) for t, c in panels if c]
    fig = Figure(figsize=(3.6 * (1 + len(panels)), 3.4), dpi=_DPI)
    axes = fig.subplots(1, 1 + len(panels), squeeze=False)[0]
    agents = sorted({r.agent for r in runs})
    colors = {a: f"C{i}" for i, a in enumerate(agents)}
    ax = axes[0]
    shown = [a for a in agents if a in table]
    for i, agent in enumerate(shown):
        phases = sorted(table[agent])
        x = np.array(phases) + 0.5 * (i - (len(shown) - 1) / 2) / max(len(shown), 1)
        est = [table[agent][p] for p in phases]
        y = np.array([e.iqm for e in est])
        low = np.array([e.iqm - e.low if not math.isnan(e.low) else 0.0 for e in est])
        high = np.array([e.high - e.iqm if not math.isnan(e.high) else 0.0 for e in est])
        ax.errorbar(
            x,
            y,
            yerr=[low, high],
            color=colors[agent],
            marker="o",
            markersize=3,
            linewidth=1.2,
            capsize=2,
            label=agent,
        )
    if reference:
        ax.axhline(
            0.0,
            color=colors.get(reference, "0.3"),
            linewidth=1.0,
            linestyle=":",
            label=f"{reference} (= 0)",
        )
        ax.set_ylabel(f"end-of-phase return - {reference}'s", fontsize=8)
    else:
        ax.set_ylabel("end-of-phase return", fontsize=8)
    values = np.abs([e.iqm for a in shown for e in table[a].values() if np.isfinite(e.iqm)])
    typical = float(np.median(values)) if values.size else 0.0
    if typical > 0 and values.max() > 10 * typical:
        # One phase's returns dwarf the others' (a physics that allows an exploit, say): a
        # symmetric log scale, linear up to the typical size, keeps every phase readable.
        linthresh = 10 ** math.floor(math.log10(4 * typical))
        ax.set_yscale("symlog", linthresh=linthresh, linscale=2)
        ax.set_ylabel(ax.get_ylabel() + " (symlog)", fontsize=8)
    ax.set_xlabel("phase", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=6, loc="upper left")
    boundaries = phase_boundaries(runs)
    for ax, (title, curves) in zip(axes[1:], panels, strict=True):
        for agent, curve in curves.items():
            ax.plot(edges[1:], curve, color=colors[agent], linewidth=1.2, label=agent)
        _mark_changes(ax, boundaries)
        ax.set_title(title + " (hidden layers)", fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].set_title("return per phase (IQM, 95% CI)", fontsize=9)
    fig.suptitle(f"{env}: summary (mean over seeds)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def phase_table(runs: list[Run]) -> dict[str, dict[int, Estimate]]:
    """End-of-phase return per agent and phase: IQM over seeds with a bootstrap 95% CI.

    :param runs: finished runs of one environment
    :return: agent -> phase -> estimate
    """
    table: dict[str, dict[int, Estimate]] = {}
    for agent, agent_runs in _by(runs, "agent").items():
        per_seed = [end_of_phase_returns(r) for r in agent_runs]
        phases = sorted({p for returns in per_seed for p in returns})
        table[agent] = {
            p: iqm_estimate(returns.get(p, math.nan) for returns in per_seed) for p in phases
        }
    return table


def reset_reference(runs: list[Run]) -> str | None:
    """The agent that return differences are taken against: a reset agent of the sweep.

    With several, ``ppo-reset`` if present, else the first by name.

    :param runs: runs of one environment
    :return: agent name, or None when the sweep has no reset agent
    """
    names = sorted({r.agent for r in runs if r.is_reset_agent})
    if not names:
        return None
    preferred = [n for n in names if n in RESET_AGENT_NAMES]
    return (preferred or names)[0]


def relative_table(runs: list[Run], reference: str) -> dict[str, dict[int, Estimate]]:
    """Each agent's end-of-phase return minus the reference agent's, same phase and same seed.

    Pairing by seed compares the two agents on the same drawn physics (a schedule's values are a
    function of the seed); the IQM and CI are over those per-seed differences.

    :param runs: finished runs of one environment
    :param reference: the reference agent's name (see :func:`reset_reference`)
    :return: agent -> phase -> estimate of (agent - reference)
    """
    ref = {r.seed: end_of_phase_returns(r) for r in runs if r.agent == reference}
    table: dict[str, dict[int, Estimate]] = {}
    for agent, agent_runs in _by(runs, "agent").items():
        if agent == reference:
            continue
        diffs: dict[int, list[float]] = {}
        for run in agent_runs:
            for phase, value in end_of_phase_returns(run).items():
                if phase in ref.get(run.seed, {}):
                    diffs.setdefault(phase, []).append(value - ref[run.seed][phase])
        table[agent] = {p: iqm_estimate(diffs[p]) for p in sorted(diffs)}
    return table


def _markdown_table(table: dict[str, dict[int, Estimate]]) -> list[str]:
    phases = sorted({p for row in table.values() for p in row})
    lines = [
        "| agent | " + " | ".join(f"phase {p}" for p in phases) + " |",
        "|---|" + "---|" * len(phases),
    ]
    for agent, row in table.items():
        cells = [str(row[p]) if p in row else "" for p in phases]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return lines


def _first_to_last(pair: tuple[float, float]) -> str:
    first, last = pair
    return f"{first:.3g} -> {last:.3g}"


def write_report(run_root: Path, out_dir: Path | None = None) -> Path:
    """Write PNG figures and ``report.md`` for every run below ``run_root``.

    :param run_root: folder holding run directories (searched recursively)
    :param out_dir: where to write; default ``<run_root>/report``
    :return: path of ``report.md``
    """
    run_root = Path(run_root)
    out_dir = Path(out_dir) if out_dir is not None else run_root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(run_root)
    done = [r for r in runs if r.status == "done"]
    not_done = [r for r in runs if r.status != "done"]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in runs).items()))
    lines = [
        f"# Report: {run_root}",
        "",
        f"{len(runs)} runs ({counts or 'none'}). Figures and tables use finished runs only.",
        "",
    ]
    for env, env_runs in _by(done, "env").items():
        stem = _safe_name(env)
        lines += [f"## {env}", ""]
        phases = phase_table(env_runs)
        reference = reset_reference(env_runs)
        relative = relative_table(env_runs, reference) if reference is not None else None
        summary_table = relative if relative is not None else phases
        plot_summary(env, env_runs, out_dir / f"summary_{stem}.png", summary_table, reference)
        plot_returns(env, env_runs, out_dir / f"returns_{stem}.png")
        lines += [
            f"![summary {env}](summary_{stem}.png)",
            "",
            f"![returns {env}](returns_{stem}.png)",
            "",
        ]
        lines += [
            "### Return at the end of each phase",
            "",
            f"Mean return of the last {END_OF_PHASE_FRACTION:.0%} of a phase's episodes per seed; "
            "interquartile mean over seeds [bootstrap 95% CI].",
            "",
            *_markdown_table(phases),
            "",
        ]
        if relative is not None:
            lines += [
                f"### Return relative to `{reference}`",
                "",
                f"End-of-phase return minus `{reference}`'s (a fresh network at every change) in "
                "the same phase with the same seed, so the same physics; interquartile mean over "
                "seeds [bootstrap 95% CI]. Above 0: the agent is more plastic than a fresh "
                "network. A difference, not a ratio, because returns can be negative or near 0, "
                "and returns of different phases are not comparable with each other.",
                "",
                *_markdown_table(relative),
                "",
            ]
        changes = metric_change_table(env_runs)
        if changes:
            titles = [t for t, _ in SUMMARY_METRICS if any(t in row for row in changes.values())]
            lines += [
                "### Plasticity metrics, first and last measurement",
                "",
                "Every hidden layer of every network averaged (unweighted), then the seeds.",
                "",
                "| agent | " + " | ".join(t.replace("|", "\\|") for t in titles) + " |",
                "|---|" + "---|" * len(titles),
            ]
            for agent, row in changes.items():
                cells = [_first_to_last(row[t]) if t in row else "" for t in titles]
                lines.append(f"| {agent} | " + " | ".join(cells) + " |")
            lines.append("")
        if plot_metrics(env, env_runs, out_dir / f"metrics_{stem}.png"):
            lines += ["### Plasticity metrics", "", f"![metrics {env}](metrics_{stem}.png)", ""]
    if not_done:
        lines += ["## Runs not finished", "", "| run | status | reason |", "|---|---|---|"]
        for run in not_done:
            where = run.path.relative_to(run_root) if run.path != run_root else run.path.name
            reason = " ".join((run.reason or "").split()).replace("|", "\\|")
            if len(reason) > REASON_CHARS:  # a traceback's message can hold a whole tensor
                reason = reason[: REASON_CHARS - 3] + "..."
            lines.append(f"| `{where}` | {run.status} | {reason} |")
        lines.append("")
    lines += [
        "## Method",
        "",
        f"Curves: each seed's episode returns are averaged in {GRID_POINTS} equal step bins "
        "(interpolated over empty bins); the line is the mean over seeds and the band a "
        f"percentile bootstrap 95% interval over seeds ({BOOTSTRAP_RESAMPLES} resamples, "
        "`scipy.stats.bootstrap`), drawn where every seed has a value. Dashed lines: physics "
        "changes (median over runs of the first episode end in the new phase). Interquartile "
        "mean: `scipy.stats.trim_mean(x, 0.25)` (as rliable's `aggregate_iqm`); with fewer than "
        "4 seeds it trims nothing and is the mean.",
        "",
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
