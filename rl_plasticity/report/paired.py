"""Paired tests of a study: the t-test's p-value, Holm's correction, phase ends from evaluations.

Pure numpy/scipy on arrays, beside :mod:`.statistics` (intervals, bootstrap, curves), for the
study's verdicts (:mod:`.verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats


def t_test_p(values: Iterable[float]) -> float:
    """Two-sided p-value of the one-sample t-test of per-seed values against 0 (nan dropped;
    nan with fewer than 2 values). Consistent with :func:`t_interval`: the interval at ``level``
    excludes 0 exactly when ``p < 1 - level``.

    :param values: one number per seed (e.g. paired differences or log-ratios)
    """
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if x.size < 2:
        return math.nan
    if np.all(x == x[0]):
        return 1.0 if x[0] == 0 else 0.0
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input's order.

    Sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)) (i, j from 1);
    rejecting where the adjusted value is below alpha controls the family-wise error at alpha.
    nan values are left out of m and stay nan.

    :param p_values: one p-value per comparison
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(order)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def end_of_phase_from_evaluations(
    timesteps: np.ndarray, phases: np.ndarray, returns: np.ndarray
) -> dict[int, float]:
    """Each complete phase's evaluation return at its end, from a run's ``eval.csv`` rows.

    Phase p ends at the first evaluation that sees a later phase; its value is the return of
    its physics at the last evaluation of them at or before that one (with ``--eval-phases`` >= 1,
    the evaluation at the phase's end evaluates the phase just ended). Evaluations of p's physics
    after that measure what the agent kept of it while training on later phases, not the end of
    p, and are not used. A phase the run stopped inside is left out.

    :param timesteps: the training step of each row
    :param phases: the phase whose physics each row evaluated
    :param returns: each row's mean return
    :return: phase -> return at the phase's end
    """
    out = {}
    for phase in np.unique(phases[~np.isnan(phases)]):
        later = timesteps[phases > phase]
        if later.size == 0:
            continue
        rows = np.flatnonzero((phases == phase) & (timesteps <= later.min()))
        if rows.size:
            out[int(phase)] = float(returns[rows[np.argmax(timesteps[rows])]])
    return out
