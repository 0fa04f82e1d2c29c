"""One run: specs -> vec env + SB3 algorithm + callbacks -> a run directory, resumable.

A run is a pure function of (env spec, agent spec, seed, steps). It writes
``<root>/<group>/<env>__<agent>__s<seed>/``: ``config.json``, ``status.json``, ``progress.csv`` and
``tb/`` (the SB3 logger), ``episodes.csv``, ``metrics.csv``, ``eval.csv`` (with evaluation),
``checkpoints/`` and ``final_model.zip``. Everything that can be wrong with the specs is found
before the directory is made.

A checkpoint is taken between rounds of training (at a rollout's start) and holds everything the
run's future depends on: the model with its optimizer, ``_last_obs`` and episode starts, the
plasticity method's and the metrics callback's state, the logger's values not yet written, the
RNG states (torch, numpy, python) and every sub-env's state (MuJoCo's ``mjData`` whole, the env's
``np_random``, the time limit's and Monitor's episode counters, the drift schedule's position and
the physics in effect). A run resumed from a checkpoint (``resume=True``) therefore continues
exactly as the uninterrupted run would have, row for row in every CSV; the CSV files are cut back
to the checkpoint so they get neither a gap nor a duplicated row. Only wall-clock columns
(``time/*`` in progress.csv, which also counts ``time/iterations`` from the resume) differ.

SIGINT or SIGTERM during :func:`train` lets the current rollout and update finish, checkpoints,
writes status ``interrupted`` and returns; a second signal stops at once (the last checkpoint
stays).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from rl_plasticity.errors import ConfigError
from rl_plasticity.evaluation import EvalCallback, EvalSettings
from rl_plasticity.nonstationary import NonstationaryWrapper
from rl_plasticity.overrides import Assignment
from rl_plasticity.sb3.networks import sync_targets
from rl_plasticity.sb3.policies import method_policy
from rl_plasticity.specs import (
    AgentSpec,
    EnvSpec,
    algorithm_class,
    load_agent_spec,
    load_env_spec,
)
from rl_plasticity.tables import activation_class

STATUS_FILE = "status.json"
CHECKPOINTS = "checkpoints"


class RunExistsError(RuntimeError):
    """The run directory exists and the caller did not ask to resume it."""


class NoCheckpointError(RunExistsError):
    """Asked to resume a run that has no checkpoint (it would start again from step 0)."""


class RunSetupError(RuntimeError):
    """The environment or the algorithm could not be built from valid-looking specs."""


@dataclass
class RunResult:
    """What became of one run.

    :param path: the run directory
    :param status: ``done``, ``failed``, ``skipped`` (already done) or ``interrupted`` (stopped by
        a signal after a checkpoint; resumable)
    :param reason: why it failed or stopped, or None
    :param timestep: the step it stopped at (interrupted: its last checkpoint's), when known
    :param signum: the signal number that interrupted it, when known
    """

    path: Path
    status: str
    reason: str | None = None
    timestep: int | None = None
    signum: int | None = None


def run_dir(root: Path, group: str, env_name: str, agent_name: str, seed: int) -> Path:
    """The directory of one run: ``root/group/<env>__<agent>__s<seed>``."""
    return Path(root) / group / f"{env_name}__{agent_name}__s{seed}"


def read_status(path: Path) -> dict[str, Any]:
    """The run's ``status.json`` as a dict (empty if there is none)."""
    file = Path(path) / STATUS_FILE
    if not file.is_file():
        return {}
    return json.loads(file.read_text())


def is_finished(path: Path, steps: int) -> bool:
    """Whether the run at ``path`` is done with at least ``steps`` environment steps."""
    status = read_status(path)
    return status.get("status") == "done" and status.get("timestep", 0) >= steps


def write_status(path: Path, status: str, **fields: Any) -> None:
    """Replace the run's ``status.json`` atomically."""
    data = {"status": status, "reason": None, "updated": time.time(), **fields}
    tmp = Path(path) / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, Path(path) / STATUS_FILE)


# --------------------------------------------------------------------------- building


#: Per wrapper class, the attributes that hold its part of an episode in progress.
_WRAPPER_STATE: dict[type, tuple[str, ...]] = {
    Monitor: (
        "rewards", "needs_reset", "episode_returns", "episode_lengths", "episode_times",
        "total_steps", "current_reset_info",
    ),
    TimeLimit: ("_elapsed_steps",),
    OrderEnforcing: ("_has_reset",),
    PassiveEnvChecker: (
        "checked_reset", "checked_step", "checked_render", "checked_data_reuse", "_previous_data",
    ),
}  # fmt: skip


