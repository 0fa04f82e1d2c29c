"""A sweep's grid as tasks: one child command per (env, agent, seed), checked before any starts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rl_plasticity.errors import ConfigError
from rl_plasticity.evaluation import EvalSettings
from rl_plasticity.experiment.build import rollout_steps, round_up
from rl_plasticity.experiment.rundir import (
    check_same_specs,
    is_finished,
    is_started,
    last_checkpoint,
    run_dir,
)
from rl_plasticity.overrides import Assignment, Override, combinations
from rl_plasticity.specs import AgentSpec, EnvSpec, load_agent_spec, load_env_spec
from rl_plasticity.validate import MAX_SEED

LOGS = "logs"


@dataclass(frozen=True)
class TrainArgs:
    """The arguments of :func:`~rl_plasticity.experiment.train` for one run, with the specs
    loaded (a Ray worker trains from these, without the driver's spec files).

    :param env: the env spec
    :param agent: the agent spec, with ``overrides`` laid over it
    :param seed: the run's seed
    :param steps: the steps asked for (before rounding up to whole rollouts)
    :param group: the sweep's group
    :param overrides: the ``--set`` values of this agent (recorded in ``config.json``)
    :param evaluation: evaluation settings, or None
    :param checkpoint_minutes: also checkpoint every this many minutes, or None
    """

    env: EnvSpec
    agent: AgentSpec
    seed: int
    steps: int
    group: str
    overrides: Assignment
    evaluation: EvalSettings | None
    checkpoint_minutes: float | None


@dataclass(frozen=True)
class RunTask:
    """One run of the grid: the command that trains it, its arguments, and where it writes.

    :param command: the child process's argv (the local backend)
    :param path: the run directory the command writes
    :param log: file that gets the child's stdout and stderr (appended to)
    :param steps: the run's total steps (a finished run with at least these is skipped)
    :param args: the same run as arguments of ``train`` (the Ray backend needs them)
    """

    command: tuple[str, ...]
    path: Path
    log: Path
    steps: int
    args: TrainArgs | None = None

    @property
    def name(self) -> str:
        """The run directory's name, ``<env>__<agent>__s<seed>``."""
        return self.path.name

    @property
    def relative(self) -> str:
        """The run directory below the root of run groups, ``<group>/<name>``."""
        return f"{self.path.parent.name}/{self.name}"


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-4"``, ``"0,2,5"`` or a mix (``"0-2,7"``), in order, without repeats.

    :param text: the seed list
    :raises ConfigError: for anything else
    """
    allowed = f"seeds like 0-4, 0,2,5 or 0-2,7 (integers in [0, {MAX_SEED:,}])"
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ConfigError("seeds", text, allowed)
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ConfigError("seeds", text, allowed + "; a range goes up")
        if last > MAX_SEED:
            raise ConfigError("seeds", text, allowed)
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def default_jobs() -> int:
    """Cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def needs_restart(path: Path, steps: int) -> bool:
    """Whether the run at ``path`` exists unfinished without a checkpoint: it was killed before
    its first, and starts again from step 0.

    :param path: the run directory
    :param steps: the run's total steps
    """
    return is_started(path) and not is_finished(path, steps) and last_checkpoint(path) is None


def _spec_argument(name_or_path: str) -> str:
    # A spec given as a path is passed on absolute: a Ray worker need not share our directory.
    path = Path(name_or_path)
    return str(path.resolve()) if path.suffix == ".toml" or len(path.parts) > 1 else name_or_path


def _run_options(evaluation: EvalSettings | None, checkpoint_minutes: float | None) -> list[str]:
    options = []
    if evaluation is not None:
        phases = "all" if evaluation.phases is None else str(evaluation.phases)
        options += ["--eval-every", str(evaluation.every), "--eval-episodes"]
        options += [str(evaluation.episodes), "--eval-phases", phases]
    if checkpoint_minutes is not None:
        options += ["--checkpoint-minutes", repr(checkpoint_minutes)]
    return options


def plan(
    envs: list[str],
    agents: list[str],
    seeds: list[int],
    steps: int,
    root: Path,
    group: str,
    overrides: Sequence[Override] = (),
    evaluation: EvalSettings | None = None,
    checkpoint_minutes: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[RunTask]:
    """The grid's tasks, after loading every spec once, so a typo fails before any run starts.

    The agents are every agent spec with every combination of the overrides' values. A run that
    exists without a checkpoint (killed before its first) is started again from step 0, with a
    note to ``echo``; the others are resumed.

    :param envs: env spec names or TOML paths
    :param agents: agent spec names or TOML paths
    :param seeds: the seeds
    :param steps: environment steps per run
    :param root: folder of run groups
    :param group: this sweep's group folder
    :param overrides: ``--set`` values (several per key make a grid)
    :param evaluation: evaluation settings passed to every run
    :param checkpoint_minutes: passed to every run
    :param echo: gets one-line notes (steps rounded up, runs restarted)
    :raises ConfigError: for a bad spec, an empty grid, a bad number of steps, or an existing run
        made with other specs
    """
    say = echo or (lambda line: None)
    if steps < 1:
        raise ConfigError("steps", steps, "a positive number of environment steps")
    for key, values in (("envs", envs), ("agents", agents), ("seeds", seeds)):
        if not values:
            raise ConfigError(key, values, "at least one")
    env_specs = {e: load_env_spec(e) for e in envs}
    variants = [(a, c) for a in agents for c in combinations(overrides)]
    agent_specs = {(a, c): load_agent_spec(a, c) for a, c in variants}
    options = _run_options(evaluation, checkpoint_minutes)
    root = Path(root).resolve()
    tasks = []
    for spec in agent_specs.values():
        unit = rollout_steps(spec)
        if steps % unit:
            say(
                f"steps {steps:,} rounded up to {round_up(steps, unit):,} for {spec.name}: it "
                f"trains in whole rollouts of {unit:,} steps"
            )
    for env in envs:
        for agent, assignment in variants:
            agent_spec = agent_specs[(agent, assignment)]
            sets = [a for key, _, text in assignment for a in ("--set", f"{key}={text}")]
            run_steps = round_up(steps, rollout_steps(agent_spec))
            for seed in seeds:
                path = run_dir(root, group, env_specs[env].name, agent_spec.name, seed)
                # A run made with other specs is neither resumed nor reused as finished.
                check_same_specs(path, env_specs[env], agent_spec)
                again = "--resume"
                if needs_restart(path, run_steps):
                    say(f"{path.name} has no checkpoint: it starts again from step 0")
                    again = "--restart"
                command = (
                    sys.executable, "-m", "rl_plasticity.cli", "train",
                    "--env", _spec_argument(env), "--agent", _spec_argument(agent), *sets,
                    "--seed", str(seed), "--steps", str(steps),
                    "--root", str(root), "--group", group, again, "--no-progress", *options,
                )  # fmt: skip
                log = root / group / LOGS / f"{path.name}.log"
                args = TrainArgs(
                    env_specs[env], agent_spec, seed, steps, group, assignment, evaluation,
                    checkpoint_minutes,
                )  # fmt: skip
                tasks.append(RunTask(command, path, log, run_steps, args))
    return tasks
