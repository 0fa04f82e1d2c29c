"""The pre-registered test of a study: paired per-seed statistics, t-intervals, verdict lines.

For a study spec's ``[test]`` (:mod:`rl_plasticity.specs.study`), per agent ``A`` and seed
``s`` (runs with one seed share the environment's randomness, the schedule and the initial
network, so two agents' values with one seed are paired):

- ``R(A, s, p)``: the return at the end of phase ``p``: with ``metric = "episodes"`` the mean
  return of the training episodes that end in the last ``window`` share of the phase's steps
  (:func:`end_of_phase_by_steps`); with ``metric = "evaluation"`` the deterministic evaluation of
  the phase's physics at its end (:func:`end_of_phase_from_evaluations`);
- ``d(A, B, s, p)``: ``R(A) - R(B)`` (``statistic = "difference"``) or ``log(R(A) / R(B))``
  (``"log_ratio"``, defined where both are > 0), against the reference (reset) agent and against
  ``A``'s single-factor control;
- per seed, the mean of ``d`` over the last K complete phases, and its least-squares slope over
  the phases from ``first_phase`` on;
- over seeds, the mean with a Student-t interval and the two-sided t-test's p-value.

Verdicts: the baseline's "loss of plasticity: shown" when the interval of its mean statistic
against the reference lies below 0 (one test, uncorrected); a method's "fix holds: yes" when its
comparison with its control rejects at ``1 - level`` after the study's correction (Holm over the
method comparisons unless it says ``none``) with a positive mean ("no, it hurts" with a negative
one, else "no").

Beside them, robust secondaries, labelled as such and never verdicts: the median paired
difference, how many seeds (by their median) and seed-phases lie below / above, the mean
log-ratio where returns are positive; with ``cycle`` set, each agent's last cycle against its
first at the same physics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rl_plasticity.experiment.rundir import EVAL_CSV
from rl_plasticity.report.paired import end_of_phase_from_evaluations, holm, t_test_p
from rl_plasticity.report.runs import Run, read_csv_columns
from rl_plasticity.report.secondaries import (
    PhaseReturns,
    Secondaries,
    common_phases,
    interval_text,
    paired_value,
    secondaries,
    secondary_lines,
)
from rl_plasticity.report.statistics import (
    MIN_SEEDS_FOR_CI,
    TInterval,
    end_of_phase_by_steps,
    slope,
    t_interval,
)
from rl_plasticity.specs.study import StudyTest


@dataclass(frozen=True)
class Comparison:
    """One agent against another, over the seeds both ran.

    :param agent: the agent
    :param versus: the reference or control it is compared with
    :param kind: ``"reference"`` or ``"control"``
    :param phases: the phases averaged (the last K complete ones)
    :param per_seed: seed -> (mean statistic over ``phases``, slope of the statistic)
    :param mean: the mean statistic's t-interval over seeds
    :param trend: the slope's t-interval over seeds (per phase)
    :param p: the two-sided t-test's p-value of the per-seed means
    :param p_adjusted: ``p`` after the study's correction (control comparisons; else ``p``)
    :param secondary: the robust secondaries
    """

    agent: str
    versus: str
    kind: str
    phases: tuple[int, ...]
    per_seed: dict[int, tuple[float, float]]
    mean: TInterval
    trend: TInterval
    p: float = math.nan
    p_adjusted: float = math.nan
    secondary: Secondaries | None = field(default=None, compare=False)


def phase_returns(runs: list[Run], test: StudyTest) -> PhaseReturns:
    """End-of-phase returns of every run, by agent name and seed, as the test's metric says.

    :param runs: the study's runs (one per agent and seed)
    :param test: the study's test (``metric``, ``window``)
    """
    out: PhaseReturns = {}
    for run in runs:
        if test.metric == "evaluation":
            rows = read_csv_columns(run.path / EVAL_CSV)
            if not all(k in rows for k in ("timestep", "phase", "return_mean")):
                continue
            values = end_of_phase_from_evaluations(
                rows["timestep"], rows["phase"], rows["return_mean"]
            )
        else:
            episodes = run.episodes
            if not all(k in episodes for k in ("phase", "return", "timestep")):
                continue
            values = end_of_phase_by_steps(
                episodes["phase"], episodes["return"], episodes["timestep"], test.window
            )
        out.setdefault(run.agent, {})[run.seed] = values
    return out


def compare(
    returns: PhaseReturns, agent: str, versus: str, kind: str, test: StudyTest
) -> Comparison | None:
    """``agent`` against ``versus``, paired by seed (None when they share no seed or phase).

    :param returns: from :func:`phase_returns`
    :param agent: the agent
    :param versus: the reference or control
    :param kind: ``"reference"`` or ``"control"``
    :param test: the study's test
    """
    seeds = sorted(set(returns.get(agent, {})) & set(returns.get(versus, {})))
    phases = [p for p in common_phases(returns, [agent, versus]) if p >= test.first_phase]
    if not seeds or not phases:
        return None
    last = phases[-test.last_phases :]
    per_seed = {}
    for seed in seeds:
        values = {
            p: paired_value(returns[agent][seed][p], returns[versus][seed][p], test.statistic)
            for p in phases
        }
        kept = [p for p in phases if not math.isnan(values[p])]
        in_last = [values[p] for p in last if not math.isnan(values[p])]
        per_seed[seed] = (
            float(np.mean(in_last)) if in_last else math.nan,
            slope(kept, [values[p] for p in kept]),
        )
    means = [m for m, _ in per_seed.values()]
    p = t_test_p(means)
    return Comparison(
        agent,
        versus,
        kind,
        tuple(last),
        per_seed,
        t_interval(means, test.level),
        t_interval((s for _, s in per_seed.values()), test.level),
        p=p,
        p_adjusted=p,
        secondary=secondaries(returns, agent, versus, seeds, last),
    )


def comparisons(returns: PhaseReturns, test: StudyTest) -> list[Comparison]:
    """Every agent against the reference, and every method agent against its control; the
    control comparisons' p-values adjusted by the study's correction.

    :param returns: from :func:`phase_returns`
    :param test: the study's test
    """
    out = []
    for agent in returns:
        if agent != test.reference:
            made = compare(returns, agent, test.reference, "reference", test)
            if made is not None:
                out.append(made)
        if agent in test.controls:
            made = compare(returns, agent, test.controls[agent], "control", test)
            if made is not None:
                out.append(made)
    controls = [i for i, c in enumerate(out) if c.kind == "control"]
    if test.correction == "holm":
        adjusted = holm([out[i].p for i in controls])
        for i, value in zip(controls, adjusted, strict=True):
            out[i] = replace(out[i], p_adjusted=value)
    return out


def _p_text(c: Comparison, test: StudyTest) -> str:
    if math.isnan(c.p):
        return "p n/a"
    if c.kind == "control" and test.correction == "holm":
        return f"p = {c.p:.3g}, Holm-adjusted {c.p_adjusted:.3g}"
    return f"p = {c.p:.3g}"


def verdict_lines(found: list[Comparison], test: StudyTest) -> list[str]:
    """One line per tested agent: the baseline's loss of plasticity, each method's fix.

    :param found: from :func:`comparisons`
    :param test: the study's test
    """
    level = f"{test.level:.0%}"
    what = "mean log-ratio" if test.statistic == "log_ratio" else "mean difference"
    n_controls = sum(c.kind == "control" for c in found)
    correction = (
        f", Holm over {n_controls} comparisons" if test.correction == "holm" else ", uncorrected"
    )
    lines = []
    for c in found:
        sign = "/" if test.statistic == "log_ratio" else "-"
        where = (
            f"{what} {c.agent} {sign} {c.versus} over phases {c.phases[0]}-{c.phases[-1]}: "
            f"{interval_text(c.mean, test.statistic)}, {c.mean.n} seeds, {_p_text(c, test)}"
        )
        if c.kind == "reference" and c.agent == test.baseline:
            shown = "shown" if c.mean.sign < 0 else "not shown"
            lines.append(f"{c.agent}: loss of plasticity: {shown} at {level} ({where})")
        elif c.kind == "control":
            rejects = c.p_adjusted < 1 - test.level
            holds = "no" if not rejects else "yes" if c.mean.mean > 0 else "no, it hurts"
            lines.append(f"{c.agent}: fix holds: {holds} at {level}{correction} ({where})")
    if any(c.mean.n < 2 for c in found):
        lines.append("(fewer than 2 paired seeds: no interval, no verdict can be shown)")
    return lines


def write_tables(
    returns: PhaseReturns, found: list[Comparison], test: StudyTest, out_dir: Path
) -> None:
    """The per-seed files the verdicts rest on: ``phase_returns.csv`` (agent, seed, phase,
    end-of-phase return) and ``paired_differences.csv`` (agent, versus, kind, statistic, seed,
    its mean over the last K phases, its slope per phase).

    :param returns: from :func:`phase_returns`
    :param found: from :func:`comparisons`
    :param test: the study's test (its statistic names the column)
    :param out_dir: the report's folder
    """
    from rl_plasticity.report.tables import write_csv

    rows = [
        [agent, seed, phase, value]
        for agent, seeds in returns.items()
        for seed, phases in sorted(seeds.items())
        for phase, value in sorted(phases.items())
    ]
    write_csv(out_dir / "phase_returns.csv", ["agent", "seed", "phase", "return"], rows)
    rows = [
        [c.agent, c.versus, c.kind, test.statistic, seed, mean, trend]
        for c in found
        for seed, (mean, trend) in sorted(c.per_seed.items())
    ]
    header = ["agent", "versus", "kind", "statistic", "seed", "mean_last_k", "slope_per_phase"]
    write_csv(out_dir / "paired_differences.csv", header, rows)


def plot_differences(
    returns: PhaseReturns, test: StudyTest, path: Path, colors: dict[str, str]
) -> None:
    """Two panels: each agent's end-of-phase return by phase (mean over seeds, t-interval
    band), and its paired statistic against the reference by phase, with the last K phases
    shaded. With fewer than :data:`MIN_SEEDS_FOR_CI` seeds, no band (a t-interval over 2-4 seeds
    is too wide to read): each seed as a thin line under the mean.

    :param returns: from :func:`phase_returns`
    :param test: the study's test
    :param path: the PNG to write
    :param colors: agent name -> colour
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4.2))
    raw, diff = fig.subplots(1, 2)
    phases = common_phases(returns, list(returns))
    reference = returns.get(test.reference, {})
    for agent, seeds in returns.items():
        color = colors.get(agent)
        means, lows, highs, dmeans, dlows, dhighs = [], [], [], [], [], []
        for p in phases:
            ci = t_interval([seeds[s][p] for s in seeds], test.level)
            means.append(ci.mean)
            lows.append(ci.low)
            highs.append(ci.high)
            paired = [
                paired_value(seeds[s][p], reference[s][p], test.statistic)
                for s in seeds
                if s in reference
            ]
            dci = t_interval(paired, test.level)
            dmeans.append(dci.mean)
            dlows.append(dci.low)
            dhighs.append(dci.high)
        style = {"color": color, "marker": "o", "markersize": 3, "linewidth": 1.4}
        raw.plot(phases, means, label=agent, **style)
        if agent != test.reference:
            diff.plot(phases, dmeans, label=agent, **style)
        if len(seeds) >= MIN_SEEDS_FOR_CI:
            raw.fill_between(phases, lows, highs, color=color, alpha=0.15, linewidth=0)
            if agent != test.reference:
                diff.fill_between(phases, dlows, dhighs, color=color, alpha=0.15, linewidth=0)
            continue
        thin = {"color": color, "linewidth": 0.7, "alpha": 0.5}
        for s in seeds:
            raw.plot(phases, [seeds[s][p] for p in phases], **thin)
            if agent != test.reference and s in reference:
                values = [
                    paired_value(seeds[s][p], reference[s][p], test.statistic) for p in phases
                ]
                diff.plot(phases, values, **thin)
    counts = sorted({len(s) for s in returns.values()})
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    band = (
        f"{test.level:.0%} t-interval"
        if counts[0] >= MIN_SEEDS_FOR_CI
        else "thin lines: each seed (too few for an interval)"
    )
    kept = [p for p in phases if p >= test.first_phase][-test.last_phases :]
    for ax in (raw, diff):
        if kept:
            ax.axvspan(kept[0] - 0.5, kept[-1] + 0.5, color="0.9", zorder=0)
        ax.set_xlabel("phase")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    diff.axhline(0, color="black", linewidth=0.8)
    raw.set_ylabel("end-of-phase return")
    raw.set_title(f"mean over {n} seeds; {band}", fontsize=10)
    diff.set_ylabel(
        f"log(return / {test.reference}) (paired by seed)"
        if test.statistic == "log_ratio"
        else f"return - {test.reference} (paired by seed)"
    )
    diff.set_title(f"shaded: the last {test.last_phases} phases the verdicts average")
    raw.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def study_section(
    runs: list[Run], test: StudyTest, out_dir: Path, colors: dict[str, str]
) -> tuple[list[str], list[str]]:
    """The report's section on the pre-registered test, and its verdict lines.

    :param runs: the study's finished runs
    :param test: its test
    :param out_dir: the report's folder (CSV tables and ``verdicts.png`` are written there)
    :param colors: agent name -> colour
    :return: (Markdown lines, verdict lines)
    """
    returns = phase_returns(runs, test)
    found = comparisons(returns, test)
    write_tables(returns, found, test, out_dir)
    verdicts = verdict_lines(found, test)
    if returns:
        plot_differences(returns, test, out_dir / "verdicts.png", colors)
    controls = ", ".join(f"{a} vs {c}" for a, c in test.controls.items()) or "none"
    if test.metric == "evaluation":
        metric = "the deterministic evaluation of each phase's physics at its end (`eval.csv`)"
    else:
        metric = (
            f"end-of-phase returns (training episodes ending in the last {test.window:.0%} of "
            "a phase's steps)"
        )
    statistic = "log(R_agent / R_versus)" if test.statistic == "log_ratio" else "R_agent - R_versus"
    correction = (
        "Holm-corrected over the method comparisons" if test.correction == "holm" else "uncorrected"
    )
    lines = [
        "## Pre-registered test",
        "",
        f"Reference: `{test.reference}` (a fresh network every phase); baseline: "
        f"`{test.baseline}`; single-factor controls: {controls}. Metric: {metric}. Per seed, the "
        f"paired {statistic} per phase, averaged over the last {test.last_phases} complete "
        f"phases (from phase {test.first_phase} on), and its least-squares slope over phases; "
        f"{test.level:.0%} Student-t intervals over seeds and two-sided t-tests (the paired "
        f"t-test's); method verdicts {correction}. Files: `phase_returns.csv`, "
        "`paired_differences.csv`.",
        "",
        "| agent | versus | phases | mean | slope per phase | p | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in found:
        span = f"{c.phases[0]}-{c.phases[-1]}"
        lines.append(
            f"| {c.agent} | {c.versus} | {span} | {interval_text(c.mean, test.statistic)} | "
            f"{interval_text(c.trend, test.statistic)} | {_p_text(c, test)} | {c.mean.n} |"
        )
    lines += ["", "**Verdicts**", "", *[f"- {v}" for v in verdicts], ""]
    lines += secondary_lines(found, returns, test)
    if returns:
        lines += ["![end-of-phase returns and paired statistics](verdicts.png)", ""]
    if any(math.isnan(c.mean.low) for c in found):
        lines += ["Rows without an interval have fewer than 2 paired seeds.", ""]
    return lines, verdicts
