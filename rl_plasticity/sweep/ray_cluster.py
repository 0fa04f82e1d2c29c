"""The Ray backend: the same child command per run, as Ray tasks on a cluster (or a local one)."""

from __future__ import annotations

from pathlib import Path

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import RunResult, read_status, write_status
from rl_plasticity.sweep.local import run_task
from rl_plasticity.sweep.plan import RunTask
from rl_plasticity.sweep.progress import Tracker


def run_ray(
    tasks: list[RunTask], jobs: int, address: str | None, progress: Tracker
) -> dict[Path, RunResult]:
    """Run the tasks as Ray tasks (each one the same child process as the local backend's).

    A task whose worker died (node lost, out of memory) is failed, in its ``status.json`` too.

    :param tasks: the runs
    :param jobs: CPUs of a Ray instance started here
    :param address: the cluster's address (None: start a local Ray instance)
    :param progress: told when runs end
    :return: each run's outcome by its directory
    :raises ConfigError: if ray is not installed
    """
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
