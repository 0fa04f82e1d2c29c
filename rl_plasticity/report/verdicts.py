"""The pre-registered test of a study: paired per-seed differences, t-intervals, verdict lines.

For a study spec's ``[test]`` (:mod:`rl_plasticity.specs.study`), per agent ``A`` and seed
``s`` (runs with one seed share the environment's randomness, the schedule and the initial
network, so the difference of two agents with one seed is paired):

- ``R(A, s, p)``: the end-of-phase return of phase ``p``, the mean return of the episodes that end
  in the last ``window`` share of the phase's steps (:func:`end_of_phase_by_steps`);
- ``d(A, B, s, p) = R(A, s, p) - R(B, s, p)``, against the reference (reset) agent and against
  ``A``'s single-factor control;
- per seed, the mean of ``d`` over the last K complete phases, and the least-squares slope of
  ``d`` over the phases from ``first_phase`` on;
- over seeds, the mean with a Student-t interval (the paired t-test's).

Verdicts: the baseline agent's "loss of plasticity: shown" when the interval of its mean
difference to the reference lies below 0; a method agent's "fix holds: yes" when the interval of
its difference to its control lies above 0 ("no", or "hurts" when it lies below 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl_plasticity.report.runs import Run
from rl_plasticity.report.statistics import (
    TInterval,
    end_of_phase_by_steps,
    slope,
    t_interval,
)
from rl_plasticity.specs.study import StudyTest

#: agent -> seed -> phase -> end-of-phase return
PhaseReturns = dict[str, dict[int, dict[int, float]]]


@dataclass(frozen=True)
class Comparison:
    """One agent against another, over the seeds both ran.

    :param agent: the agent
    :param versus: the reference or control it is compared with
    :param kind: ``"reference"`` or ``"control"``
    :param phases: the phases averaged (the last K complete ones)
    :param per_seed: seed -> (mean difference over ``phases``, slope of the difference)
    :param mean: the mean difference's t-interval over seeds
    :param trend: the slope's t-interval over seeds (return per phase)
    """

    agent: str
    versus: str
    kind: str
    phases: tuple[int, ...]
    per_seed: dict[int, tuple[float, float]]
    mean: TInterval
    trend: TInterval


def phase_returns(runs: list[Run], window: float) -> PhaseReturns:
    """End-of-phase returns of every run, by agent name and seed.

    :param runs: the study's runs (one per agent and seed)
    :param window: the share of a phase's steps that is its end
    """
    out: PhaseReturns = {}
    for run in runs:
        episodes = run.episodes
        if not all(k in episodes for k in ("phase", "return", "timestep")):
            continue
        values = end_of_phase_by_steps(
            episodes["phase"], episodes["return"], episodes["timestep"], window
        )
        out.setdefault(run.agent, {})[run.seed] = values
    return out


def common_phases(returns: PhaseReturns, agents: list[str]) -> list[int]:
    """The phases every run of ``agents`` has an end-of-phase return for, sorted."""
    sets = [set(phases) for a in agents for phases in returns.get(a, {}).values()]
    return sorted(set.intersection(*sets)) if sets else []


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
        diff = {p: returns[agent][seed][p] - returns[versus][seed][p] for p in phases}
        per_seed[seed] = (
            float(np.mean([diff[p] for p in last])),
            slope(phases, [diff[p] for p in phases]),
        )
    return Comparison(
        agent,
        versus,
        kind,
        tuple(last),
        per_seed,
        t_interval((m for m, _ in per_seed.values()), test.level),
        t_interval((s for _, s in per_seed.values()), test.level),
    )


def comparisons(returns: PhaseReturns, test: StudyTest) -> list[Comparison]:
    """Every agent against the reference, and every method agent against its control.

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
    return out


def verdict_lines(found: list[Comparison], test: StudyTest) -> list[str]:
    """One line per tested agent: the baseline's loss of plasticity, each method's fix.

    :param found: from :func:`comparisons`
    :param test: the study's test
    """
    level = f"{test.level:.0%}"
    lines = []
    for c in found:
        where = (
            f"{c.agent} - {c.versus} over phases {c.phases[0]}-{c.phases[-1]}: {c.mean}, "
            f"{c.mean.n} seeds"
        )
        if c.kind == "reference" and c.agent == test.baseline:
            shown = "shown" if c.mean.sign < 0 else "not shown"
            lines.append(f"{c.agent}: loss of plasticity: {shown} at {level} ({where})")
        elif c.kind == "control":
            holds = {1: "yes", 0: "no", -1: "no, it hurts"}[c.mean.sign]
            lines.append(f"{c.agent}: fix holds: {holds} at {level} ({where})")
    if any(c.mean.n < 2 for c in found):
        lines.append("(fewer than 2 paired seeds: no interval, no verdict can be shown)")
    return lines


