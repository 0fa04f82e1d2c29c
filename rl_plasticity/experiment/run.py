"""One run, as a short sequence: resolve -> build -> restore -> learn -> finish.

:func:`train` resolves the arguments into a :class:`ResolvedRun` (specs, run directory, the
checkpoint to resume from), builds the env and the model (:mod:`.build`), opens the run
directory (:mod:`.rundir`), attaches the run's callbacks and restores a checkpoint
(:mod:`.checkpoint`), trains with signals caught (:mod:`.signals`), and records how the run
ended.
"""

from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from rl_plasticity.evaluation import EvalCallback, EvalSettings
from rl_plasticity.experiment.build import build
from rl_plasticity.experiment.checkpoint import Checkpointer, Restorer, restore
from rl_plasticity.experiment.progress import RunProgress
from rl_plasticity.experiment.recording import (
    EpisodeRecorder,
    NonFiniteGuard,
    StatusHeartbeat,
    make_logger,
)
from rl_plasticity.experiment.resolve import ResolvedRun, resolve
from rl_plasticity.experiment.rundir import (
    CHECKPOINTS,
    EPISODES_CSV,
    ERROR_LOG,
    EVAL_CSV,
    FINAL_MODEL,
    METRICS_CSV,
    RunResult,
    checkpoint_step,
    clear_outputs,
    cut_csvs,
    last_checkpoint,
    new_config,
    record_steps,
    write_config,
    write_status,
)
from rl_plasticity.experiment.signals import signal_name, stop_on_signals
from rl_plasticity.overrides import Assignment
from rl_plasticity.specs import AgentSpec, EnvSpec


@dataclass
class RunCallbacks:
    """The callbacks of a run, in the order SB3 calls them, and the ones :func:`train` asks.

    :param ordered: every callback; the checkpointer first, the restorer (if any) last
    :param checkpointer: saves checkpoints and stops on a signal
    :param guard: stops on non-finite values
    :param method: the plasticity method callback, or None
    :param evaluator: the evaluation callback, or None
    :param display: the progress display, or None
    """

    ordered: list[BaseCallback]
    checkpointer: Checkpointer
    guard: NonFiniteGuard
    method: Any
    evaluator: EvalCallback | None
    display: RunProgress | None


def train(
    env: str | Path | EnvSpec,
    agent: str | Path | AgentSpec,
    seed: int,
    steps: int,
    *,
    root: Path = Path("runs"),
    group: str = "default",
    resume: bool = False,
    restart: bool = False,
    device: str | None = None,
    progress_bar: bool = False,
    overrides: Assignment = (),
    evaluation: EvalSettings | None = None,
    checkpoint_minutes: float | None = None,
    callbacks: Sequence[BaseCallback] = (),
    echo: Callable[[str], None] | None = None,
) -> RunResult:
    """Train one agent on one environment and write its run directory.

    Runs are made of whole rollouts (see :func:`rollout_steps`): ``steps`` that is not a
    multiple is rounded up, with a message. SIGINT or SIGTERM (in the main thread) ends the run
    after the current rollout and update with a checkpoint and status ``interrupted``.

    :param env: an env spec name (``slippery-ant``), a TOML path, or a loaded spec
    :param agent: an agent spec name (``ppo-cbp``), a TOML path, or a loaded spec (with
        ``overrides`` laid over it already: they are then only recorded)
    :param seed: the run's seed (algorithm, networks, environments)
    :param steps: total environment steps
    :param root: folder holding the groups of runs
    :param group: sub-folder for this batch of runs
    :param resume: continue the run from its last checkpoint (a finished one is skipped, a missing
        one starts; one that exists without a checkpoint is an error)
    :param restart: train the run again from step 0, replacing what its directory holds
    :param device: ``cpu``, ``cuda`` or ``auto``; overrides the agent spec's
    :param progress_bar: show a progress display on stderr (see :class:`RunProgress`)
    :param overrides: ``--set`` values for the agent spec (see :mod:`rl_plasticity.overrides`)
    :param evaluation: evaluate the policy periodically into ``eval.csv`` (None: no evaluation)
    :param checkpoint_minutes: also checkpoint every this many minutes of training
    :param callbacks: more SB3 callbacks, run after the run's own
    :param echo: called with one-line notes (rounding, where a resume starts); None: silent
    :return: the run's directory and status
    :raises ConfigError: for a bad spec or argument, before anything is written
    :raises RunExistsError: if the run exists and neither ``resume`` nor ``restart`` is given
    :raises NoCheckpointError: if ``resume`` finds the run without a checkpoint
    :raises RunSetupError: if the environment or the algorithm cannot be built
    """
    say = echo or (lambda line: None)
    run = resolve(
        env, agent, seed, steps, root=root, group=group, resume=resume, restart=restart,
        device=device, overrides=overrides, checkpoint_minutes=checkpoint_minutes, say=say,
    )  # fmt: skip
    if isinstance(run, RunResult):  # finished already
        return run
    vec_env, model = build(
        run.env, run.agent, run.seed, run.device, run.start_step, run.checkpoint, run.exact
    )
    open_run_dir(run, restart, overrides, evaluation, say)
    parts = attach(run, model, evaluation, checkpoint_minutes, progress_bar, callbacks)
    if run.checkpoint is not None and run.state is not None:
        restore(model, vec_env, run.checkpoint, run.state, parts.method, run.path)
    try:
        reason = learn(run, model, parts)
        # A first signal while the final model and checkpoint are written is noted, not raised
        # mid-save: the run is ending anyway.
        with stop_on_signals(parts.checkpointer):
            return finish(run, model, vec_env, parts, reason)
    except KeyboardInterrupt:  # a second signal: stop now, the last checkpoint stays
        return stopped_at_once(run, vec_env, parts.checkpointer)


