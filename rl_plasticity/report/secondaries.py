"""Robust secondaries of a study's test: summaries a few outlying seeds or phases cannot carry.

They stand beside the pre-registered statistic (:mod:`rl_plasticity.report.verdicts`), labelled
as secondaries and never turned into verdicts: the median paired difference, counts of seeds and
seed-phases below / above the reference or control, the mean log-ratio where returns are
positive, and, where the physics cycle, each agent's last cycle against its first on the same
physics. Also the per-phase statistic itself and the reader of a committed ``phase_returns.csv``
(so that a study's numbers can be recomputed from its committed files).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rl_plasticity.report.statistics import TInterval, t_interval
from rl_plasticity.specs.study import StudyTest

if TYPE_CHECKING:
    from rl_plasticity.report.verdicts import Comparison

#: agent -> seed -> phase -> end-of-phase return
PhaseReturns = dict[str, dict[int, dict[int, float]]]


def read_phase_returns(path: Path) -> PhaseReturns:
    """A study report's ``phase_returns.csv`` (agent, seed, phase, return), read back.

    :param path: the CSV
    """
    out: PhaseReturns = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            seeds = out.setdefault(row["agent"], {})
            seeds.setdefault(int(row["seed"]), {})[int(row["phase"])] = float(row["return"])
    return out


def paired_value(a: float, b: float, statistic: str) -> float:
    """``a - b``, or ``log(a / b)`` (nan unless both are > 0).

    :param a: the agent's return
    :param b: the reference's or control's return
    :param statistic: ``"difference"`` or ``"log_ratio"``
    """
    if statistic == "difference":
        return a - b
    return math.log(a / b) if a > 0 and b > 0 else math.nan


def common_phases(returns: PhaseReturns, agents: list[str]) -> list[int]:
    """The phases every run of ``agents`` has an end-of-phase return for, sorted."""
    sets = [set(phases) for a in agents for phases in returns.get(a, {}).values()]
    return sorted(set.intersection(*sets)) if sets else []


def _number(value: float, statistic: str) -> str:
    return f"{value:+.3f}" if statistic == "log_ratio" else f"{value:+.1f}"


def interval_text(ci: TInterval, statistic: str) -> str:
    """``+0.123 [-0.050, +0.296]`` (log-ratios to 3 decimals, differences to 1).

    :param ci: the interval
    :param statistic: ``"difference"`` or ``"log_ratio"``
    """
    if math.isnan(ci.low):
        return f"{_number(ci.mean, statistic)} (n={ci.n})"
    low, high = _number(ci.low, statistic), _number(ci.high, statistic)
    return f"{_number(ci.mean, statistic)} [{low}, {high}]"


@dataclass(frozen=True)
class Secondaries:
    """Robust summaries of a comparison over its last K phases (not the pre-registered test).

    :param median_difference: the median paired return difference over seed-phases
    :param seeds_below: seeds whose median difference is < 0
    :param seeds_above: seeds whose median difference is > 0
    :param cells_below: seed-phases with a difference < 0
    :param cells_above: seed-phases with a difference > 0
    :param log_ratio: the mean over seeds of each seed's mean log-ratio (where both > 0)
    :param non_positive: seed-phases left out of the log-ratio (a return <= 0)
    """

    median_difference: float
    seeds_below: int
    seeds_above: int
    cells_below: int
    cells_above: int
    log_ratio: TInterval
    non_positive: int


def secondaries(
    returns: PhaseReturns, agent: str, versus: str, seeds: list[int], phases: list[int]
) -> Secondaries:
    """The robust secondaries of ``agent`` against ``versus`` over ``seeds`` x ``phases``.

    :param returns: from :func:`phase_returns`
    :param agent: the agent
    :param versus: the reference or control
    :param seeds: the paired seeds
    :param phases: the phases (the last K)
    """
    a, b = returns[agent], returns[versus]
    diffs = {s: [a[s][p] - b[s][p] for p in phases] for s in seeds}
    cells = [d for ds in diffs.values() for d in ds]
    medians = [float(np.median(ds)) for ds in diffs.values()]
    logs = {s: [paired_value(a[s][p], b[s][p], "log_ratio") for p in phases] for s in seeds}
    kept = [[v for v in vs if not math.isnan(v)] for vs in logs.values()]
    return Secondaries(
        median_difference=float(np.median(cells)),
        seeds_below=sum(m < 0 for m in medians),
        seeds_above=sum(m > 0 for m in medians),
        cells_below=sum(d < 0 for d in cells),
        cells_above=sum(d > 0 for d in cells),
        log_ratio=t_interval(float(np.mean(k)) if k else math.nan for k in kept),
        non_positive=sum(len(vs) - len(k) for vs, k in zip(logs.values(), kept, strict=True)),
    )


def cycle_comparisons(returns: PhaseReturns, test: StudyTest) -> dict[str, tuple[TInterval, str]]:
    """Each agent's last cycle against its first at the same physics (a secondary, with
    ``test.cycle`` set): per seed the mean over the last cycle's phases q of the statistic of
    R(q) against R(q - k * cycle) in the first cycle; over seeds a t-interval.

    :param returns: from :func:`phase_returns`
    :param test: the study's test
    :return: agent -> (interval, "phases 6-8 vs 0-2"); empty without a cycle or a second cycle
    """
    out: dict[str, tuple[TInterval, str]] = {}
    if test.cycle < 2:
        return out
    for agent in returns:
        phases = common_phases(returns, [agent])
        complete = len(phases) // test.cycle * test.cycle
        if complete < 2 * test.cycle or phases[:complete] != list(range(complete)):
            continue
        last = list(range(complete - test.cycle, complete))
        shift = complete - test.cycle
        per_seed = []
        for values in returns[agent].values():
            stats_ = [paired_value(values[q], values[q - shift], test.statistic) for q in last]
            kept = [v for v in stats_ if not math.isnan(v)]
            per_seed.append(float(np.mean(kept)) if kept else math.nan)
        label = f"phases {last[0]}-{last[-1]} vs {last[0] - shift}-{last[-1] - shift}"
        out[agent] = (t_interval(per_seed, test.level), label)
    return out


def secondary_lines(found: list[Comparison], returns: PhaseReturns, test: StudyTest) -> list[str]:
    """The report's Markdown for the robust secondaries and, with a cycle, each agent against
    itself.

    :param found: the comparisons (:func:`rl_plasticity.report.verdicts.comparisons`)
    :param returns: the end-of-phase returns
    :param test: the study's test
    """
    lines = [
        "**Robust secondaries** (not the pre-registered test; over the same seeds and phases): "
        "the median paired return difference over seed-phases, seeds whose median difference "
        "is below / above 0, seed-phases below / above, and the mean over seeds of each seed's "
        "mean log-ratio (phases where both returns are > 0).",
        "",
        "| agent | versus | median difference | seeds below / above | seed-phases below / above "
        "| mean log-ratio |",
        "|---|---|---|---|---|---|",
    ]
    for c in found:
        s = c.secondary
        if s is None:
            continue
        left_out = f" ({s.non_positive} seed-phases with a return <= 0 left out)"
        lines.append(
            f"| {c.agent} | {c.versus} | {s.median_difference:+.1f} | "
            f"{s.seeds_below} / {s.seeds_above} | {s.cells_below} / {s.cells_above} | "
            f"{interval_text(s.log_ratio, 'log_ratio')}{left_out if s.non_positive else ''} |"
        )
    cycles = cycle_comparisons(returns, test)
    if cycles:
        lines += [
            "",
            f"**Each agent against itself** (a secondary): per seed, the mean over its last "
            f"cycle of {'log(R / R' if test.statistic == 'log_ratio' else '(R - R'} at the same "
            "physics in the first cycle); t-interval over seeds. Below 0: the agent does worse "
            "on the same physics later.",
            "",
            "| agent | phases | mean | seeds |",
            "|---|---|---|---|",
        ]
        for agent, (ci, label) in cycles.items():
            lines.append(f"| {agent} | {label} | {interval_text(ci, test.statistic)} | {ci.n} |")
    return [*lines, ""]
