"""The progress display of one run: steps, steps/s, time left, phase and physics values."""

from __future__ import annotations

import sys
import time
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class RunProgress(BaseCallback):
    """A progress display of one run on stderr: steps, steps/s, ETA, phase and physics values.

    On a terminal, a rich progress bar; otherwise one line every ``line_every`` seconds and at
    the end.

    :param total: the run's total steps
    :param line_every: seconds between lines when stderr is not a terminal
    """

    def __init__(self, total: int, line_every: float = 30.0) -> None:
        super().__init__()
        self.total = total
        self.line_every = line_every
        self._progress: Any = None
        self._task: Any = None
        self._start = (0.0, 0)
        self._shown = 0.0

    def _on_training_start(self) -> None:
        self._start = (time.monotonic(), self.num_timesteps)
        self._shown = self._start[0]
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} steps"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "training", total=self.total, completed=self.num_timesteps, rate=""
            )

    def describe(self) -> str:
        """The phase and physics values of the first sub-env's last step, e.g.
        ``phase 2 friction=0.531``."""
        infos = self.locals.get("infos") or [{}]
        context = infos[0].get("context")
        if not context:
            return "training"
        values = " ".join(
            f"{k}={v:.3g}" for k, v in context.items() if k not in ("phase", "global_step")
        )
        return f"phase {context.get('phase', 0)} {values}".strip()

    def _rate(self) -> tuple[float, float | None]:
        elapsed = time.monotonic() - self._start[0]
        done = self.num_timesteps - self._start[1]
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.num_timesteps) / rate if rate > 0 else None
        return rate, eta

    def _on_step(self) -> bool:
        now = time.monotonic()
        if self._progress is not None and now - self._shown >= 0.2:
            self._shown = now
            rate, _ = self._rate()
            self._progress.update(
                self._task,
                completed=self.num_timesteps,
                description=self.describe(),
                rate=f"{rate:,.0f} steps/s",
            )
        elif self._progress is None and now - self._shown >= self.line_every:
            self._shown = now
            self._print_line()
        return True

    def _print_line(self) -> None:
        rate, eta = self._rate()
        left = f", {format_duration(eta)} left" if eta is not None else ""
        print(
            f"{self.num_timesteps:,}/{self.total:,} steps ({rate:,.0f} steps/s{left}) "
            f"{self.describe()}",
            file=sys.stderr,
            flush=True,
        )

    def _on_training_end(self) -> None:
        if self._progress is None:
            self._print_line()
        self.close()

    def close(self) -> None:
        """Stop the bar (also when training ended by an exception)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=self.num_timesteps)
            self._progress.stop()
            self._progress = None


def format_duration(seconds: float) -> str:
    """``12m05s`` or ``3h07m``.

    :param seconds: a duration
    """
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