def open_run_dir(
    run: ResolvedRun,
    restart: bool,
    overrides: Assignment,
    evaluation: EvalSettings | None,
    say: Callable[[str], None],
) -> None:
    """Make the run directory ready: a new run's ``config.json`` (a restarted run's old files
    removed), or a resumed run's new total steps; status ``running``.

    :param run: the run
    :param restart: the run is trained again from step 0
    :param overrides: the ``--set`` values (recorded in ``config.json``)
    :param evaluation: the evaluation settings (recorded in ``config.json``)
    :param say: gets a note on where the run starts
    """
    if run.checkpoint is not None:
        note = "" if run.exact else " (an older checkpoint: the episode under way starts again)"
        say(f"resuming {run.path} from step {run.start_step:,} of {run.steps:,}{note}")
    elif restart and run.started:
        say(f"restarting {run.path} from step 0")
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    if run.checkpoint is None:
        clear_outputs(run.path)
        settings = evaluation.to_dict() if evaluation is not None else None
        assigned = {key: value for key, value, _ in overrides}
        config = new_config(
            run.env, run.agent, run.group, run.seed, run.steps, assigned, settings, run.device
        )
        write_config(run.path, config)
    else:
        record_steps(run.path, run.steps)
    write_status(run.path, "running", timestep=run.start_step, steps=run.steps, pid=os.getpid())


def attach(
    run: ResolvedRun,
    model: BaseAlgorithm,
    evaluation: EvalSettings | None,
    checkpoint_minutes: float | None,
    progress_bar: bool,
    extra: Sequence[BaseCallback],
) -> RunCallbacks:
    """The run's logger on the model, and its callbacks: checkpointer, method, metrics, episode
    recorder, guard, heartbeat, evaluator, progress display, ``extra``, and a restorer when
    resuming.

    :param run: the run
    :param model: its model
    :param evaluation: evaluation settings, or None
    :param checkpoint_minutes: also checkpoint every this many minutes
    :param progress_bar: show a progress display
    :param extra: more callbacks, run after the run's own
    """
    path = run.path
    method = run.agent.make_method_callback()
    metrics = run.agent.make_metrics(csv_path=path / METRICS_CSV)
    model.set_logger(make_logger(path, run.start_step if run.checkpoint is not None else None))
    guard = NonFiniteGuard()
    checkpointer = Checkpointer(
        path / CHECKPOINTS,
        run.agent.checkpoint_every,
        method,
        metrics=metrics,
        guard=guard,
        minutes=checkpoint_minutes,
    )
    evaluator = (
        EvalCallback(run.env, evaluation, path / EVAL_CSV, seed=run.seed)
        if evaluation is not None
        else None
    )
    display = RunProgress(run.steps) if progress_bar else None
    ordered: list[BaseCallback] = [checkpointer]
    ordered += [c for c in (method, metrics) if c is not None]
    ordered += [EpisodeRecorder(path / EPISODES_CSV), guard, StatusHeartbeat(path, run.steps)]
    ordered += [c for c in (evaluator, display) if c is not None]
    ordered += list(extra)
    if run.state is not None:
        exact = run.exact
        ordered.append(Restorer(run.state, metrics if exact else None, guard if exact else None))
    return RunCallbacks(ordered, checkpointer, guard, method, evaluator, display)


