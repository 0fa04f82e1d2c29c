"""Statistics of the report: pure numpy/scipy on arrays, no run directories.

- Interquartile mean over seeds with a percentile-bootstrap interval (``scipy.stats.trim_mean``,
  ``scipy.stats.bootstrap``), as rliable's ``aggregate_iqm``.
- Curves binned on a common step grid, a mean with a band over seeds.
- Plasticity after a change: recovery time (steps until a smoothed return regains a level) and
  the mean gap over a phase (area between two curves divided by the phase's length).
- Across environments (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"):
  probability of improvement, performance profiles, and stratified bootstrap intervals (seeds
  resampled within each environment).

What n seeds support: with fewer than :data:`MIN_SEEDS_FOR_CI` seeds a percentile bootstrap
interval is far too narrow to be a 95% confidence interval (it is bounded by the seeds' range,
and with 2 seeds takes only 3 distinct values); the report then says so and shows the range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Resamples for every bootstrap interval.
BOOTSTRAP_RESAMPLES = 2000
#: Fewest seeds for which a bootstrap interval is called a 95% confidence interval.
MIN_SEEDS_FOR_CI = 5
#: Fraction of a phase's episodes (its last ones) whose returns stand for "the end of the phase".
END_OF_PHASE_FRACTION = 0.2


@dataclass(frozen=True)
class Estimate:
    """An interquartile mean over seeds with its percentile-bootstrap interval.

    :param iqm: interquartile mean (the plain mean below 4 seeds, where nothing is trimmed)
    :param low: lower end of the interval (nan with fewer than 2 seeds)
    :param high: upper end of the interval
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


