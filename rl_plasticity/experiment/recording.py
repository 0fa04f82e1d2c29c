"""What a run records while it trains: ``episodes.csv``, ``progress.csv`` (the SB3 logger, kept
up to the checkpoint on resume), ``status.json`` every few seconds, and a guard against NaN."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

from rl_plasticity.experiment.rundir import PROGRESS_CSV, TENSORBOARD, read_csv_upto, write_status


class EpisodeRecorder(BaseCallback):
    """Append one row per finished training episode to ``episodes.csv``.

    :param csv_path: the file (appended to; the header is written when it is new)
    """

    FIELDS = ("timestep", "return", "length", "phase")

    def __init__(self, csv_path: Path) -> None:
        super().__init__()
        self.csv_path = Path(csv_path)
        self._file: Any = None
        self._writer: Any = None

    def _on_training_start(self) -> None:
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        self._file = self.csv_path.open("a", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(self.FIELDS)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is None:
                continue
            phase = info.get("context", {}).get("phase", 0)
            self._writer.writerow([self.num_timesteps, episode["r"], episode["l"], phase])
        return True

    def _on_rollout_end(self) -> None:
        self._file.flush()

    def _on_training_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class NonFiniteGuard(BaseCallback):
    """Stop training when a parameter or a logged loss becomes NaN or infinite.

    Checked after each round of training (at the next rollout's start), at most every
    ``check_every`` steps. The reason is kept in :attr:`reason`.

    :param check_every: minimum steps between checks
    """

    def __init__(self, check_every: int = 1000) -> None:
        super().__init__()
        self.check_every = check_every
        self.reason: str | None = None
        self._last = 0

    def find_problem(self) -> str | None:
        """A description of the first non-finite parameter or loss, or None."""
        for name, param in self.model.policy.named_parameters():
            if not torch.isfinite(param).all():
                return f"non-finite parameter {name} at step {self.num_timesteps}"
        for key, value in self.model.logger.name_to_value.items():
            if "loss" in key and isinstance(value, float) and not np.isfinite(value):
                return f"non-finite {key} = {value} at step {self.num_timesteps}"
        return None

    def _on_rollout_start(self) -> None:
        if self.num_timesteps - self._last < self.check_every and self._last > 0:
            return
        self._last = max(self.num_timesteps, 1)
        self.reason = self.reason or self.find_problem()

    def _on_step(self) -> bool:
        return self.reason is None

    def state_dict(self) -> dict[str, Any]:
        """When the guard last checked (so a resumed run checks at the same steps)."""
        return {"last": self._last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        :param state: from :meth:`state_dict`
        """
        self._last = int(state["last"])


class StatusHeartbeat(BaseCallback):
    """Rewrite the run's ``status.json`` (``running`` at the current step) every ``seconds``, so
    that a sweep can show how far its runs are.

    :param path: the run directory
    :param steps: the run's total steps
    :param seconds: time between writes
    """

    def __init__(self, path: Path, steps: int, seconds: float = 5.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.steps = steps
        self.seconds = seconds
        self._written = time.monotonic()

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self._written >= self.seconds:
            self._written = now
            write_status(
                self.path, "running", timestep=self.num_timesteps, steps=self.steps, pid=os.getpid()
            )
        return True


class ResumedCSVOutputFormat(CSVOutputFormat):
    """SB3's CSV logger that starts from rows kept from before a resume instead of an empty file."""

    def __init__(self, filename: str, keys: list[str], rows: list[dict[str, str]]) -> None:
        super().__init__(filename)
        self.keys = list(keys)
        if keys:
            writer = csv.DictWriter(self.file, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            self.file.flush()


def make_logger(path: Path, resume_step: int | None) -> Logger:
    """SB3 logger to ``progress.csv`` and ``tb/``; on resume, keeps rows up to the checkpoint."""
    progress = path / PROGRESS_CSV
    keys: list[str] = []
    rows: list[dict[str, str]] = []
    if resume_step is not None:  # the CSV format rewrites the file from these rows
        keys, rows = read_csv_upto(progress, resume_step, "time/total_timesteps")
    formats = [
        ResumedCSVOutputFormat(str(progress), keys, rows),
        TensorBoardOutputFormat(str(path / TENSORBOARD)),
    ]
    return Logger(folder=str(path), output_formats=formats)
