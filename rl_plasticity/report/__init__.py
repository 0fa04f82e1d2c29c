"""Runs -> figures, CSV tables and a Markdown report (``rlp report``).

Modules, one concern each: :mod:`.runs` (run directories read, grouped into rows that may be
pooled, filtered, duplicates found), :mod:`.changes` (change steps and drifting values),
:mod:`.statistics` (pure numpy/scipy: IQM and bootstrap intervals, recovery time, area between
curves, probability of improvement, performance profiles, stratified bootstrap), :mod:`.tables`
(the report's tables from runs), :mod:`.names` (readable names of drifting parameters, from
:mod:`rl_plasticity.nonstationary.parameters`; the metrics' titles, units and figures are in
:mod:`rl_plasticity.metrics.registry`, the layers' and networks' names in
:mod:`rl_plasticity.sb3.layer_names`),
:mod:`.figures` and :mod:`.metric_figures` (the PNGs), :mod:`.markdown` (:func:`write_report`).
"""

from rl_plasticity.report.changes import change_steps, drift_values, phase_boundaries
from rl_plasticity.report.markdown import write_report
from rl_plasticity.report.runs import Run, load_runs, read_csv_columns, select_runs
from rl_plasticity.report.statistics import (
    Estimate,
    binned_on_grid,
    iqm_estimate,
    mean_with_band,
)
from rl_plasticity.report.tables import (
    change_table,
    end_of_phase_returns,
    metric_change_table,
    phase_table,
    relative_table,
    reset_reference,
)

__all__ = [
    "Estimate",
    "Run",
    "binned_on_grid",
    "change_steps",
    "change_table",
    "drift_values",
    "end_of_phase_returns",
    "iqm_estimate",
    "load_runs",
    "mean_with_band",
    "metric_change_table",
    "phase_boundaries",
    "phase_table",
    "read_csv_columns",
    "relative_table",
    "reset_reference",
    "select_runs",
    "write_report",
]
