"""What a sweep shows while it runs: one line per finished run and a live display of totals."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from rl_plasticity.experiment.progress import format_duration
from rl_plasticity.experiment.rundir import RunResult, read_status
from rl_plasticity.sweep.plan import RunTask


def short_reason(reason: str | None, limit: int = 200) -> str:
    """The first line of a reason, cut to ``limit`` characters, for the terminal (the whole of it
    is in the run's ``status.json``).

    :param reason: why a run failed or stopped (None: empty)
    :param limit: most characters
    """
    line = (reason or "").strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Tracker:
    """Tells the progress display and ``echo`` when runs start and end.

    :param tasks: every run of the sweep
    :param echo: gets one line per finished run (None: silent)
    :param progress: the live display, if any
    """

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
        """A run's process is about to start.

        :param task: the run
        """
        if self.progress is not None:
            self.progress.started(task)

    def __call__(self, result: RunResult) -> None:
        """A run ended (or was skipped).

        :param result: its outcome
        """
        with self.lock:
            self.finished += 1
            if self.progress is not None:
                self.progress.finished(result)
            if self.echo is not None:
                reason = f": {short_reason(result.reason)}" if result.reason else ""
                self.echo(
                    f"[{self.finished}/{self.total}] {result.status} {result.path.name}{reason}"
                )


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