def iqm_estimate(values: Iterable[float], seed: int = 0) -> Estimate:
    """Interquartile mean of per-seed values with a percentile-bootstrap 95% interval.

    The IQM is ``scipy.stats.trim_mean(values, 0.25)`` (rliable's ``aggregate_iqm``); the
    interval resamples seeds with replacement (``scipy.stats.bootstrap``). nan values are
    dropped.

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


def end_of_phase_values(
    phases: np.ndarray,
    returns: np.ndarray,
    fraction: float = END_OF_PHASE_FRACTION,
    steps: np.ndarray | None = None,
) -> dict[int, float]:
    """Mean return of the last ``fraction`` of each phase's episodes (at least one episode).

    A last phase is left out when it is shorter than half the other phases (median): a run
    usually stops a little after a change, and the few episodes of the new physics say nothing
    about the end of that phase. Length is in steps when ``steps`` is given (episodes get longer
    as an agent learns), else in episodes.

    :param phases: phase of each episode
    :param returns: return of each episode
    :param fraction: share of the phase's episodes, counted from its end
    :param steps: step at which each episode ended, increasing (None: lengths in episodes)
    :return: phase -> mean return
    """
    seen = np.unique(phases[~np.isnan(phases)])
    if steps is None:
        lengths = [float(np.sum(phases == phase)) for phase in seen]
    else:
        ends = [float(np.max(steps[phases == phase])) for phase in seen]
        lengths = list(np.diff([0.0, *ends]))
    if len(lengths) > 1 and lengths[-1] < 0.5 * np.median(lengths[:-1]):
        seen = seen[:-1]
    out = {}
    for phase in seen:
        phase_returns = returns[phases == phase]
        count = max(1, math.ceil(fraction * phase_returns.size))
        out[int(phase)] = float(np.mean(phase_returns[-count:]))
    return out


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


def nan_mean_over_rows(curves: np.ndarray) -> np.ndarray:
    """Column means ignoring nan, nan where a column has no value (without numpy's warning).

    :param curves: rows x columns
    """
    count = np.sum(~np.isnan(curves), axis=0)
    mean = np.full(curves.shape[1], np.nan)
    np.divide(np.nansum(curves, axis=0), count, out=mean, where=count > 0)
    return mean


def mean_with_band(curves: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) with a band, per grid point (column).

    With at least :data:`MIN_SEEDS_FOR_CI` seeds the band is a percentile-bootstrap 95% interval
    of the mean; with fewer it is the range (min to max) of the seeds. nan where fewer than two
    seeds have a value.

    :param curves: seeds x grid points, nan where a seed has no value
    :param seed: seed of the bootstrap's random generator
    :return: mean, band low, band high
    """
    mean = nan_mean_over_rows(curves)
    low = np.full_like(mean, np.nan)
    high = np.full_like(mean, np.nan)
    full = np.all(~np.isnan(curves), axis=0)
    if curves.shape[0] < 2 or not full.any():
        return mean, low, high
    if curves.shape[0] < MIN_SEEDS_FOR_CI:
        low[full], high[full] = curves[:, full].min(axis=0), curves[:, full].max(axis=0)
        return mean, low, high
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


def recovery_time(
    steps: np.ndarray, values: np.ndarray, start: float, end: float, level: float, window: int = 5
) -> float:
    """Steps from ``start`` until the moving average of ``values`` first reaches ``level``.

    Only samples with ``start < step <= end`` count; the moving average is over the last
    ``window`` of them (fewer at the start). A curve that never reaches the level before ``end``
    gives nan (not recovered within the phase).

    :param steps: step of each sample (e.g. episode ends), increasing
    :param values: the samples (e.g. episode returns)
    :param start: the change step
    :param end: the next change step (or the run's end)
    :param level: the level to regain (e.g. the pre-change return)
    :param window: samples in the moving average
    :return: steps after ``start``, or nan
    """
    inside = (steps > start) & (steps <= end) & ~np.isnan(values)
    s, v = steps[inside], values[inside]
    if s.size == 0:
        return math.nan
    cumulative = np.concatenate([[0.0], np.cumsum(v)])
    index = np.arange(1, v.size + 1)
    first = np.maximum(index - window, 0)
    moving = (cumulative[index] - cumulative[first]) / (index - first)
    reached = np.flatnonzero(moving >= level)
    return float(s[reached[0]] - start) if reached.size else math.nan


def mean_gap(
    steps: np.ndarray, values: np.ndarray, reference: np.ndarray | float, start: float, end: float
) -> float:
    """Area between a curve and a reference over ``[start, end]``, divided by ``end - start``.

    Both are taken as piecewise linear between their samples (held constant beyond the first
    and last); the area is integrated on 200 points. Positive when the curve lies above: in
    return units, the average advantage over the phase (area under the curve relative to the
    reference).

    :param steps: sample steps of the curve (and of ``reference`` when it is an array)
    :param values: the curve
    :param reference: a curve on the same ``steps``, or a constant level
    :param start: start of the interval
    :param end: end of the interval (> start)
    :return: the mean difference
    """
    keep = ~np.isnan(values) & ~np.isnan(np.broadcast_to(reference, values.shape))
    if not keep.any() or end <= start:
        return math.nan
    grid = np.linspace(start, end, 200)
    gap = np.interp(grid, steps[keep], (values - reference)[keep])
    return float(np.trapezoid(gap, grid) / (end - start))


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """P(X > Y) of Agarwal et al. (2021): per task, the probability that a run of X scores more
    than a run of Y (ties count half, Mann-Whitney U / (n m)); then the mean over tasks.

    :param x: per task, the scores of algorithm X (one per seed)
    :param y: per task, the scores of algorithm Y, same tasks in the same order
    :return: a probability in [0, 1] (nan without a task where both have scores)
    """
    per_task = []
    for a, b in zip(x, y, strict=True):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if a.size and b.size:
            greater = (a[:, None] > b[None, :]).mean()
            ties = (a[:, None] == b[None, :]).mean()
            per_task.append(greater + 0.5 * ties)
    return float(np.mean(per_task)) if per_task else math.nan


def performance_profile(scores: Sequence[np.ndarray], taus: np.ndarray) -> np.ndarray:
    """Run-score distribution (Agarwal et al. 2021): the fraction of runs, over all tasks and
    seeds, with a normalized score above each threshold (each task weighted equally).

    :param scores: per task, normalized scores of one algorithm (one per seed)
    :param taus: thresholds
    :return: one fraction per threshold
    """
    per_task = [
        (np.asarray(s)[~np.isnan(s)][:, None] > taus[None, :]).mean(axis=0)
        for s in scores
        if np.any(~np.isnan(s))
    ]
    return np.mean(per_task, axis=0) if per_task else np.full(taus.shape, np.nan)


def stratified_bootstrap(
    samples: Sequence[Sequence[np.ndarray]],
    statistic: Callable[..., float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` with seeds resampled within each task.

    Each resample draws, for every algorithm and every task independently, as many seeds as it
    has, with replacement; tasks are never mixed (rliable's ``StratifiedBootstrap``).

    :param samples: per algorithm, per task, the per-seed scores
    :param statistic: called as ``statistic(*resampled)`` with one per-task list per algorithm
    :param resamples: number of resamples
    :param seed: seed of the random generator
    :param confidence: the interval's coverage
    :return: (low, high)
    """
    rng = np.random.default_rng(seed)
    arrays = [[np.asarray(task, dtype=float) for task in algo] for algo in samples]
    values = np.empty(resamples)
    for r in range(resamples):
        drawn = [
            [task[rng.integers(0, task.size, task.size)] if task.size else task for task in algo]
            for algo in arrays
        ]
        values[r] = statistic(*drawn)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def min_max_normalize(scores: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scores of one task for several algorithms, scaled to [0, 1] by the task's min and max.

    :param scores: per algorithm, the per-seed scores on one task
    :return: the same shapes; all 0.5 when every score is equal
    """
    finite = np.concatenate([np.asarray(s, dtype=float) for s in scores])
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return [np.asarray(s, dtype=float) for s in scores]
    low, high = finite.min(), finite.max()
    if high == low:
        return [np.where(np.isnan(s), np.nan, 0.5) for s in scores]
    return [(np.asarray(s, dtype=float) - low) / (high - low) for s in scores]


def end_of_phase_by_steps(
    phases: np.ndarray, returns: np.ndarray, steps: np.ndarray, fraction: float = 0.2
) -> dict[int, float]:
    """Mean return of the episodes that end in the last ``fraction`` of each phase's steps.

    A phase's steps run from the end of the previous phase's last episode (0 for the first) to
    the end of its own last episode; an episode belongs to the phase it ran in. Unlike
    :func:`end_of_phase_values` (a share of the episodes), the window is fixed in steps, so an
    agent whose episodes are long is averaged over as many steps as one whose episodes are short.
    A last phase shorter than half the median phase is left out (the run stopped just after a
    change).

    :param phases: phase of each episode
    :param returns: return of each episode
    :param steps: step at which each episode ended, increasing
    :param fraction: the window's share of the phase's steps, in (0, 1]
    :return: phase -> mean return (phases with no episode in their window are left out)
    """
    seen = [int(p) for p in np.unique(phases[~np.isnan(phases)])]
    ends = [float(np.max(steps[phases == p])) for p in seen]
    starts = [0.0, *ends[:-1]]
    lengths = np.subtract(ends, starts)
    if len(seen) > 1 and lengths[-1] < 0.5 * np.median(lengths[:-1]):
        seen = seen[:-1]
    out = {}
    for i, phase in enumerate(seen):
        inside = (phases == phase) & (steps > ends[i] - fraction * lengths[i])
        if np.any(inside):
            out[phase] = float(np.mean(returns[inside]))
    return out


@dataclass(frozen=True)
class TInterval:
    """A mean over seeds with its Student-t confidence interval.

    :param mean: the mean
    :param low: lower end (nan with fewer than 2 values)
    :param high: upper end
    :param n: number of values
    """

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if math.isnan(self.low):
            return f"{self.mean:+.1f} (n={self.n})"
        return f"{self.mean:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"

    @property
    def sign(self) -> int:
        """+1 when the interval lies above 0, -1 below, 0 when it holds 0 (or is undefined)."""
        if math.isnan(self.low):
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def t_interval(values: Iterable[float], level: float = 0.95) -> TInterval:
    """Mean of per-seed values with a Student-t interval (``scipy.stats.t``), nan dropped.

    For paired per-seed differences this is the paired t-test's interval: it lies above 0 exactly
    when the two-sided paired t-test at ``1 - level`` finds the mean difference positive.

    :param values: one number per seed
    :param level: confidence level
    :return: the interval
    """
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if x.size == 0:
        return TInterval(math.nan, math.nan, math.nan, 0)
    mean = float(np.mean(x))
    if x.size < 2:
        return TInterval(mean, math.nan, math.nan, 1)
    sem = float(np.std(x, ddof=1)) / math.sqrt(x.size)
    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1)) * sem
    return TInterval(mean, mean - half, mean + half, int(x.size))


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` on ``x`` (nan with fewer than 2 points).

    :param x: e.g. phase indices
    :param y: e.g. per-phase differences
    """
    if len(x) < 2:
        return math.nan
    return float(stats.linregress(np.asarray(x, float), np.asarray(y, float)).slope)
