"""A grid of runs (envs x agents x seeds) on local cores or a Ray cluster, resumable.

On local cores a run is a child process, ``python -m rl_plasticity.cli train ... --resume``, with
its output in ``<root>/<group>/logs/<run>.log``; by default the seeds of one env and a FastPPO
agent share such processes as populations (``rlp train --seeds``, see
:mod:`rl_plasticity.experiment.population` and :func:`.local.default_populations`). A process
that crashes hard (segfault, SIGKILL, out of memory) takes only its own runs down. Such a run is
recorded as failed in its ``status.json`` (the child could not write it), the others go on, and
the next sweep resumes it from its last checkpoint. On Ray every run is a task that trains in
its worker process (the worker's own environment), in a folder of the worker's own disk, kept in
run storage (``storage``: a shared path or a URI) at every checkpoint; a task whose worker or node
is lost is retried from the last checkpoint in storage (see :mod:`.ray_cluster`, :mod:`.worker`,
:mod:`.storage`). Both backends make the same run directories. Running the same sweep again skips
finished runs and resumes the others from their last checkpoint (a run that never reached one is
restarted, with a note).

``overrides`` (``--set``) with several values make a grid of agents: each combination is its own
agent, named after it (``ppo-cbp+replacement_rate-1e-4``), in the run directories and the report.

Local runs are their own process groups: SIGINT (Ctrl-C) or SIGTERM to the sweep is passed on to
each running run once, which checkpoints and stops; runs not started yet are not started. A
second signal is passed on too (the runs then stop at once, keeping their last checkpoint).

Here: :func:`sweep` and its result; ``plan`` makes the grid's tasks, ``local`` and
``ray_cluster`` are the backends, ``progress`` is what the terminal shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.evaluation import EvalSettings
from rl_plasticity.experiment.rundir import RunResult
from rl_plasticity.overrides import Override
from rl_plasticity.sweep.local import (
    CHILD_ENV_DEFAULTS,
    Children,
    default_populations,
    population_tasks,
    run_local,
    run_task,
    signals_to,
)
from rl_plasticity.sweep.plan import LOGS, RunTask, default_jobs, parse_seeds, plan
from rl_plasticity.sweep.progress import SweepProgress, Tracker, short_reason
from rl_plasticity.sweep.ray_cluster import DEFAULT_MAX_RETRIES, load_runtime_env, run_ray
from rl_plasticity.sweep.storage import Storage

__all__ = [
    "BACKENDS",
    "CHILD_ENV_DEFAULTS",
    "DEFAULT_MAX_RETRIES",
    "LOGS",
    "Children",
    "RunTask",
    "Storage",
    "SweepProgress",
    "SweepResult",
    "default_jobs",
    "load_runtime_env",
    "parse_seeds",
    "plan",
    "run_task",
    "sweep",
]

BACKENDS = ("local", "ray")


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
            f"failed: {r.path}: {short_reason(r.reason)}"
            for r in self.results
            if r.status == "failed"
        ]
        return "\n".join(lines)


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
    storage: str | Path | None = None,
    max_retries: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    population: int | str = "auto",
) -> SweepResult:
    """Train every (env, agent, seed) of the grid; skip finished runs, resume unfinished ones.

    :param envs: env spec names or TOML paths
    :param agents: agent spec names or TOML paths
    :param seeds: the seeds (see :func:`parse_seeds`)
    :param steps: environment steps per run
    :param root: folder of run groups (with the Ray backend and a ``storage`` URI: only the
        driver's)
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
    :param storage: Ray backend: where run directories are kept, a path or a URI every worker and
        the driver reach (default: ``root``, which must then be shared)
    :param max_retries: Ray backend: tries of a run after the first when its worker or node is
        lost (default :data:`DEFAULT_MAX_RETRIES`)
    :param runtime_env: Ray backend: the workers' runtime environment (see
        :func:`load_runtime_env`)
    :param population: local backend: train up to this many seeds of one env and agent in one
        process, as a population (:mod:`rl_plasticity.experiment.population`); 1: a process per
        run; ``"auto"``: FastPPO agents' seeds in populations, as few as keep ``jobs`` processes
        busy, and every other run its own process (:func:`.local.default_populations`; with the
        Ray backend, a task per run)
    :return: every run's outcome, in grid order
    :raises ConfigError: for a bad spec, backend or argument, before any run starts
    """
    if backend not in BACKENDS:
        raise ConfigError("backend", backend, f"one of: {', '.join(BACKENDS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError("jobs", jobs, "a positive number of parallel runs")
    ray_only = {"storage": storage, "max_retries": max_retries, "runtime_env": runtime_env}
    for key, value in ray_only.items():
        if backend != "ray" and value is not None:
            raise ConfigError(key, value, "only with backend ray (local runs write under root)")
    if population != "auto" and (
        backend != "local" or not isinstance(population, int) or population < 1
    ):
        raise ConfigError(
            "population", population, "auto, or a positive number of seeds per process (local)"
        )
    if max_retries is not None and max_retries < 0:
        raise ConfigError("max_retries", max_retries, "a number of retries, 0 or more")
    if backend == "ray":
        store = Storage(root if storage is None else storage)
        # The driver reads runs in storage on its own filesystem; behind a URI the workers do.
        root = store.local_path if store.local_path is not None else root
    tasks = plan(
        envs, agents, seeds, steps, root, group, overrides, evaluation, checkpoint_minutes, echo
    )
    jobs = jobs or default_jobs()
    tracker = Tracker(tasks, echo, progress)
    if backend == "ray":
        retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        jobs = min(jobs, len(tasks))
        results = run_ray(tasks, jobs, address, tracker, store, retries, runtime_env)
        return SweepResult([results[task.path] for task in tasks])
    if population == "auto":
        groups = default_populations(tasks, jobs)
    else:
        groups = population_tasks(tasks, population)
    children = Children()
    with signals_to(children):
        results = run_local(groups, min(jobs, len(groups)), tracker, children)
    return SweepResult([results[task.path] for task in tasks], children.signum)
