"""A grid of runs (envs x agents x seeds) on local cores or a Ray cluster, resumable.

Every run is its own process, ``python -m rl_plasticity.cli train ... --resume``, with its output
in ``<root>/<group>/logs/<run>.log``: a run that crashes hard (segfault, SIGKILL, out of memory)
takes only itself down. Such a run is recorded as failed in its ``status.json`` (the child could
not write it) and the others go on. Both backends launch the same command, so they make the same
run directories. Running the same sweep again skips finished runs and resumes the others from
their last checkpoint (a run that never reached one is restarted, with a note).

``overrides`` (``--set``) with several values make a grid of agents: each combination is its own
agent, named after it (``ppo-cbp@replacement_rate=1e-4``), in the run directories and the report.

Local runs are their own process groups: SIGINT (Ctrl-C) or SIGTERM to the sweep is passed on to
each running run once, which checkpoints and stops; runs not started yet are not started. A
second signal is passed on too (the runs then stop at once, keeping their last checkpoint).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.evaluation import EvalSettings
from rl_plasticity.experiment import (
    CHECKPOINTS,
    RunResult,
    check_same_specs,
    checkpoint_step,
    checkpoints,
    format_duration,
    is_finished,
    read_status,
    rollout_steps,
    round_up,
    run_dir,
    write_status,
)
from rl_plasticity.overrides import Override, combinations
from rl_plasticity.specs import load_agent_spec, load_env_spec

BACKENDS = ("local", "ray")
LOGS = "logs"
#: Set for every run unless already set: one BLAS/OpenMP thread per run, as parallel runs are
#: what uses the cores (a run's torch threads come from its agent spec).
CHILD_ENV_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class RunTask:
    """One run of the grid: the command that trains it and where it writes.

    :param command: the child process's argv
    :param path: the run directory the command writes
    :param log: file that gets the child's stdout and stderr (appended to)
    :param steps: the run's total steps (a finished run with at least these is skipped)
    """

    command: tuple[str, ...]
    path: Path
    log: Path
    steps: int

    @property
    def name(self) -> str:
        """The run directory's name, ``<env>__<agent>__s<seed>``."""
        return self.path.name


@dataclass
class SweepResult:
    """What became of every run of a sweep, in grid order (env, agent, seed).

    :param results: one per run
    :param signum: the signal that stopped the sweep, or None
    """

    results: list[RunResult] = field(default_factory=list)
    signum: int | None = None

    def count(self, status: str) -> int:
        """Number of runs with ``status`` (``done``, ``failed``, ``skipped``, ``interrupted`` or
        ``not started``)."""
        return sum(r.status == status for r in self.results)

    @property
    def interrupted(self) -> int:
        """Runs stopped by a signal after a checkpoint (they resume from it)."""
        return self.count("interrupted")

    @property
    def done(self) -> int:
        """Runs trained to the end by this sweep."""
        return self.count("done")

    @property
    def failed(self) -> int:
        """Runs that failed (training error, non-finite values, killed, bad exit)."""
        return self.count("failed")

    @property
    def skipped(self) -> int:
        """Runs already finished before this sweep."""
        return self.count("skipped")

    def summary(self) -> str:
        """One line of counts, then one line per failed run with its reason."""
        stopped = [
            f", {n} {status}"
            for status in ("interrupted", "not started")
            if (n := self.count(status))
        ]
        lines = [
            f"{len(self.results)} runs: {self.done} done, {self.failed} failed, "
            f"{self.skipped} skipped" + "".join(stopped)
        ]
        lines += [
            f"failed: {r.path}: {_short(r.reason)}" for r in self.results if r.status == "failed"
        ]
        return "\n".join(lines)


