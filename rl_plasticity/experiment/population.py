"""Several seeds of one run in one process: :func:`train_seeds`.

Each seed is resolved, built, given its run directory and its callbacks exactly as :func:`train`
does for one run (the same functions), and the models then train together as a
:class:`~rl_plasticity.sb3.population_ppo.PopulationPPO` (the members' policy calls and, where
nothing hooks the update, their updates batched). Every member writes the run directory a single
run writes and resumes from it the same way (``rlp train --resume`` of one seed continues it). A
member that fails (an error, non-finite values) is recorded as failed and the others go on; a
signal checkpoints and stops every member.

Where the models cannot form a population (an agent that is not FastPPO, or whose networks run
SB3's own code paths), the seeds train one after another in this process, with a note.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm

from rl_plasticity.errors import ConfigError
from rl_plasticity.evaluation import EvalSettings
from rl_plasticity.experiment.build import build
from rl_plasticity.experiment.checkpoint import restore
from rl_plasticity.experiment.resolve import NoCheckpointError, ResolvedRun, resolve
from rl_plasticity.experiment.run import (
    RunCallbacks,
    attach,
    failure_reason,
    finish,
    learn,
    open_run_dir,
    stopped_at_once,
)
from rl_plasticity.experiment.rundir import ERROR_LOG, RunResult
from rl_plasticity.experiment.signals import stop_on_signals
from rl_plasticity.overrides import Assignment
from rl_plasticity.specs import AgentSpec, EnvSpec


def train_seeds(
    env: str | Path | EnvSpec,
    agent: str | Path | AgentSpec,
    seeds: Sequence[int],
    steps: int,
    *,
    root: Path = Path("runs"),
    group: str = "default",
    resume: bool = False,
    restart: bool = False,
    device: str | None = None,
    overrides: Assignment = (),
    evaluation: EvalSettings | None = None,
    checkpoint_minutes: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Train one agent on one environment with several seeds in this process, as a population.

    Arguments as for :func:`~rl_plasticity.experiment.run.train`, with ``seeds`` for ``seed``.
    With ``resume``, a seed's run that exists without a checkpoint starts again from step 0, with
    a note (as ``rlp sweep`` does).

    :param seeds: the runs' seeds (distinct)
    :return: each seed's outcome, in the order of ``seeds``
    :raises ConfigError: for a bad spec or argument, before any run directory is written
    :raises RunExistsError: if a run exists and neither ``resume`` nor ``restart`` is given
    :raises RunSetupError: if an environment or a model cannot be built
    """
    say = echo or (lambda line: None)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", list(seeds), "one or more distinct seeds")
    settings = dict(
        root=root, group=group, device=device, overrides=overrides,
        checkpoint_minutes=checkpoint_minutes, say=say,
    )  # fmt: skip
    resolved: list[ResolvedRun | RunResult] = []
    restarts: dict[int, bool] = {}
    for seed in seeds:
        try:
            run = resolve(env, agent, seed, steps, resume=resume, restart=restart, **settings)
        except NoCheckpointError:
            run = resolve(env, agent, seed, steps, resume=False, restart=True, **settings)
            say(f"{run.path.name} has no checkpoint: it starts again from step 0")
            restarts[id(run)] = True
        resolved.append(run)
    runs = [run for run in resolved if isinstance(run, ResolvedRun)]

    def opened(run: ResolvedRun) -> None:
        open_run_dir(run, restarts.get(id(run), restart), overrides, evaluation, say)

    outcomes = _train_members(runs, opened, evaluation, checkpoint_minutes, say)
    return [outcomes[id(run)] if isinstance(run, ResolvedRun) else run for run in resolved]


