"""Resolving a run: its specs, arguments and directory checked, the checkpoint to resume found."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.build import resolve_device, rollout_steps, round_up
from rl_plasticity.experiment.checkpoint import load_state
from rl_plasticity.experiment.rundir import (
    RunResult,
    check_same_specs,
    checkpoint_step,
    is_finished,
    is_started,
    last_checkpoint,
    read_status,
    run_dir,
)
from rl_plasticity.overrides import Assignment
from rl_plasticity.specs import AgentSpec, EnvSpec, load_agent_spec, load_env_spec
from rl_plasticity.validate import MAX_SEED, check_int


class RunExistsError(RuntimeError):
    """The run directory exists and the caller did not ask to resume it."""


class NoCheckpointError(RunExistsError):
    """Asked to resume a run that has no checkpoint (it would start again from step 0)."""


@dataclass
class ResolvedRun:
    """A run resolved from the arguments of :func:`train`.

    :param env: the env spec
    :param agent: the agent spec, with the overrides laid over it
    :param seed: the run's seed
    :param steps: total environment steps (whole rollouts)
    :param path: the run directory
    :param group: the run's group
    :param device: the torch device
    :param started: the directory already holds a run (its ``config.json``)
    :param checkpoint: the checkpoint folder to resume from (None: start at step 0)
    :param state: that checkpoint's ``state.pt``
    """

    env: EnvSpec
    agent: AgentSpec
    seed: int
    steps: int
    path: Path
    group: str
    device: str
    started: bool
    checkpoint: Path | None
    state: dict[str, Any] | None

    @property
    def start_step(self) -> int:
        """The step training starts at: the checkpoint's, or 0."""
        return checkpoint_step(self.checkpoint) if self.checkpoint is not None else 0

    @property
    def exact(self) -> bool:
        """Whether the checkpoint holds the sub-envs' states (older ones do not: the episode
        under way starts again)."""
        return self.state is not None and "env" in self.state


def resolve(
    env: str | Path | EnvSpec,
    agent: str | Path | AgentSpec,
    seed: int,
    steps: int,
    *,
    root: Path,
    group: str,
    resume: bool,
    restart: bool,
    device: str | None,
    overrides: Assignment,
    checkpoint_minutes: float | None,
    say: Callable[[str], None],
) -> ResolvedRun | RunResult:
    """Load the specs, check the arguments and the run directory, find the checkpoint to resume.

    Arguments as for :func:`train`; ``say`` gets the notes. ``env`` and ``agent`` may be specs
    loaded already (a Ray worker gets them from the driver, which holds the files); such an agent
    spec has ``overrides`` laid over it already (they are not applied again).

    :return: the run, or its ``skipped`` result if ``resume`` finds it finished
    :raises ConfigError: for a bad spec or argument
    :raises RunExistsError: if the run exists and neither ``resume`` nor ``restart`` is given
    :raises NoCheckpointError: if ``resume`` finds the run without a checkpoint
    """
    check_int("seed", seed, 0, MAX_SEED)
    env_spec = env if isinstance(env, EnvSpec) else load_env_spec(env)
    agent_spec = agent if isinstance(agent, AgentSpec) else load_agent_spec(agent, overrides)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError("steps", steps, "a positive number of environment steps")
    if resume and restart:
        raise ConfigError("restart", True, "either --resume or --restart, not both")
    if checkpoint_minutes is not None and not (0 < checkpoint_minutes < math.inf):
        raise ConfigError("checkpoint_minutes", checkpoint_minutes, "a positive number")
    device = resolve_device(device, agent_spec)
    unit = rollout_steps(agent_spec)
    if steps % unit:
        rounded = round_up(steps, unit)
        say(
            f"steps {steps:,} rounded up to {rounded:,}: {agent_spec.name} trains in whole "
            f"rollouts of {unit:,} steps"
        )
        steps = rounded
    if agent_spec.checkpoint_every < unit:
        say(
            f"checkpoint_every {agent_spec.checkpoint_every:,} of {agent_spec.name} is shorter "
            f"than a rollout ({unit:,} steps): a checkpoint after every rollout"
        )
    path = run_dir(root, group, env_spec.name, agent_spec.name, seed)
    status = read_status(path)
    started = is_started(path)
    if started and not (resume or restart):
        raise RunExistsError(
            f"{path} exists (status: {status.get('status', 'unknown')}); pass --resume to "
            "continue it, --restart to train it again from step 0, or choose another --group"
        )
    if started and resume:
        check_same_specs(path, env_spec, agent_spec)
        if is_finished(path, steps):
            return RunResult(path, "skipped", timestep=status.get("timestep"))
    checkpoint = last_checkpoint(path) if resume else None
    if started and resume and checkpoint is None:
        raise NoCheckpointError(
            f"{path} has no checkpoint to resume from (status: "
            f"{status.get('status', 'unknown')} at step {status.get('timestep', 0):,}); "
            "--restart trains it again from step 0"
        )
    start_step = checkpoint_step(checkpoint) if checkpoint is not None else 0
    if start_step > steps:
        raise ConfigError("steps", steps, f"at least the last checkpoint's step ({start_step:,})")
    state = load_state(checkpoint) if checkpoint is not None else None
    return ResolvedRun(
        env_spec, agent_spec, seed, steps, path, group, device, started, checkpoint, state
    )
