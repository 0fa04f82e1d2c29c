"""Study specs: a grid of runs and the test applied to it, written down before it runs.

A study file (``studies/<name>.toml``) names the envs, agents, seeds, steps and group of a sweep
(``rlp sweep --study NAME``) and, in its ``[test]`` table, the comparison the report makes
(``rlp report DIR --study NAME``): the per-phase reference agent, the agent whose loss of
plasticity is tested, each method agent's single-factor control, and the phases the verdicts
average (``last_phases``, K). Fixing K and the controls in a file before the runs is what makes
the verdicts a test rather than a search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.specs.checks import check_table
from rl_plasticity.specs.files import load_table

STUDY_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "description": (str, "a one-line string"),
    "envs": (list, "a list of env spec names"),
    "agents": (list, "a list of agent spec names"),
    "seeds": (list, "a list of seeds (integers >= 0)"),
    "steps": (int, "environment steps per run"),
    "group": (str, "the sweep's group folder"),
    "test": (dict, "the comparison the report makes (reference, baseline, controls, ...)"),
    "evaluation": (dict, "the runs' evaluation: every, episodes, phases (as rlp's --eval-*)"),
}
EVALUATION_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "every": (int, "evaluate every this many steps (a divisor of the phase length)"),
    "episodes": (int, "episodes per physics evaluated"),
    "phases": (int, "earlier phases evaluated besides the current one (>= 1 for a phase's end)"),
}
TEST_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "reference": (str, "the agent that starts fresh at every change (the per-phase reference)"),
    "baseline": (str, "the agent whose loss of plasticity is tested"),
    "controls": (dict, "agent = the agent it differs from in one factor"),
    "first_phase": (int, "the first phase used (phase 0: every agent starts fresh)"),
    "last_phases": (int, "K: how many of the last complete phases the verdicts average (>= 2)"),
    "window": ((int, float), "the share of a phase's steps that is its end, in (0, 1]"),
    "level": ((int, float), "the confidence level, in (0, 1)"),
    "metric": (str, "what stands for a phase's end: episodes | evaluation"),
    "statistic": (str, "the per-phase comparison: difference | log_ratio"),
    "correction": (str, "the multiple-comparison correction of the method verdicts: holm | none"),
    "cycle": (int, "phases per cycle of physics (0: the phases do not repeat)"),
}
#: What stands for the end of a phase: the training episodes ending in its last ``window`` share
#: of steps, or the deterministic evaluation of its physics at its end (``eval.csv``).
METRICS = ("episodes", "evaluation")
#: The paired per-phase comparison: the return difference, or log(R_agent / R_versus).
STATISTICS = ("difference", "log_ratio")
#: Corrections for the number of method comparisons (Holm 1979's step-down; or none).
CORRECTIONS = ("holm", "none")


@dataclass(frozen=True)
class StudyTest:
    """The pre-registered comparison of a study.

    :param reference: the reset agent's name
    :param baseline: the agent tested for loss of plasticity (against ``reference``)
    :param controls: method agent -> its single-factor control
    :param first_phase: phases before it are left out
    :param last_phases: K, the number of last complete phases averaged (at least 2: no single
        phase, whose difficulty may differ across seeds, decides a verdict alone)
    :param window: the share of a phase's steps whose episodes stand for its end
    :param level: confidence level of the t-intervals
    :param metric: ``"episodes"`` (training episodes ending in the last ``window`` of a phase) or
        ``"evaluation"`` (the deterministic evaluation of the phase's physics at its end; the run
        needs ``--eval-every`` dividing the phase length and ``--eval-phases`` >= 1)
    :param statistic: ``"difference"`` (R_agent - R_versus) or ``"log_ratio"``
        (log(R_agent / R_versus), defined where both returns are > 0)
    :param correction: ``"holm"`` (the default: Holm's step-down over the method comparisons
        against their controls) or ``"none"``
    :param cycle: phases per cycle of physics (phases ``p`` and ``p + cycle`` share physics;
        the report then compares each agent's last cycle with its first); 0: no cycle
    """

    reference: str
    baseline: str
    controls: dict[str, str] = field(default_factory=dict)
    first_phase: int = 1
    last_phases: int = 10
    window: float = 0.2
    level: float = 0.95
    metric: str = "episodes"
    statistic: str = "difference"
    correction: str = "holm"
    cycle: int = 0


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec.

    :param name: the file's stem
    :param path: the file
    :param description: one line
    :param envs: env spec names
    :param agents: agent spec names
    :param seeds: the seeds
    :param steps: steps per run
    :param group: the sweep's group
    :param test: the comparison
    :param evaluation: the runs' evaluation settings (``every``, ``episodes``, ``phases``), or
        None; ``rlp sweep --study`` passes them on as ``--eval-*`` would
    """

    name: str
    path: Path
    description: str
    envs: list[str]
    agents: list[str]
    seeds: list[int]
    steps: int
    group: str
    test: StudyTest
    evaluation: dict[str, int] | None = None


def _names(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(key, value, "a non-empty list of spec names")
    return list(value)


def _test(table: dict[str, Any], agents: list[str]) -> StudyTest:
    check_table(table, TEST_KEYS)
    for key in ("reference", "baseline"):
        if key not in table:
            raise ConfigError(f"test.{key}", None, "required: " + TEST_KEYS[key][1])
        if table[key] not in agents:
            raise ConfigError(f"test.{key}", table[key], f"one of the study's agents: {agents}")
    controls = dict(table.get("controls", {}))
    for agent, control in controls.items():
        for value in (agent, control):
            if value not in agents:
                raise ConfigError(
                    f"test.controls.{agent}", value, f"one of the study's agents: {agents}"
                )
    last = table.get("last_phases", 10)
    if isinstance(last, bool) or last < 2:
        raise ConfigError(
            "test.last_phases", last, "an integer >= 2 (no single phase decides a verdict)"
        )
    first = table.get("first_phase", 1)
    if isinstance(first, bool) or first < 0:
        raise ConfigError("test.first_phase", first, "an integer >= 0")
    window = float(table.get("window", 0.2))
    if not 0 < window <= 1:
        raise ConfigError("test.window", window, "a number in (0, 1]")
    level = float(table.get("level", 0.95))
    if not 0 < level < 1:
        raise ConfigError("test.level", level, "a number in (0, 1)")
    for key, allowed, default in (
        ("metric", METRICS, "episodes"),
        ("statistic", STATISTICS, "difference"),
        ("correction", CORRECTIONS, "holm"),
    ):
        if table.get(key, default) not in allowed:
            raise ConfigError(f"test.{key}", table[key], "one of: " + ", ".join(allowed))
    cycle = table.get("cycle", 0)
    if isinstance(cycle, bool) or cycle < 0 or cycle == 1:
        raise ConfigError("test.cycle", cycle, "0 (no cycle) or phases per cycle, >= 2")
    return StudyTest(
        reference=table["reference"],
        baseline=table["baseline"],
        controls=controls,
        first_phase=first,
        last_phases=last,
        window=window,
        level=level,
        metric=table.get("metric", "episodes"),
        statistic=table.get("statistic", "difference"),
        correction=table.get("correction", "holm"),
        cycle=cycle,
    )


def load_study_spec(name_or_path: str | Path) -> StudySpec:
    """Load and validate a study spec.

    :param name_or_path: a shipped study name (``permuted-hopper``) or a TOML path
    :raises ConfigError: naming the file, key, value and what is allowed
    """
    path, data = load_table("studies", name_or_path)
    try:
        check_table(data, STUDY_KEYS)
        envs, agents = _names(data, "envs"), _names(data, "agents")
        seeds = data.get("seeds", [0])
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError("seeds", seeds, "a non-empty list of integers >= 0")
        if min(seeds) < 0:
            raise ConfigError("seeds", seeds, "a non-empty list of integers >= 0")
        steps = data.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError("steps", steps, "required: a positive number of steps")
        if "test" not in data:
            raise ConfigError("test", None, "required: " + STUDY_KEYS["test"][1])
        test = _test(data["test"], agents)
        evaluation = data.get("evaluation")
        if evaluation is not None:
            check_table(evaluation, EVALUATION_KEYS)
            if "every" not in evaluation:
                raise ConfigError("evaluation.every", None, EVALUATION_KEYS["every"][1])
        if test.metric == "evaluation" and not (evaluation and evaluation.get("phases", 0) >= 1):
            raise ConfigError(
                "evaluation",
                evaluation,
                'a table with every and phases >= 1 (test.metric = "evaluation" reads the '
                "evaluation of each phase's physics at its end)",
            )
        return StudySpec(
            name=path.stem,
            path=path,
            description=data.get("description", ""),
            envs=envs,
            agents=agents,
            seeds=list(seeds),
            steps=steps,
            group=data.get("group", path.stem),
            test=test,
            evaluation=dict(evaluation) if evaluation is not None else None,
        )
    except ConfigError as e:
        raise e.with_file(str(path)) from None
