"""One run inside a Ray task: trained in the worker's own process and directory, kept in storage.

The task calls :func:`~rl_plasticity.experiment.train` in the worker process (the worker's own
interpreter and packages: its ``runtime_env``, container or virtual environment, never the
driver's paths), with the specs the driver loaded. The run trains in a fresh folder on the
worker's disk (``tempfile``: the worker's ``TMPDIR``), restored first from storage if storage
holds the run, and is copied to storage at every checkpoint and when it ends (see
:mod:`.storage`). An attempt after a lost one (storage still says ``running``) records the loss in
``status.json`` (``lost``: the step the run was resumed from, and the lost node) and counts
``attempts``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import (
    STATUS_FILE,
    RunResult,
    checkpoint_step,
    is_finished,
    last_checkpoint,
    read_status,
    write_status,
)
from rl_plasticity.sweep.plan import RunTask, needs_restart
from rl_plasticity.sweep.storage import Storage


class SupersededError(RuntimeError):
    """This attempt's run was taken over by a later attempt (its node was thought lost)."""


class StorageSync(BaseCallback):
    """Copy the run directory to storage after each new checkpoint.

    Put after the run's own callbacks: its ``_on_rollout_start`` then runs after the checkpointer
    has saved, and after every callback has written its rows up to the checkpoint.

    Fenced by the attempt number: before each upload the attempt count in storage's
    ``status.json`` is read, and an attempt that a later one has superseded (a worker that outlived
    its node's removal while the run was retried elsewhere) raises :class:`SupersededError`
    instead of writing over the retry's files.

    :param storage: the run storage
    :param local: the run directory on this machine
    :param relative: the run directory under the storage root
    :param attempt: this attempt's number (``attempts`` in the status it wrote); None: unfenced
    """

    def __init__(
        self, storage: Storage, local: Path, relative: str, attempt: int | None = None
    ) -> None:
        super().__init__()
        self.storage = storage
        self.local = Path(local)
        self.relative = relative
        self.attempt = attempt
        self._synced = last_checkpoint(self.local)

    def check_current(self) -> None:
        """Raise :class:`SupersededError` if storage records a later attempt than this one."""
        if self.attempt is None:
            return
        stored = self.storage.read_json(f"{self.relative}/{STATUS_FILE}") or {}
        if int(stored.get("attempts", 0)) > self.attempt:
            raise SupersededError(
                f"{self.relative}: attempt {self.attempt} superseded by attempt "
                f"{stored['attempts']} (this worker was taken for lost); not uploading"
            )

    def _on_rollout_start(self) -> None:
        newest = last_checkpoint(self.local)
        if newest is not None and newest != self._synced:
            self.check_current()
            self.storage.upload(self.local, self.relative)
            self._synced = newest

    def _on_step(self) -> bool:
        return True


def _node() -> str:
    """The Ray node this runs on (its id), or the host name outside Ray."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker
        import socket

        return socket.gethostname()


def _begin_attempt(local: Path, task: RunTask, storage: Storage, say: Callable[[str], None]) -> int:
    """Record this attempt in the restored run's ``status.json``; a run killed before its first
    checkpoint is removed (here and in storage) to start again from step 0. Returns the
    attempt's number."""
    status = read_status(local)
    lost = list(status.get("lost", []))
    if status.get("status") in ("starting", "running"):  # the last attempt ended without a word
        last = last_checkpoint(local)
        step = checkpoint_step(last) if last is not None else 0
        lost.append({"step": step, "node": status.get("node")})
        say(f"{task.name}: its last worker was lost; resuming from step {step:,}")
    record = {"attempts": int(status.get("attempts", 0)) + 1, "lost": lost, "node": _node()}
    if needs_restart(local, task.steps):
        say(f"{task.name} has no checkpoint: it starts again from step 0")
        shutil.rmtree(local)
        storage.remove(task.relative)
    local.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in status.items() if k not in ("status", "updated", *record)}
    write_status(local, status.get("status", "starting"), **{**fields, **record})
    storage.put(local / STATUS_FILE, f"{task.relative}/{STATUS_FILE}")
    return record["attempts"]


def train_on_worker(task: RunTask, location: str, token: str) -> RunResult:
    """Train one run of a sweep in this process, from and to run storage.

    :param task: the run
    :param location: the run storage's path or URI
    :param token: the sweep's token, which the storage must hold (see :meth:`Storage.check_token`)
    :return: the run's outcome, with its path in storage
    """
    from rl_plasticity.experiment.build import RunSetupError
    from rl_plasticity.experiment.resolve import RunExistsError
    from rl_plasticity.experiment.run import train

    if task.args is None:
        raise ValueError(f"{task.name}: a task without train arguments (made by plan())")
    storage = Storage(location)
    where = Path(storage.where(task.relative))
    try:
        storage.check_token(task.path.parent.name, token)
    except ConfigError as e:
        return RunResult(where, "failed", str(e))
    work = Path(tempfile.mkdtemp(prefix="rlp-run-"))
    local = work / task.relative
    args = task.args
    try:
        storage.download(task.relative, local)
        if is_finished(local, task.steps):
            return RunResult(where, "skipped")
        attempt = _begin_attempt(local, task, storage, print)
        sync = StorageSync(storage, local, task.relative, attempt)
        try:
            result = train(
                args.env, args.agent, args.seed, args.steps, root=work, group=args.group,
                resume=True, overrides=args.overrides, evaluation=args.evaluation,
                checkpoint_minutes=args.checkpoint_minutes, echo=print,
                callbacks=[sync],
            )  # fmt: skip
        except (ConfigError, RunExistsError, RunSetupError) as e:
            write_status(local, "failed", reason=str(e), steps=task.steps)
            result = RunResult(local, "failed", str(e))
        try:  # (a superseded sync inside training ends it as failed: train catches the error)
            sync.check_current()
        except SupersededError as e:
            return RunResult(where, "failed", str(e))
        storage.upload(local, task.relative)
        return RunResult(where, result.status, result.reason, result.timestep, result.signum)
    finally:
        shutil.rmtree(work, ignore_errors=True)