def write_tables(returns: PhaseReturns, found: list[Comparison], out_dir: Path) -> None:
    """The per-seed files the verdicts rest on: ``phase_returns.csv`` (agent, seed, phase,
    end-of-phase return) and ``paired_differences.csv`` (agent, versus, kind, seed, mean
    difference over the last K phases, slope per phase).

    :param returns: from :func:`phase_returns`
    :param found: from :func:`comparisons`
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
        [c.agent, c.versus, c.kind, seed, mean, trend]
        for c in found
        for seed, (mean, trend) in sorted(c.per_seed.items())
    ]
    header = ["agent", "versus", "kind", "seed", "mean_difference_last_k", "slope_per_phase"]
    write_csv(out_dir / "paired_differences.csv", header, rows)


def plot_differences(
    returns: PhaseReturns, test: StudyTest, path: Path, colors: dict[str, str]
) -> None:
    """Two panels: each agent's end-of-phase return by phase (mean over seeds, t-interval
    band), and its paired difference to the reference by phase, with the last K phases shaded.

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
            paired = [seeds[s][p] - reference[s][p] for s in seeds if s in reference]
            dci = t_interval(paired, test.level)
            dmeans.append(dci.mean)
            dlows.append(dci.low)
            dhighs.append(dci.high)
        style = {"color": color, "marker": "o", "markersize": 3, "linewidth": 1.4}
        raw.plot(phases, means, label=agent, **style)
        raw.fill_between(phases, lows, highs, color=color, alpha=0.15, linewidth=0)
        if agent != test.reference:
            diff.plot(phases, dmeans, label=agent, **style)
            diff.fill_between(phases, dlows, dhighs, color=color, alpha=0.15, linewidth=0)
    counts = sorted({len(s) for s in returns.values()})
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    kept = [p for p in phases if p >= test.first_phase][-test.last_phases :]
    for ax in (raw, diff):
        if kept:
            ax.axvspan(kept[0] - 0.5, kept[-1] + 0.5, color="0.9", zorder=0)
        ax.set_xlabel("phase")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    diff.axhline(0, color="black", linewidth=0.8)
    raw.set_ylabel("end-of-phase return")
    raw.set_title(f"mean over {n} seeds, {test.level:.0%} t-interval")
    diff.set_ylabel(f"return - {test.reference} (paired by seed)")
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
    returns = phase_returns(runs, test.window)
    found = comparisons(returns, test)
    write_tables(returns, found, out_dir)
    verdicts = verdict_lines(found, test)
    if returns:
        plot_differences(returns, test, out_dir / "verdicts.png", colors)
    controls = ", ".join(f"{a} vs {c}" for a, c in test.controls.items()) or "none"
    lines = [
        "## Pre-registered test",
        "",
        f"Reference: `{test.reference}` (a fresh network every phase); baseline: "
        f"`{test.baseline}`; single-factor controls: {controls}. Per seed, the paired "
        f"difference of end-of-phase returns (episodes ending in the last {test.window:.0%} of "
        f"a phase's steps), averaged over the last {test.last_phases} complete phases (from "
        f"phase {test.first_phase} on), and its least-squares slope over phases; "
        f"{test.level:.0%} Student-t intervals over seeds (the paired t-test's). Files: "
        "`phase_returns.csv`, `paired_differences.csv`.",
        "",
        "| agent | versus | phases | mean difference | slope per phase | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for c in found:
        span = f"{c.phases[0]}-{c.phases[-1]}"
        lines.append(f"| {c.agent} | {c.versus} | {span} | {c.mean} | {c.trend} | {c.mean.n} |")
    lines += ["", "**Verdicts**", "", *[f"- {v}" for v in verdicts], ""]
    if returns:
        lines += ["![end-of-phase returns and paired differences](verdicts.png)", ""]
    if any(math.isnan(c.mean.low) for c in found):
        lines += ["Rows without an interval have fewer than 2 paired seeds.", ""]
    return lines, verdicts
