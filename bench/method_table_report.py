"""The report of ``bench.method_table``: the Markdown table, paired differences, per-seed CSV
and the figure, from each row's (seeds, tasks) online errors.

Early and late error are the mean online error over the first and the last tenth of the tasks,
per seed (:func:`window_means`); every value is a mean over seeds with the half-width of its 95%
t-interval (:func:`mean_ci`). Ratios are taken per seed, since every learner of a seed sees the
same stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean over seeds and the half-width of its 95% t-interval."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def fmt(value: tuple[float, float], digits: int = 3) -> str:
    """``mean ± half-width``."""
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def window_means(results: dict[str, np.ndarray]) -> tuple[int, dict, dict]:
    """The window (a tenth of the tasks) and each learner's per-seed mean error over the first
    and the last window: ``(tenth, early, late)``."""
    tasks = next(iter(results.values())).shape[1]
    tenth = max(1, tasks // 10)
    early = {name: e[:, :tenth].mean(axis=1) for name, e in results.items()}
    late = {name: e[:, -tenth:].mean(axis=1) for name, e in results.items()}
    return tenth, early, late


def summarize(
    results: dict[str, np.ndarray],
    chosen: dict[str, dict],
    fresh_of: Mapping[str, str] | None = None,
) -> list[str]:
    """The markdown table: early and late error, and late error relative to the references.

    Early: the mean online error over the first 10% of the tasks; late: over the last 10%.
    Ratios are taken per seed (every learner of a seed sees the same stream) and averaged; each
    row is divided by its own fresh network's (``fresh_of``: same architecture and base; default
    the plain ``fresh network``).
    """
    _, early, late = window_means(results)
    nan = np.full(len(next(iter(late.values()))), np.nan)
    linear = late.get("linear", nan)
    fresh_of = fresh_of or {}
    lines = [
        "| learner | setting | early error | late error | late - early | late / its fresh "
        "network's | late / linear's |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(results, key=lambda n: late[n].mean()):
        setting = ", ".join(f"{k} {v}" for k, v in chosen.get(name, {}).items()) or "-"
        fresh = late.get(fresh_of.get(name, "fresh network"), nan)
        lines.append(
            f"| {name} | {setting} | {fmt(mean_ci(early[name]))} | {fmt(mean_ci(late[name]))} | "
            f"{fmt(mean_ci(late[name] - early[name]))} | {fmt(mean_ci(late[name] / fresh), 2)} | "
            f"{fmt(mean_ci(late[name] / linear), 2)} |"
        )
    return lines


#: Paired comparisons reported under the table (when both rows ran): per seed, the first's late
#: error minus the second's.
PAIRS = (
    ("backprop", "fresh network"),
    ("backprop (adam)", "fresh network (adam)"),
    ("crelu", "fresh crelu"),
    ("crelu (matched)", "fresh crelu (matched)"),
    ("fourier", "fresh fourier"),
    ("fourier (matched)", "fresh fourier (matched)"),
)


def paired(results: dict[str, np.ndarray], pairs: Sequence[tuple[str, str]] = PAIRS) -> list[str]:
    """Per-seed differences of late error (the last tenth of the tasks: the last 100 of 1,000),
    mean with its 95% t-interval and whether the interval lies above 0."""
    tenth, _, late = window_means(results)
    lines = []
    for a, b in pairs:
        if a not in late or b not in late:
            continue
        diff = late[a] - late[b]
        mean, half = mean_ci(diff)
        verdict = "above 0" if mean - half > 0 else "below 0" if mean + half < 0 else "includes 0"
        lines.append(
            f"- {a} - {b}, mean error over the last {tenth} tasks, paired by seed: "
            f"{fmt((mean, half))} ({len(diff)} seeds; interval {verdict}; "
            f"{int((diff > 0).sum())} of {len(diff)} seeds above 0)"
        )
    return lines


def per_seed_csv(results: dict[str, np.ndarray], chosen: dict[str, dict], path: Path) -> None:
    """One line per learner and seed: its setting, early and late error (the table's windows)."""
    tenth, early, late = window_means(results)
    lines = [f"learner,setting,seed,early_error_first_{tenth},late_error_last_{tenth}"]
    for name in results:
        setting = " ".join(f"{k}={v}" for k, v in chosen.get(name, {}).items())
        for seed, (first, last) in enumerate(zip(early[name], late[name], strict=True)):
            lines.append(f"{name},{setting},{seed},{first:.6f},{last:.6f}")
    path.write_text("\n".join(lines) + "\n")


REFERENCE_COLORS = {"backprop": "C3", "fresh network": "0.45", "linear": "k"}


def plot(results: dict[str, np.ndarray], path: Path, shown: int = 4) -> None:
    """Left: error per task (mean over seeds, bins of a tenth of the run) of the references and
    the ``shown`` methods with the lowest late error; right: every learner's late error relative
    to a fresh network's, mean over seeds with its 95% t-interval, on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from rl_plasticity.report.figures import save

    tasks = next(iter(results.values())).shape[1]
    tenth, _, late_error = window_means(results)
    fresh = late_error["fresh network"]
    late = {n: e / fresh for n, e in late_error.items()}
    order = sorted(results, key=lambda n: late[n].mean())
    best = [n for n in order if n not in REFERENCE_COLORS][:shown]
    palette = ["C0", "C1", "C2", "C4", "C5", "C6"]
    colors = {**dict(zip(best, palette, strict=False)), **REFERENCE_COLORS}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.5), width_ratios=(1, 1))
    bins = np.arange(tenth, tasks + 1, tenth)
    for name in [*REFERENCE_COLORS, *best]:
        if name not in results:
            continue
        curve = [results[name][:, b - tenth : b].mean() for b in bins]
        width = 2.2 if name in REFERENCE_COLORS else 1.2
        left.plot(bins, curve, color=colors[name], marker="o", ms=3, lw=width, label=name)
    left.set_xlabel("task")
    left.set_ylabel(f"online error, mean over {len(fresh)} seeds")
    left.set_title(f"error per task (bins of {tenth} tasks): references and the {shown} best")
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    means = [mean_ci(late[n]) for n in order]
    right.barh(
        range(len(order)),
        [m for m, _ in means],
        xerr=[h for _, h in means],
        color=[colors.get(n, "#9fb8d3") for n in order],
        capsize=2,
    )
    right.axvline(1.0, color="k", lw=0.8, ls="--")
    right.set_xscale("log")
    low = min(m - h for m, h in means)
    high = max(m + h for m, h in means)
    ticks = [
        t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10) if low / 1.5 <= t <= high * 1.5
    ]
    right.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    right.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    right.set_yticks(range(len(order)), order, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("late error / a fresh network's (mean, 95% CI); < 1: better than a new net")
    right.set_title(f"last {tenth} tasks")
    right.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
