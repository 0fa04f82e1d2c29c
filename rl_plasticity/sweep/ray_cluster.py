"""The Ray backend: each run a Ray task that trains in its worker (see :mod:`.worker`), with its
run directory kept in run storage the driver reads; a task whose worker or node is lost is retried
by Ray, from the run's last checkpoint in storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import STATUS_FILE, RunResult
from rl_plasticity.sweep.local import CHILD_ENV_DEFAULTS
from rl_plasticity.sweep.plan import RunTask
from rl_plasticity.sweep.progress import Tracker
from rl_plasticity.sweep.storage import Storage

#: Tries of a run after the first when its worker dies (node lost, killed, out of memory).
DEFAULT_MAX_RETRIES = 3


def load_runtime_env(path: Path) -> dict[str, Any]:
    """A Ray ``runtime_env`` from a JSON or YAML file (a mapping, e.g. ``pip``, ``env_vars``,
    ``working_dir``, ``container``; see Ray's docs on runtime environments).

    :param path: the file
    :raises ConfigError: if it cannot be read or is not a mapping
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError("runtime-env", str(path), f"a readable file ({e.strerror})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # yaml's and json's errors have no common base
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            "runtime-env", str(path), f"a JSON or YAML (.yaml, .yml) mapping ({reason})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "runtime-env", str(path), f"a mapping of runtime_env fields, not {type(data).__name__}"
        )
    return data


def _with_thread_defaults(runtime_env: dict[str, Any] | None) -> dict[str, Any]:
    """The runtime env with :data:`CHILD_ENV_DEFAULTS` among its ``env_vars`` (its own win)."""
    env = dict(runtime_env or {})
    env["env_vars"] = {**CHILD_ENV_DEFAULTS, **env.get("env_vars", {})}
    return env


def run_ray(
    tasks: list[RunTask],
    jobs: int,
    address: str | None,
    progress: Tracker,
    storage: Storage,
    max_retries: int = DEFAULT_MAX_RETRIES,
    runtime_env: dict[str, Any] | None = None,
) -> dict[Path, RunResult]:
    """Run the tasks as Ray tasks, each training in its worker, with run directories in storage.

    A finished run in storage is skipped without a task. A task whose worker dies (node lost,
    killed, out of memory) is tried again by Ray, up to ``max_retries`` more times, on any node,
    from the run's last checkpoint in storage; after the last, the run is failed, in its
    ``status.json`` in storage too. Each worker process trains one run (``max_calls=1``), so no
    state of one run reaches another.

    :param tasks: the runs
    :param jobs: CPUs of a Ray instance started here
    :param address: the cluster's address (None: start a local Ray instance)
    :param progress: told when runs end
    :param storage: where run directories are kept (every worker must reach it)
    :param max_retries: tries of a run after the first when its worker dies
    :param runtime_env: Ray's runtime environment for the workers; one BLAS thread per run is
        added to its ``env_vars`` unless set
    :return: each run's outcome by its task's path
    :raises ConfigError: if ray is not installed
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("backend", "ray", "needs ray: pip install 'rl_plasticity[ray]'") from None
    from rl_plasticity.sweep.worker import train_on_worker

    results: dict[Path, RunResult] = {}
    todo = []
    for task in tasks:
        status = storage.read_json(f"{task.relative}/{STATUS_FILE}") or {}
        if status.get("status") == "done" and status.get("timestep", 0) >= task.steps:
            results[task.path] = RunResult(task.path, "skipped")
            progress(results[task.path])
        else:
            todo.append(task)
    if not todo:
        return results
    groups = {task.path.parent.name for task in todo}
    tokens = {group: storage.write_token(group) for group in groups}
    started = not ray.is_initialized()
    env = _with_thread_defaults(runtime_env)
    if started and address is None:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    elif started:
        ray.init(address=address, log_to_driver=False)
    # The runtime env goes with each task, so that it holds on a Ray instance started before too.
    remote = ray.remote(num_cpus=1, max_retries=max_retries, max_calls=1, runtime_env=env)(
        train_on_worker
    )
    pending = {
        remote.remote(task, storage.location, tokens[task.path.parent.name]): task for task in todo
    }
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # the last try's worker died, or the task raised
                result = _failed(task, storage, e, max_retries)
            results[task.path] = result
            progress(result)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        if started:
            ray.shutdown()
    return results


def _failed(task: RunTask, storage: Storage, error: Exception, max_retries: int) -> RunResult:
    """Record a run whose task raised or whose every try lost its worker as failed."""
    first = (str(error).strip().splitlines() or [""])[-1]
    reason = f"ray task failed ({type(error).__name__}, {max_retries} retries): {first}"
    relative = f"{task.relative}/{STATUS_FILE}"
    status = storage.read_json(relative)
    if status is not None and status.get("status") in ("starting", "running"):
        storage.write_json(relative, {**status, "status": "failed", "reason": reason})
    return RunResult(Path(storage.where(task.relative)), "failed", reason)