def failure_reason(error: Exception, step: int) -> str:
    """One line saying why training raised ``error`` at ``step``."""
    first = (str(error).splitlines() or [""])[0]
    if "invalid values" in first or "nan" in first.lower():
        # torch.distributions refusing NaN/inf parameters: the network's outputs blew up.
        return f"diverged: non-finite network output at step {step} ({type(error).__name__})"
    return f"{type(error).__name__} at step {step}: {first}"


def learn(run: ResolvedRun, model: BaseAlgorithm, parts: RunCallbacks) -> str | None:
    """Train to the run's end (or a signal's checkpoint) with signals caught.

    :param run: the run
    :param model: its model
    :param parts: its callbacks
    :return: why the run failed (an error, written to ``error.log``, or non-finite values), or
        None
    :raises KeyboardInterrupt: on a second signal (training stopped at once)
    """
    try:
        with stop_on_signals(parts.checkpointer):
            model.learn(
                total_timesteps=run.steps - run.start_step,
                callback=parts.ordered,
                reset_num_timesteps=run.checkpoint is None,
            )
        return parts.guard.reason or parts.guard.find_problem()
    except Exception as e:
        (run.path / ERROR_LOG).write_text(traceback.format_exc())
        return parts.guard.find_problem() or failure_reason(e, model.num_timesteps)
    finally:
        model.logger.close()
        if parts.display is not None:
            parts.display.close()


def stopped_at_once(run: ResolvedRun, vec_env: VecEnv, checkpointer: Checkpointer) -> RunResult:
    """Record a run stopped by a second signal: interrupted at its last checkpoint, if any.

    :param run: the run
    :param vec_env: its training env (closed here)
    :param checkpointer: its checkpointer (which holds the first signal)
    """
    vec_env.close()
    last = last_checkpoint(run.path)
    at = checkpoint_step(last) if last is not None else None
    since = f"the checkpoint at step {at:,}" if at is not None else "no checkpoint"
    name = signal_name(checkpointer.stop_signal)
    reason = f"{name}, stopped at once (last: {since})"
    write_status(run.path, "interrupted", reason=reason, timestep=at or 0, steps=run.steps)
    return RunResult(run.path, "interrupted", reason, at, checkpointer.stop_signal)


def finish(
    run: ResolvedRun, model: BaseAlgorithm, vec_env: VecEnv, parts: RunCallbacks, reason: str | None
) -> RunResult:
    """Record how training ended: failed, interrupted by a signal (after its checkpoint), or done
    (``final_model.zip``, a last checkpoint and evaluation); the env is closed.

    :param run: the run
    :param model: its model
    :param vec_env: its training env
    :param parts: its callbacks
    :param reason: why it failed, or None
    """
    checkpointer = parts.checkpointer
    if reason is not None:
        vec_env.close()
        write_status(
            run.path, "failed", reason=reason, timestep=model.num_timesteps, steps=run.steps
        )
        return RunResult(run.path, "failed", reason)
    if checkpointer.stopped_at is not None:
        vec_env.close()
        at = checkpointer.stopped_at
        cut_csvs(run.path, at)
        name = signal_name(checkpointer.stop_signal)
        write_status(run.path, "interrupted", reason=name, timestep=at, steps=run.steps)
        return RunResult(run.path, "interrupted", name, at, checkpointer.stop_signal)
    model.save(run.path / FINAL_MODEL)
    checkpointer.save()
    if parts.evaluator is not None:
        parts.evaluator.finish(model)
    vec_env.close()
    write_status(run.path, "done", timestep=model.num_timesteps, steps=run.steps)
    return RunResult(run.path, "done", timestep=model.num_timesteps)
