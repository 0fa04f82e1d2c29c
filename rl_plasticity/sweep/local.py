"""The local backend: each run a child process (its own process group), signals passed on."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rl_plasticity.experiment.rundir import (
    RunResult,
    checkpoint_step,
    is_finished,
    last_checkpoint,
    read_status,
    write_status,
)
from rl_plasticity.sweep.plan import RunTask
from rl_plasticity.sweep.progress import Tracker

#: Set for every run unless already set: one BLAS/OpenMP thread per run, as parallel runs are
#: what uses the cores (a run's torch threads come from its agent spec).
CHILD_ENV_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"exit code {code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"


def _last_line(log: Path, offset: int) -> str:
    # The child's last line of output, usually its error message.
    with log.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


class Children:
    """The running child processes of a local sweep, to pass a signal on to.

    Once :meth:`stop` was called, :func:`run_task` starts no new run.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()

    def add(self, child: subprocess.Popen) -> bool:
        """Register a started child; False (and the child is signalled) if stopping already."""
        with self._lock:
            self._running.add(child)
            if self.signum is not None:
                child.send_signal(self.signum)
            return self.signum is None

    def remove(self, child: subprocess.Popen) -> None:
        """Forget a child that has exited."""
        with self._lock:
            self._running.discard(child)

    def stop(self, signum: int) -> None:
        """Pass ``signum`` on to every running child; start no more."""
        with self._lock:
            self.signum = self.signum or signum
            for child in self._running:
                child.send_signal(signum)


def run_task(task: RunTask, children: Children | None = None) -> RunResult:
    """Run one task as a child process and read what became of it.

    A finished run is skipped without starting a process. When the child ends without having
    recorded an outcome (killed, crashed, or an error before the run directory existed), the run
    is failed with the exit code (and, for an error exit, the log's last line); ``status.json``
    says so if the run directory exists. A child that was interrupted (status ``interrupted``)
    gives an ``interrupted`` result. An interrupt while waiting is passed on to the child (which
    records its run as interrupted) and raised again.

    :param task: the run
    :param children: where the child is registered so that a signal to the sweep reaches it (its
        own process group then keeps a terminal's Ctrl-C away from it); None: the child is in ours
    :return: the run's outcome
    """
    return run_population(PopulationTask(task.command, task.log, (task,)), children)[0]


@dataclass(frozen=True)
class PopulationTask:
    """Runs of one env and agent (several seeds) trained by one child process as a population.

    :param command: the child's argv (``rlp train --seeds ...``)
    :param log: the child's log
    :param members: the runs it trains
    """

    command: tuple[str, ...]
    log: Path
    members: tuple[RunTask, ...]


def population_tasks(tasks: list[RunTask], size: int) -> list[PopulationTask]:
    """The tasks grouped into populations of up to ``size`` seeds of one env and agent, in grid
    order; each group's command is its first task's with ``--seeds`` for ``--seed`` and
    ``--resume`` (a member without a checkpoint then starts again, with a note). With ``size`` 1,
    every task is its own process, as without populations.

    :param tasks: the grid's tasks (from :func:`~rl_plasticity.sweep.plan.plan`)
    :param size: members per process
    """
    if size == 1:
        return [PopulationTask(t.command, t.log, (t,)) for t in tasks]
    groups: dict[tuple, list[RunTask]] = {}
    for task in tasks:
        seed_at = task.command.index("--seed")
        key = task.command[:seed_at] + task.command[seed_at + 2 :]
        key = tuple("--resume" if a == "--restart" else a for a in key)
        groups.setdefault(key, []).append(task)
    result = []
    for members in groups.values():
        for start in range(0, len(members), size):
            chunk = tuple(members[start : start + size])
            first = chunk[0].command
            seed_at = first.index("--seed")
            seeds = ",".join(str(t.args.seed) if t.args else t.command[seed_at + 1] for t in chunk)
            command = (*first[:seed_at], "--seeds", seeds, *first[seed_at + 2 :])
            command = tuple("--resume" if a == "--restart" else a for a in command)
            log = chunk[0].log.with_name(f"{chunk[0].name}-population-{len(chunk)}.log")
            result.append(PopulationTask(command, log, chunk))
    return result