def _short(reason: str | None, limit: int = 200) -> str:
    # One line of a reason for the terminal; the whole of it is in the run's status.json.
    line = (reason or "").strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-4"``, ``"0,2,5"`` or a mix (``"0-2,7"``), in order, without repeats.

    :param text: the seed list
    :raises ConfigError: for anything else
    """
    allowed = "seeds like 0-4, 0,2,5 or 0-2,7 (non-negative integers)"
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ConfigError("seeds", text, allowed)
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ConfigError("seeds", text, allowed + "; a range goes up")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def default_jobs() -> int:
    """Cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
                started = (path / "config.json").is_file()
                if (
                    started
                    and not is_finished(path, run_steps)
                    and not checkpoints(path / CHECKPOINTS)
                ):
                    say(f"{path.name} has no checkpoint: it starts again from step 0")
                    again = "--restart"
                command = (
                    sys.executable, "-m", "rl_plasticity.cli", "train",
                    "--env", _spec_argument(env), "--agent", _spec_argument(agent), *sets,
                    "--seed", str(seed), "--steps", str(steps),
                    "--root", str(root), "--group", group, again, "--no-progress", *options,
                )  # fmt: skip
                log = root / group / LOGS / f"{path.name}.log"
                tasks.append(RunTask(command, path, log, run_steps))
    return tasks


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
    if is_finished(task.path, task.steps):  # checked here too: a finished run costs no process
        return RunResult(task.path, "skipped")
    if children is not None and children.signum is not None:
        return RunResult(task.path, "not started", signum=children.signum)
    task.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**CHILD_ENV_DEFAULTS, **os.environ}
    started = time.time()
    with task.log.open("a") as log:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(task.command)}\n")
        log.flush()
        offset = log.tell()
        child = subprocess.Popen(
            task.command,
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
        last = _last_line(task.log, offset)
        log.write(f"# exit code {code}\n")
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
        last = checkpoints(task.path / CHECKPOINTS)[-1:]
        at = checkpoint_step(last[0]) if last else None
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


def sweep(
    envs: list[str],
    agents: list[str],
    seeds: list[int],
    steps: int,
    *,
    root: Path = Path("runs"),
    group: str = "default",
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    echo: Callable[[str], None] | None = print,
    overrides: Sequence[Override] = (),
    evaluation: EvalSettings | None = None,
    checkpoint_minutes: float | None = None,
    progress: SweepProgress | None = None,
) -> SweepResult:
    """Train every (env, agent, seed) of the grid; skip finished runs, resume unfinished ones.

    :param envs: env spec names or TOML paths
    :param agents: agent spec names or TOML paths
    :param seeds: the seeds (see :func:`parse_seeds`)
    :param steps: environment steps per run
    :param root: folder of run groups (on a Ray cluster: a folder every node sees at this path)
    :param group: this sweep's folder under ``root``
    :param jobs: runs at a time (default: every core); for a local Ray instance, its CPUs
    :param backend: ``"local"`` (a process per run, on this machine) or ``"ray"``
    :param address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local
        Ray instance
    :param echo: called with notes and one line per finished run (None: silent)
    :param overrides: ``--set`` values laid over every agent spec; several values per key make
        one agent per combination
    :param evaluation: evaluate every run's policy into its ``eval.csv`` (None: no evaluation)
    :param checkpoint_minutes: every run also checkpoints every this many minutes
    :param progress: a live display to keep up to date (see :class:`SweepProgress`)
    :return: every run's outcome, in grid order
    :raises ConfigError: for a bad spec, backend or argument, before any run starts
    """
    if backend not in BACKENDS:
        raise ConfigError("backend", backend, f"one of: {', '.join(BACKENDS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError("jobs", jobs, "a positive number of parallel runs")
    tasks = plan(
        envs, agents, seeds, steps, root, group, overrides, evaluation, checkpoint_minutes, echo
    )
    jobs = min(jobs or default_jobs(), len(tasks))
    tracker = _Tracker(tasks, echo, progress)
    if backend == "ray":
        results = _run_ray(tasks, jobs, address, tracker)
        return SweepResult([results[task.path] for task in tasks])
    children = Children()
    with _signals_to(children):
        results = _run_local(tasks, jobs, tracker, children)
    return SweepResult([results[task.path] for task in tasks], children.signum)


@contextmanager
def _signals_to(children: Children) -> Iterator[None]:
    # In the main thread only: SIGINT and SIGTERM are passed on to the runs (each time).
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


class _Tracker:
    """Tells the progress display and ``echo`` when runs start and end."""

    def __init__(
        self,
        tasks: list[RunTask],
        echo: Callable[[str], None] | None,
        progress: SweepProgress | None,
    ) -> None:
        self.total = len(tasks)
        self.finished = 0
        self.echo = echo
        self.progress = progress
        self.lock = threading.Lock()
        if progress is not None:
            progress.begin(tasks)

    def started(self, task: RunTask) -> None:
        if self.progress is not None:
            self.progress.started(task)

    def __call__(self, result: RunResult) -> None:
        with self.lock:
            self.finished += 1
            if self.progress is not None:
                self.progress.finished(result)
            if self.echo is not None:
                reason = f": {_short(result.reason)}" if result.reason else ""
                self.echo(
                    f"[{self.finished}/{self.total}] {result.status} {result.path.name}{reason}"
                )


def _run_local(
    tasks: list[RunTask], jobs: int, tracker: _Tracker, children: Children
) -> dict[Path, RunResult]:
    # Threads only wait on child processes, so one thread per parallel run is enough.
    def run(task: RunTask) -> RunResult:
        tracker.started(task)
        return run_task(task, children)

    results: dict[Path, RunResult] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                results[futures[future].path] = future.result()
                tracker(results[futures[future].path])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def _run_ray(
    tasks: list[RunTask], jobs: int, address: str | None, progress: _Tracker
) -> dict[Path, RunResult]:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("backend", "ray", "needs ray: pip install 'rl_plasticity[ray]'") from e
    started = not ray.is_initialized()
    if started and address is None:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    elif started:
        ray.init(address=address, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
    pending = {remote.remote(task): task for task in tasks}
    results: dict[Path, RunResult] = {}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                results[task.path] = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # the worker died (node lost, out of memory)
                reason = f"ray task failed: {type(e).__name__}"
                if read_status(task.path).get("status") == "running":
                    write_status(task.path, "failed", reason=reason, steps=task.steps)
                results[task.path] = RunResult(task.path, "failed", reason)
            progress(results[task.path])
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        if started:
            ray.shutdown()
    return results


class SweepProgress:
    """Overall progress of a sweep on stderr: runs done, running and failed, steps, steps/s, ETA.

    On a terminal, a rich display refreshed every second (the per-run lines of ``echo`` print
    above it); otherwise plain lines: the per-run lines and, every ``line_every`` seconds, the
    totals. Steps of running runs come from their ``status.json``, which a run rewrites every few
    seconds.

    :param enabled: show the totals (False: only the per-run lines)
    :param line_every: seconds between lines of totals when stderr is not a terminal
    """

    def __init__(self, enabled: bool = True, line_every: float = 30.0) -> None:
        self.enabled = enabled
        self.line_every = line_every
        self.tasks: list[RunTask] = []
        self.steps: dict[Path, int] = {}
        self.running: set[Path] = set()
        self.statuses: dict[Path, str] = {}
        self._baseline = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._task_id: Any = None

    def __enter__(self) -> SweepProgress:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._live = Progress(
                TextColumn("sweep"),
                BarColumn(bar_width=20),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
            )
            self._live.start()
            self._task_id = self._live.add_task("sweep", total=1, info="planning")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.stop()

    def echo(self, line: str) -> None:
        """Print one line (above the display on a terminal).

        :param line: the text
        """
        if self._live is not None:
            self._live.console.print(line, highlight=False, markup=False)
        else:
            print(line, flush=True)

    def begin(self, tasks: list[RunTask]) -> None:
        """The sweep's runs are known: start showing totals.

        :param tasks: every run of the sweep
        """
        self.tasks = list(tasks)
        for task in tasks:
            self.steps[task.path] = int(read_status(task.path).get("timestep") or 0)
        self._baseline = sum(self.steps.values())
        self._started = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

    def started(self, task: RunTask) -> None:
        """A run's process is about to start.

        :param task: the run
        """
        with self._lock:
            self.running.add(task.path)

    def finished(self, result: RunResult) -> None:
        """A run ended (or was skipped).

        :param result: its outcome
        """
        with self._lock:
            self.running.discard(result.path)
            self.statuses[result.path] = result.status
            self.steps[result.path] = int(read_status(result.path).get("timestep") or 0)

    def totals(self) -> str:
        """One line: runs by state, steps, steps/s and time left."""
        with self._lock:
            for path in self.running:
                self.steps[path] = int(read_status(path).get("timestep") or self.steps[path])
            done = sum(s in ("done", "skipped") for s in self.statuses.values())
            failed = sum(s == "failed" for s in self.statuses.values())
            running = len(self.running)
            steps = sum(self.steps.values())
        total = sum(t.steps for t in self.tasks)
        elapsed = time.monotonic() - self._started
        rate = (steps - self._baseline) / elapsed if elapsed > 0 else 0.0
        left = f", {format_duration((total - steps) / rate)} left" if rate > 0 else ""
        return (
            f"{done}/{len(self.tasks)} runs done, {running} running, {failed} failed; "
            f"{steps:,}/{total:,} steps ({rate:,.0f} steps/s{left})"
        )

    def _poll(self) -> None:
        shown = time.monotonic()
        while not self._stop.wait(1.0):
            line = self.totals()
            if self._live is not None:
                total = max(sum(t.steps for t in self.tasks), 1)
                done = min(sum(self.steps.values()), total)
                self._live.update(self._task_id, total=total, completed=done, info=line)
            elif time.monotonic() - shown >= self.line_every:
                shown = time.monotonic()
                print(line, file=sys.stderr, flush=True)