def _train_members(
    runs: list[ResolvedRun],
    open_dir: Callable[[ResolvedRun], None],
    evaluation: EvalSettings | None,
    checkpoint_minutes: float | None,
    say: Callable[[str], None],
) -> dict[int, RunResult]:
    """Build every run's model (before any run directory is touched, as :func:`train` does),
    open the directories, attach the callbacks, train the models together and record each
    outcome."""
    from rl_plasticity.sb3.population_ppo import MemberRandom, PopulationPPO, ppo_population_reason

    if not runs:
        return {}
    members, parts, envs, states = [], [], [], []
    for run in runs:
        vec_env, model = build(
            run.env, run.agent, run.seed, run.device, run.start_step, run.checkpoint, run.exact
        )
        # SB3 seeds the global generators when it builds a model: this member's from here on
        # (attaching and restoring draw nothing; a checkpoint's states return at training start).
        states.append(MemberRandom.capture())
        members.append(model)
        envs.append(vec_env)
    for run, model, vec_env in zip(runs, members, envs, strict=True):
        open_dir(run)
        callbacks = attach(run, model, evaluation, checkpoint_minutes, False, ())
        if run.checkpoint is not None and run.state is not None:
            restore(model, vec_env, run.checkpoint, run.state, callbacks.method, run.path)
        parts.append(callbacks)
    reason = ppo_population_reason(members)
    checkpointers = [p.checkpointer for p in parts]
    if reason is not None:
        say(f"the seeds train one after another: not a population ({reason})")
        outcomes = {}
        for run, model, callbacks, vec_env, state in zip(
            runs, members, parts, envs, states, strict=True
        ):
            state.install()
            try:
                reason_k = learn(run, model, callbacks)
                with stop_on_signals(callbacks.checkpointer):  # a first signal: noted, not raised
                    outcomes[id(run)] = finish(run, model, vec_env, callbacks, reason_k)
            except KeyboardInterrupt:
                outcomes[id(run)] = stopped_at_once(run, vec_env, callbacks.checkpointer)
        return outcomes
    population = PopulationPPO(members, states)
    try:
        with stop_on_signals(*checkpointers):
            population.learn(
                [run.steps - run.start_step for run in runs],
                callback=[p.ordered for p in parts],
                reset_num_timesteps=[run.checkpoint is None for run in runs],
            )
    except KeyboardInterrupt:  # a second signal: stop now, the last checkpoints stay
        return {
            id(run): stopped_at_once(run, vec_env, p.checkpointer)
            for run, vec_env, p in zip(runs, envs, parts, strict=True)
        }
    finally:
        for model in members:
            model.logger.close()
    say(f"{len(runs)} seeds trained in one process; updates {population.update_mode}")
    outcomes = {}
    items = list(enumerate(zip(runs, members, parts, envs, strict=True)))
    try:
        # A first signal while the final models and checkpoints are written is noted, not
        # raised mid-save: the runs are ending anyway.
        with stop_on_signals(*checkpointers):
            for k, (run, model, callbacks, vec_env) in items:
                reason = _member_failure(run, model, callbacks, population.errors.get(k))
                # The final checkpoint saves the global random states: the member's.
                outcomes[id(run)] = population.as_member(
                    k, partial(finish, run, model, vec_env, callbacks, reason)
                )
    except KeyboardInterrupt:  # a second signal: the members not yet finished stop now
        for _, (run, _, callbacks, vec_env) in items:
            if id(run) not in outcomes:
                outcomes[id(run)] = stopped_at_once(run, vec_env, callbacks.checkpointer)
    return outcomes


def _member_failure(
    run: ResolvedRun, model: BaseAlgorithm, callbacks: RunCallbacks, error: Exception | None
) -> str | None:
    """Why a member failed, as :func:`learn` says it for one run (None: it did not)."""
    if error is None:
        return callbacks.guard.reason or callbacks.guard.find_problem()
    text = getattr(error, "__traceback_text__", None) or "".join(traceback.format_exception(error))
    (run.path / ERROR_LOG).write_text(text)
    return callbacks.guard.find_problem() or failure_reason(error, model.num_timesteps)