def default_populations(tasks: list[RunTask], jobs: int) -> list[PopulationTask]:
    """``--population auto``: the runs of FastPPO agents grouped into populations, as few per env
    and agent as keep ``jobs`` processes busy; every other run its own process.

    A population is faster per core than its members run one by one (BENCHMARKS.md, "One engine
    core": 1.8-2.0x for the friction study's agent with CBP and metrics), but it is one process:
    with G (env, agent) pairs of S seeds on J cores, each pair's seeds are split into
    ``min(S, ceil(J / G))`` populations of equal size (rounded up), so a sweep of one agent still
    uses every core. Agents of other algorithms (SB3's PPO, SAC, ...) cannot form populations.

    :param tasks: the grid's tasks
    :param jobs: processes at a time
    :return: the processes to run, populations first, in grid order
    """
    grouped = [t for t in tasks if t.args is not None and t.args.agent.algorithm == "FastPPO"]
    chosen = {id(t) for t in grouped}
    alone = [PopulationTask(t.command, t.log, (t,)) for t in tasks if id(t) not in chosen]
    pairs = {(t.args.env.name, t.args.agent.name) for t in grouped}
    if not pairs:
        return alone
    seeds = max(sum(1 for t in grouped if (t.args.env.name, t.args.agent.name) == p) for p in pairs)
    chunks = min(seeds, max(1, -(-jobs // len(pairs))))
    return population_tasks(grouped, -(-seeds // chunks)) + alone


def run_population(population: PopulationTask, children: Children | None = None) -> list[RunResult]:
    """Run a population's child process (one run: a population of one) and read what became of
    each member, as :func:`run_task` does for one run.

    :param population: the runs and their command
    :param children: as for :func:`run_task`
    :return: each member's outcome, in order
    """
    members = population.members
    pending = [task for task in members if not is_finished(task.path, task.steps)]
    if not pending:  # checked here too: finished runs cost no process
        return [RunResult(task.path, "skipped") for task in members]
    if children is not None and children.signum is not None:
        return [
            RunResult(t.path, "not started", signum=children.signum)
            if t in pending
            else RunResult(t.path, "skipped")
            for t in members
        ]
    command = population.command
    if len(pending) < len(members) and "--seeds" in command:
        at = command.index("--seeds")
        seeds = ",".join(str(t.args.seed) for t in pending if t.args is not None)
        command = (*command[: at + 1], seeds, *command[at + 2 :])
    population.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**CHILD_ENV_DEFAULTS, **os.environ}
    started = time.time()
    with population.log.open("a") as log:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        log.flush()
        offset = log.tell()
        child = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=children is not None,
        )
        if children is not None:
            children.add(child)
        try:
            code = child.wait()
        except BaseException:
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
        finally:
            if children is not None:
                children.remove(child)
        last = _last_line(population.log, offset)
        log.write(f"# exit code {code}\n")
    return [
        _outcome(task, code, started, last, children)
        if task in pending
        else RunResult(task.path, "skipped")
        for task in members
    ]


def _outcome(
    task: RunTask, code: int, started: float, last: str, children: Children | None
) -> RunResult:
    """What became of ``task``'s run after its child exited with ``code`` (see :func:`run_task`)."""
    if is_finished(task.path, task.steps):
        return RunResult(task.path, "done")
    status = read_status(task.path)
    # Only an outcome this child wrote counts, not one left by an earlier sweep.
    fresh = status.get("updated", 0) >= started
    if fresh and status.get("status") == "interrupted":
        signum = code - 128 if code > 128 else None
        return RunResult(task.path, "interrupted", status.get("reason"), status["timestep"], signum)
    if fresh and status.get("status") == "failed":
        return RunResult(task.path, "failed", status.get("reason") or status["status"])
    signum = children.signum if children is not None else None
    if signum is not None and code in (-signum, 128 + signum):
        # Stopped by the signal we passed on while it was still starting: no harm done.
        last_folder = last_checkpoint(task.path)
        at = checkpoint_step(last_folder) if last_folder is not None else None
        reason = f"{signal.Signals(signum).name} while starting"
        if status:
            write_status(
                task.path, "interrupted", reason=reason, timestep=at or 0, steps=task.steps
            )
        return RunResult(task.path, "interrupted", reason, at, signum)
    # An error exit ends with the child's message; a signal cuts it off wherever it was.
    reason = f"{_exit_reason(code)}: {last}" if last and code > 0 else _exit_reason(code)
    if status.get("status") == "running":  # the child died before it could say so
        write_status(
            task.path, "failed", reason=reason, timestep=status.get("timestep"), steps=task.steps
        )
    return RunResult(task.path, "failed", reason)


@contextmanager
def signals_to(children: Children) -> Iterator[None]:
    """While the sweep runs: every SIGINT and SIGTERM is passed on to the running runs, and no
    more runs start. Only in the main thread (elsewhere, nothing changes).

    :param children: the running runs
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, lambda signum, frame: children.stop(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_local(
    groups: list[PopulationTask], jobs: int, tracker: Tracker, children: Children
) -> dict[Path, RunResult]:
    """Run the processes (single runs or populations) as children of this machine, ``jobs`` at
    a time.

    :param groups: the processes, each with its runs (see :func:`population_tasks`)
    :param jobs: processes at a time
    :param tracker: told when runs start and end
    :param children: the running runs, for signals
    :return: each run's outcome by its directory
    """

    # Threads only wait on child processes, so one thread per parallel process is enough.
    def run(group: PopulationTask) -> list[RunResult]:
        for task in group.members:
            tracker.started(task)
        return run_population(group, children)

    results: dict[Path, RunResult] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run, group) for group in groups]
        try:
            for future in as_completed(futures):
                for result in future.result():
                    results[result.path] = result
                    tracker(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results