class ResumableEnv(gym.Wrapper):
    """The outermost wrapper of a training sub-env: its whole state, to checkpoint and restore.

    The state is the MuJoCo ``mjData`` (positions, velocities, actuator activations, time, the
    solver's warm start and the derived quantities the next reward reads), the base env's
    ``np_random``, the episode counters of :class:`Monitor`, ``TimeLimit``, ``OrderEnforcing`` and
    ``PassiveEnvChecker``, and the :class:`NonstationaryWrapper`'s schedule position and physics.
    Other wrappers are not known to hold state.

    :param env: the sub-env
    :param ignore_signals: ignore SIGINT and SIGTERM (in a SubprocVecEnv worker: the training
        process decides when to stop, and closes the worker)
    """

    def __init__(self, env: gym.Env, ignore_signals: bool = False) -> None:
        super().__init__(env)
        if ignore_signals:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _layers(self) -> Iterator[gym.Env]:
        layer = self.env
        while isinstance(layer, gym.Wrapper):
            yield layer
            layer = layer.env

    def get_run_state(self) -> dict[str, Any]:
        """Everything the sub-env's future steps depend on (picklable)."""
        layers = []
        for layer in self._layers():
            if isinstance(layer, NonstationaryWrapper):
                layers.append(layer.state_dict())
            else:
                names = _WRAPPER_STATE.get(type(layer), ())
                layers.append({n: copy.deepcopy(getattr(layer, n)) for n in names})
        base = self.env.unwrapped
        data = getattr(base, "data", None)
        return {
            "layers": layers,
            "np_random": base.np_random.bit_generator.state,
            "np_random_seed": base.np_random_seed,
            "mujoco_data": copy.copy(data) if data is not None else None,
        }

    def set_run_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_run_state` into a sub-env built from the same specs.

        :param state: from :meth:`get_run_state`
        """
        import mujoco

        for layer, saved in zip(self._layers(), state["layers"], strict=True):
            if isinstance(layer, NonstationaryWrapper):
                layer.load_state_dict(saved)
            else:
                for name, value in saved.items():
                    setattr(layer, name, copy.deepcopy(value))
        base = self.env.unwrapped
        base.np_random.bit_generator.state = state["np_random"]
        base._np_random_seed = state["np_random_seed"]
        if state["mujoco_data"] is not None:
            mujoco.mj_copyData(base.data, base.model, state["mujoco_data"])


def make_env_fn(
    spec: EnvSpec, n_envs: int, start_step: int, in_worker: bool = False
) -> Callable[[], gym.Env]:
    """A picklable factory of one sub-env: the spec's env in a Monitor (episode returns).

    :param spec: the env spec
    :param n_envs: sub-envs stepping in lockstep
    :param start_step: global step of the first step
    :param in_worker: the env lives in a SubprocVecEnv worker (which then ignores SIGINT/SIGTERM)
    """

    def make() -> gym.Env:
        env = Monitor(spec.make(n_envs=n_envs, start_step=start_step))
        return ResumableEnv(env, ignore_signals=in_worker)

    return make


def make_vec_env(spec: EnvSpec, agent: AgentSpec, start_step: int = 0) -> VecEnv:
    """The training VecEnv: SubprocVecEnv when ``n_envs > 1`` (unless the spec says dummy)."""
    use_subproc = agent.vec_env == "subproc" or (agent.vec_env == "auto" and agent.n_envs > 1)
    fns = [make_env_fn(spec, agent.n_envs, start_step, use_subproc) for _ in range(agent.n_envs)]
    return SubprocVecEnv(fns) if use_subproc else DummyVecEnv(fns)


def rollout_steps(agent: AgentSpec) -> int:
    """Environment steps between two rounds of training: the unit of a run's length.

    On-policy: ``n_steps * n_envs``; off-policy: ``train_freq * n_envs`` (``n_envs`` when
    ``train_freq`` counts episodes). Checkpoints are taken, and runs end, on multiples of it.

    :param agent: the agent spec
    """
    import inspect

    params = inspect.signature(algorithm_class(agent.algorithm)).parameters
    if "n_steps" in params:
        return int(agent.hyperparameters.get("n_steps", params["n_steps"].default)) * agent.n_envs
    if "train_freq" not in params:
        return agent.n_envs
    freq = agent.hyperparameters.get("train_freq", params["train_freq"].default)
    if isinstance(freq, (list, tuple)):
        return agent.n_envs if freq[1] == "episode" else int(freq[0]) * agent.n_envs
    return int(freq) * agent.n_envs


def round_up(steps: int, unit: int) -> int:
    """``steps`` rounded up to a multiple of ``unit``."""
    return math.ceil(steps / unit) * unit


def _policy_kwargs(agent: AgentSpec) -> dict[str, Any]:
    from rl_plasticity.plasticity import OPTIMIZERS

    kwargs = {k: v for k, v in agent.policy_kwargs.items() if k != "activation"}
    kwargs["activation_fn"] = activation_class(agent.policy_kwargs.get("activation", "relu"))
    optimizer = dict(agent.optimizer)
    kwargs["optimizer_class"] = OPTIMIZERS[optimizer.pop("name")]
    kwargs["optimizer_kwargs"] = optimizer
    return kwargs


def build_model(agent: AgentSpec, env: VecEnv, seed: int, device: str) -> BaseAlgorithm:
    """A new SB3 algorithm from the agent spec, initialised as the spec says."""
    cls = algorithm_class(agent.algorithm)
    policy, method_kwargs = (agent.policy, {})
    if agent.method_name != "none":  # architecture and optimizer hooks are built with the policy
        policy, method_kwargs = method_policy(cls, agent.policy, agent.method)
    model = cls(
        policy,
        env,
        policy_kwargs={**_policy_kwargs(agent), **method_kwargs},
        seed=seed,
        device=device,
        **agent.hyperparameters,
    )
    if agent.init == "lecun_uniform":
        from rl_plasticity.plasticity.init import lecun_uniform_

        # Every trained network; target networks are copied from them so they start equal.
        lecun_uniform_(model.policy)
        sync_targets(model)
    return model


# --------------------------------------------------------------------------- files


def read_csv_upto(path: Path, max_step: int, column: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header of a CSV and its rows whose ``column`` is <= ``max_step`` (empty if no file)."""
    if not path.is_file() or path.stat().st_size == 0:
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get(column) and float(r[column]) <= max_step]
        return list(reader.fieldnames or []), rows


def truncate_csv(path: Path, max_step: int, column: str) -> None:
    """Keep only the rows of a CSV whose ``column`` is <= ``max_step``."""
    fields, rows = read_csv_upto(path, max_step, column)
    if not fields:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


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
    progress = path / "progress.csv"
    keys: list[str] = []
    rows: list[dict[str, str]] = []
    if resume_step is not None:  # the CSV format rewrites the file from these rows
        keys, rows = read_csv_upto(progress, resume_step, "time/total_timesteps")
    formats = [
        ResumedCSVOutputFormat(str(progress), keys, rows),
        TensorBoardOutputFormat(str(path / "tb")),
    ]
    return Logger(folder=str(path), output_formats=formats)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    names = ("rl_plasticity", "stable-baselines3", "gymnasium", "mujoco", "torch", "numpy")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# --------------------------------------------------------------------------- callbacks


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


class Checkpointer(BaseCallback):
    """Save everything a resume needs, atomically; stop after a checkpoint when asked to.

    A checkpoint is taken at the start of a rollout (after the previous round of training), when
    ``num_timesteps`` has reached the next multiple of ``every``, when ``minutes`` have passed
    since the last one, or when :attr:`stop_signal` is set (by a signal handler): then training
    stops right after it (``_on_step`` returns False before anything of the new rollout is kept).
    It must be the first callback, so that it saves before the others act on the new rollout. It
    holds the model (with its optimizer, ``_last_obs`` and episode starts), the method's and the
    metrics callback's states, the logger's values not yet written, the RNG states, every
    sub-env's :meth:`ResumableEnv.get_run_state` and, for off-policy algorithms, the replay
    buffer.

    :param directory: the run's ``checkpoints/`` folder
    :param every: steps between checkpoints
    :param method: the plasticity method callback whose state is saved, if any
    :param keep: how many recent checkpoints to keep
    :param metrics: the PlasticityMetrics callback whose state is saved, if any
    :param guard: the NonFiniteGuard whose schedule is saved, if any
    :param minutes: also checkpoint when this many minutes have passed since the last one
    """

    def __init__(
        self,
        directory: Path,
        every: int,
        method: Any = None,
        keep: int = 2,
        *,
        metrics: Any = None,
        guard: NonFiniteGuard | None = None,
        minutes: float | None = None,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.every = every
        self.method = method
        self.keep = keep
        self.metrics = metrics
        self.guard = guard
        self.minutes = minutes
        #: Set to a signal number to checkpoint and stop at the next rollout start.
        self.stop_signal: int | None = None
        #: The step training stopped at after a requested stop (None: it did not).
        self.stopped_at: int | None = None
        self._next = every
        self._saved_at = time.monotonic()

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every
        self._saved_at = time.monotonic()

    def _on_rollout_start(self) -> None:
        timed = self.minutes is not None and time.monotonic() - self._saved_at >= self.minutes * 60
        if self.stop_signal is not None or self.num_timesteps >= self._next or timed:
            self.save()
            self._next = (self.num_timesteps // self.every + 1) * self.every
        if self.stop_signal is not None:
            self.stopped_at = self.num_timesteps

    def _on_step(self) -> bool:
        return self.stopped_at is None

    def save(self) -> Path:
        """Write a checkpoint for the current step and return its folder."""
        step = self.num_timesteps
        final = self.directory / f"step_{step:012d}"
        tmp = self.directory / f".tmp_step_{step:012d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save(tmp / "model.zip")
        if isinstance(self.model, OffPolicyAlgorithm):
            self.model.save_replay_buffer(tmp / "replay_buffer.pkl")
        logger = self.model.logger
        torch.save(
            {
                "method": self.method.state_dict() if self.method is not None else None,
                "metrics": self.metrics.state_dict() if self.metrics is not None else None,
                "guard": self.guard.state_dict() if self.guard is not None else None,
                "logger": {
                    "values": dict(logger.name_to_value),
                    "counts": dict(logger.name_to_count),
                    "excluded": dict(logger.name_to_excluded),
                },
                "env": self.model.get_env().env_method("get_run_state"),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "random": random.getstate(),
                "timestep": step,
            },
            tmp / "state.pt",
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoints(self.directory)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        self._saved_at = time.monotonic()
        return final


class Restorer(BaseCallback):
    """Put a checkpoint's callback states and RNG states back once training has started.

    The last callback: its ``_on_training_start`` runs after every other callback has attached,
    and restores the RNG states last, so nothing drawn while attaching shifts them.

    :param state: the checkpoint's ``state.pt``
    :param metrics: the PlasticityMetrics callback, if any
    :param guard: the NonFiniteGuard, if any
    """

    def __init__(self, state: dict[str, Any], metrics: Any = None, guard: Any = None) -> None:
        super().__init__()
        self.state = state
        self.metrics = metrics
        self.guard = guard

    def _on_training_start(self) -> None:
        state = self.state
        if self.metrics is not None and state.get("metrics") is not None:
            self.metrics.load_state_dict(state["metrics"])
        if self.guard is not None and state.get("guard") is not None:
            self.guard.load_state_dict(state["guard"])
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(state["numpy"])
        random.setstate(state["random"])

    def _on_step(self) -> bool:
        return True


def checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoint folders in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if (p / "state.pt").is_file())


def checkpoint_step(folder: Path) -> int:
    """The timestep a checkpoint folder was taken at."""
    return int(folder.name.removeprefix("step_"))


# --------------------------------------------------------------------------- the run


def _failure_reason(error: Exception, step: int) -> str:
    """One line saying why training raised ``error`` at ``step``."""
    first = (str(error).splitlines() or [""])[0]
    if "invalid values" in first or "nan" in first.lower():
        # torch.distributions refusing NaN/inf parameters: the network's outputs blew up.
        return f"diverged: non-finite network output at step {step} ({type(error).__name__})"
    return f"{type(error).__name__} at step {step}: {first}"


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    # A JSON round trip (tuples become lists) without the file's location, which may differ.
    return {k: v for k, v in json.loads(json.dumps(spec, default=str)).items() if k != "path"}


def check_same_specs(path: Path, env: EnvSpec, agent: AgentSpec) -> None:
    """Refuse to continue or reuse the run at ``path`` with specs other than the ones it ran.

    A run directory without ``config.json`` (never started) passes.

    :raises ConfigError: naming the spec that differs
    """
    file = path / "config.json"
    if not file.is_file():
        return
    config = json.loads(file.read_text())
    for key, spec in (("env", env), ("agent", agent)):
        if _comparable(config[key]) != _comparable(spec.to_dict()):
            raise ConfigError(
                key,
                spec.name,
                f"differs from the spec {path.name} ran with (its config.json); "
                "use the same spec, or another --group for the new one",
            )


def _record_steps(path: Path, steps: int) -> None:
    file = path / "config.json"
    config = json.loads(file.read_text())
    if config["steps"] != steps:
        config["steps"] = steps
        file.write_text(json.dumps(config, indent=2, default=str) + "\n")


def _resolve_device(requested: str | None, agent: AgentSpec) -> str:
    device = requested or agent.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", device, "cuda is not available here; use cpu or auto")
    return device


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
        import sys

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
        import sys

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


@contextmanager
def stop_on_signals(checkpointer: Checkpointer) -> Iterator[None]:
    """While training: the first SIGINT or SIGTERM asks ``checkpointer`` to checkpoint and stop;
    a second one raises KeyboardInterrupt. Only in the main thread (elsewhere, nothing changes).

    :param checkpointer: the run's checkpointer
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if checkpointer.stop_signal is not None:
            raise KeyboardInterrupt
        checkpointer.stop_signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "SIGINT"


def _cut_csvs(path: Path, step: int) -> None:
    """Drop the rows after ``step`` from the run's CSV files (a resume rewrites them)."""
    for name in ("episodes.csv", "metrics.csv", "eval.csv"):
        truncate_csv(path / name, step, "timestep")


def train(
    env: str | Path,
    agent: str | Path,
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

    :param env: an env spec name (``slippery-ant``) or a TOML path
    :param agent: an agent spec name (``ppo-cbp``) or a TOML path
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
    env_spec = load_env_spec(env)
    agent_spec = load_agent_spec(agent, overrides)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError("steps", steps, "a positive number of environment steps")
    if resume and restart:
        raise ConfigError("restart", True, "either --resume or --restart, not both")
    if checkpoint_minutes is not None and not (0 < checkpoint_minutes < math.inf):
        raise ConfigError("checkpoint_minutes", checkpoint_minutes, "a positive number")
    device = _resolve_device(device, agent_spec)
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
    started = (path / "config.json").is_file()
    if started and not (resume or restart):
        raise RunExistsError(
            f"{path} exists (status: {status.get('status', 'unknown')}); pass --resume to "
            "continue it, --restart to train it again from step 0, or choose another --group"
        )
    if started and resume:
        check_same_specs(path, env_spec, agent_spec)
        if is_finished(path, steps):
            return RunResult(path, "skipped", timestep=status.get("timestep"))
    latest = checkpoints(path / CHECKPOINTS)[-1:] if resume else []
    resume_from = latest[0] if latest else None
    if started and resume and resume_from is None:
        raise NoCheckpointError(
            f"{path} has no checkpoint to resume from (status: "
            f"{status.get('status', 'unknown')} at step {status.get('timestep', 0):,}); "
            "--restart trains it again from step 0"
        )
    start_step = checkpoint_step(resume_from) if resume_from else 0
    if start_step > steps:
        raise ConfigError("steps", steps, f"at least the last checkpoint's step ({start_step:,})")
    state = torch.load(resume_from / "state.pt", weights_only=False) if resume_from else None
    exact = state is not None and "env" in state

    torch.set_num_threads(agent_spec.torch_threads)
    try:
        vec_env = make_vec_env(env_spec, agent_spec, start_step)
        if resume_from is None:
            model = build_model(agent_spec, vec_env, seed, device)
        else:
            model = algorithm_class(agent_spec.algorithm).load(
                resume_from / "model.zip", env=vec_env, device=device, force_reset=not exact
            )
    except ConfigError:
        raise
    except Exception as e:  # a base env that fails to build, kwargs gymnasium rejects, ...
        raise RunSetupError(f"could not build the run: {type(e).__name__}: {e}") from e

    if resume_from is not None:
        note = "" if exact else " (an older checkpoint: the episode under way starts again)"
        say(f"resuming {path} from step {start_step:,} of {steps:,}{note}")
    elif restart and started:
        say(f"restarting {path} from step 0")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if resume_from is None:
        for name in ("progress.csv", "episodes.csv", "metrics.csv", "eval.csv", "error.log"):
            (path / name).unlink(missing_ok=True)
        shutil.rmtree(path / "tb", ignore_errors=True)
        config = {
            "env_name": env_spec.name,
            "agent_name": agent_spec.name,
            "group": group,
            "seed": seed,
            "steps": steps,
            "env": env_spec.to_dict(),
            "agent": agent_spec.to_dict(),
            "overrides": {key: value for key, value, _ in overrides},
            "evaluation": evaluation.to_dict() if evaluation is not None else None,
            "device": device,
            "versions": _versions(),
            "git_commit": _git_commit(),
        }
        (path / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    else:
        _record_steps(path, steps)
    write_status(path, "running", timestep=start_step, steps=steps, pid=os.getpid())

    method = agent_spec.make_method()
    metrics = agent_spec.make_metrics(csv_path=path / "metrics.csv")
    model.set_logger(make_logger(path, start_step if resume_from is not None else None))
    guard = NonFiniteGuard()
    if state is not None:
        if method is not None and state["method"] is not None:
            method.load_state_dict(state["method"])
        if isinstance(model, OffPolicyAlgorithm):
            model.load_replay_buffer(resume_from / "replay_buffer.pkl")
        _cut_csvs(path, start_step)
        if exact:
            for i, env_state in enumerate(state["env"]):
                vec_env.env_method("set_run_state", env_state, indices=[i])
            model.logger.name_to_value.update(state["logger"]["values"])
            model.logger.name_to_count.update(state["logger"]["counts"])
            model.logger.name_to_excluded.update(state["logger"]["excluded"])

    checkpointer = Checkpointer(
        path / CHECKPOINTS,
        agent_spec.checkpoint_every,
        method,
        metrics=metrics,
        guard=guard,
        minutes=checkpoint_minutes,
    )
    evaluator = (
        EvalCallback(env_spec, evaluation, path / "eval.csv", seed=seed)
        if evaluation is not None
        else None
    )
    run_callbacks: list[BaseCallback] = [checkpointer]
    run_callbacks += [c for c in (method, metrics) if c is not None]
    run_callbacks += [EpisodeRecorder(path / "episodes.csv"), guard, StatusHeartbeat(path, steps)]
    run_callbacks += [c for c in (evaluator,) if c is not None]
    display = RunProgress(steps) if progress_bar else None
    run_callbacks += [display] if display is not None else []
    run_callbacks += list(callbacks)
    if state is not None:
        run_callbacks.append(Restorer(state, metrics if exact else None, guard if exact else None))
    try:
        with stop_on_signals(checkpointer):
            model.learn(
                total_timesteps=steps - start_step,
                callback=run_callbacks,
                reset_num_timesteps=resume_from is None,
            )
        reason = guard.reason or guard.find_problem()
    except KeyboardInterrupt:  # a second signal: stop now, the last checkpoint stays
        vec_env.close()
        last = checkpoints(path / CHECKPOINTS)[-1:]
        at = checkpoint_step(last[0]) if last else None
        name = _signal_name(checkpointer.stop_signal)
        since = f"the checkpoint at step {at:,}" if at is not None else "no checkpoint"
        reason = f"{name}, stopped at once (last: {since})"
        write_status(path, "interrupted", reason=reason, timestep=at or 0, steps=steps)
        return RunResult(path, "interrupted", reason, at, checkpointer.stop_signal)
    except Exception as e:
        (path / "error.log").write_text(traceback.format_exc())
        reason = guard.find_problem() or _failure_reason(e, model.num_timesteps)
    finally:
        model.logger.close()
        if display is not None:
            display.close()
    if reason is not None:
        vec_env.close()
        write_status(path, "failed", reason=reason, timestep=model.num_timesteps, steps=steps)
        return RunResult(path, "failed", reason)
    if checkpointer.stopped_at is not None:
        vec_env.close()
        at = checkpointer.stopped_at
        _cut_csvs(path, at)
        name = _signal_name(checkpointer.stop_signal)
        write_status(path, "interrupted", reason=name, timestep=at, steps=steps)
        return RunResult(path, "interrupted", name, at, checkpointer.stop_signal)
    model.save(path / "final_model.zip")
    checkpointer.save()
    if evaluator is not None:
        evaluator.finish(model)
    vec_env.close()
    write_status(path, "done", timestep=model.num_timesteps, steps=steps)
    return RunResult(path, "done", timestep=model.num_timesteps)
