"""The report's tables, computed from runs: returns per phase, relative to the reset agent,
plasticity after each change, metrics first -> last, probability of improvement across envs.
Each table is a plain dict, written as Markdown by :mod:`.markdown` and as CSV by
:func:`write_csv`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from rl_plasticity.metrics.registry import METRICS, metric_info, split_column
from rl_plasticity.report.changes import change_steps
from rl_plasticity.report.runs import Run, by_attribute
from rl_plasticity.report.statistics import (
    END_OF_PHASE_FRACTION,
    Estimate,
    end_of_phase_values,
    iqm_estimate,
    mean_gap,
    nan_mean_over_rows,
    probability_of_improvement,
    recovery_time,
    stratified_bootstrap,
)

#: The summary's metrics: (title, the last part of their ``plasticity/...`` columns).
SUMMARY_METRICS = tuple(
    (METRICS[m].title, m) for m in ("weight_mean_abs", "dead", "effective_rank")
)
#: Episodes in the moving average of :func:`statistics.recovery_time`.
RECOVERY_WINDOW = 5


def end_of_phase_returns(run: Run, fraction: float = END_OF_PHASE_FRACTION) -> dict[int, float]:
    """A run's mean return over the last ``fraction`` of each phase's episodes.

    :param run: a run with ``episodes.csv``
    :param fraction: share of the phase's episodes, counted from its end
    :return: phase -> mean return (see :func:`statistics.end_of_phase_values`)
    """
    phases = run.episodes.get("phase")
    returns = run.episodes.get("return")
    if phases is None or returns is None:
        return {}
    return end_of_phase_values(phases, returns, fraction, run.episodes.get("timestep"))


def phase_table(runs: list[Run]) -> dict[str, dict[int, Estimate]]:
    """End-of-phase return per row and phase: IQM over seeds with a bootstrap interval.

    :param runs: finished runs of one environment
    :return: row label -> phase -> estimate
    """
    table: dict[str, dict[int, Estimate]] = {}
    for label, row_runs in by_attribute(runs, "label").items():
        per_seed = [end_of_phase_returns(r) for r in row_runs]
        phases = sorted({p for returns in per_seed for p in returns})
        table[label] = {
            p: iqm_estimate(returns.get(p, math.nan) for returns in per_seed) for p in phases
        }
    return table


def reset_reference(runs: list[Run]) -> str | None:
    """The row that return differences are taken against: one whose agent spec's method is
    ``reset`` (a fresh network at every change), whatever the spec is called; with several, the
    first by label.

    :param runs: runs of one environment
    :return: row label, or None when no run resets
    """
    labels = sorted({r.label for r in runs if r.is_reset_agent})
    return labels[0] if labels else None


def relative_table(runs: list[Run], reference: str) -> dict[str, dict[int, Estimate]]:
    """Each row's end-of-phase return minus the reference row's, same phase and same seed.

    Pairing by seed compares the two agents on the same drawn physics; the IQM and interval are
    over those per-seed differences.

    :param runs: finished runs of one environment
    :param reference: the reference row's label (see :func:`reset_reference`)
    :return: row label -> phase -> estimate of (row - reference)
    """
    ref = {r.seed: end_of_phase_returns(r) for r in runs if r.label == reference}
    table: dict[str, dict[int, Estimate]] = {}
    for label, row_runs in by_attribute(runs, "label").items():
        if label == reference:
            continue
        diffs: dict[int, list[float]] = {}
        for run in row_runs:
            for phase, value in end_of_phase_returns(run).items():
                if phase in ref.get(run.seed, {}):
                    diffs.setdefault(phase, []).append(value - ref[run.seed][phase])
        table[label] = {p: iqm_estimate(diffs[p]) for p in sorted(diffs)}
    return table


def combine_columns(columns: list[np.ndarray], aggregate: str) -> np.ndarray:
    """Per step, the columns combined as a metric's ``aggregate`` says, ignoring nan.

    :param columns: equal-length value arrays (one per layer or network)
    :param aggregate: ``"sum"``, or ``"mean"`` (nan where no column has a value); see
        :data:`rl_plasticity.metrics.registry.AGGREGATES`
    :return: one array of the same length
    """
    stacked = np.vstack(columns)
    return np.nansum(stacked, axis=0) if aggregate == "sum" else nan_mean_over_rows(stacked)


def layer_mean(run: Run, metric: str) -> np.ndarray | None:
    """Per measurement, the run's per-layer columns of ``metric`` combined by its ``aggregate``
    (:mod:`rl_plasticity.metrics.registry`: a mean for every metric the callback records), or
    None if it has none.

    :param run: a run with ``metrics.csv``
    :param metric: the last part of a ``plasticity/<net>/<layer>/<metric>`` column
    """
    columns = [
        c for c in run.metrics if (s := split_column(c)) and s[1] is not None and s[2] == metric
    ]
    if not columns:
        return None
    return combine_columns([run.metrics[c] for c in columns], metric_info(metric).aggregate)


def metric_change_table(runs: list[Run]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """Per row, each summary metric at the first and at the last measurement.

    Each value averages every hidden layer of every network (unweighted), then the seeds.

    :param runs: runs of one environment
    :return: row -> metric title -> (first, last, measurements); metrics a row lacks are left out
    """
    table: dict[str, dict[str, tuple[float, float, int]]] = {}
    for label, row_runs in by_attribute(runs, "label").items():
        row: dict[str, tuple[float, float, int]] = {}
        for title, metric in SUMMARY_METRICS:
            ends, counts = [], []
            for run in row_runs:
                mean = layer_mean(run, metric)
                finite = mean[np.isfinite(mean)] if mean is not None else np.empty(0)
                if finite.size:
                    ends.append((finite[0], finite[-1]))
                    counts.append(finite.size)
            if ends:
                first, last = np.mean(np.array(ends), axis=0)
                row[title] = (float(first), float(last), min(counts))
        if row:
            table[label] = row
    return table


def change_table(runs: list[Run], reference: str | None) -> dict[str, dict[int, dict]]:
    """Plasticity after each change, per row and change: IQM over seeds of

    - ``recovery_own``: steps after the change until the moving average of
      :data:`RECOVERY_WINDOW` episode returns regains the run's own pre-change level (its
      end-of-phase return before the change); nan seeds (never within the phase) are counted in
      ``recovered_own`` (k of n);
    - ``recovery_reset``: the same, to the reset agent's end-of-phase return in the new phase
      (same seed);
    - ``gap_own``: mean return over the new phase minus the pre-change level (area under the
      curve relative to the agent's own level, per step);
    - ``gap_reset``: mean return over the new phase minus the reset agent's (same seed, same
      phase), the area between the two curves per step.

    :param runs: finished runs of one environment
    :param reference: the reset row's label, or None
    :return: row -> change number (1 = first change) -> statistic -> Estimate or "k/n"
    """
    ref_runs = {r.seed: r for r in runs if r.label == reference}
    table: dict[str, dict[int, dict]] = {}
    for label, row_runs in by_attribute(runs, "label").items():
        per_change: dict[int, dict[str, list[float]]] = {}
        for run in row_runs:
            ref = ref_runs.get(run.seed) if label != reference else None
            for k, stats in _run_changes(run, ref).items():
                for key, value in stats.items():
                    per_change.setdefault(k, {}).setdefault(key, []).append(value)
        rows = {}
        for k, columns in sorted(per_change.items()):
            row: dict = {}
            for key, values in columns.items():
                row[key] = iqm_estimate(values)
                if key.startswith("recovery"):
                    reached = sum(not math.isnan(v) for v in values)
                    row["recovered" + key[len("recovery") :]] = f"{reached}/{len(values)}"
            rows[k] = row
        if rows:
            table[label] = rows
    return table


def _run_changes(run: Run, ref: Run | None) -> dict[int, dict[str, float]]:
    steps, returns = run.episodes.get("timestep"), run.episodes.get("return")
    if steps is None or returns is None:
        return {}
    changes = change_steps(run)
    if not changes:
        return {}
    ends = [*changes[1:], float(run.last_step)]
    own = end_of_phase_returns(run)
    ref_levels = end_of_phase_returns(ref) if ref is not None else {}
    out = {}
    for k, (start, end) in enumerate(zip(changes, ends, strict=True), start=1):
        if k - 1 not in own or k not in own:  # no pre-change level, or a new phase cut short
            continue
        level = own[k - 1]
        inside = (steps > start) & (steps <= end)
        stats = {
            "recovery_own": recovery_time(steps, returns, start, end, level, RECOVERY_WINDOW),
            "gap_own": mean_gap(steps[inside], returns[inside], level, start, end),
        }
        if ref is not None and k in ref_levels:
            stats["recovery_reset"] = recovery_time(
                steps, returns, start, end, ref_levels[k], RECOVERY_WINDOW
            )
            ref_steps, ref_returns = ref.episodes["timestep"], ref.episodes["return"]
            ref_on_steps = np.interp(steps[inside], ref_steps, ref_returns)
            stats["gap_reset"] = mean_gap(steps[inside], returns[inside], ref_on_steps, start, end)
        out[k] = stats
    return out


def final_scores(runs: list[Run]) -> dict[str, dict[str, np.ndarray]]:
    """Per row and environment, each seed's return at the end of the last phase every seed of
    the row completed.

    :param runs: finished runs of every environment
    :return: row label -> environment label -> per-seed scores
    """
    scores: dict[str, dict[str, np.ndarray]] = {}
    for env, env_runs in by_attribute(runs, "env_label").items():
        for label, row_runs in by_attribute(env_runs, "label").items():
            finals = [end_of_phase_returns(r) for r in row_runs]
            last = min((max(f) for f in finals if f), default=None)
            scores.setdefault(label, {})[env] = np.array(
                [f.get(last, math.nan) if last is not None else math.nan for f in finals]
            )
    return scores


def improvement_table(
    runs: list[Run], references: dict[str, str]
) -> dict[str, tuple[float, float, float, int]]:
    """Probability that a row's final-phase return beats the reset agent's, across environments.

    Per environment the score of a run is its last complete phase's end-of-phase return; P(X >
    reset) is averaged over the environments that have both (Agarwal et al. 2021), with a
    stratified bootstrap interval (seeds resampled within each environment).

    :param runs: finished runs of every environment
    :param references: environment label -> its reset row's label
    :return: row label -> (probability, low, high, number of environments)
    """
    scores = final_scores(runs)
    table = {}
    for label, per_env in scores.items():
        envs = [e for e in per_env if e in references and references[e] != label]
        envs = [e for e in envs if references[e] in scores and e in scores[references[e]]]
        if not envs:
            continue
        x = [per_env[e] for e in envs]
        y = [scores[references[e]][e] for e in envs]
        p = probability_of_improvement(x, y)
        low, high = stratified_bootstrap([x, y], probability_of_improvement, resamples=500)
        table[label] = (p, low, high, len(envs))
    return table


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """Write one table as CSV (numbers unrounded).

    :param path: the file
    :param header: column names
    :param rows: the rows
    """
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
