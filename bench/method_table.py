"""Every registered plasticity method on permuted digits: one comparison table, with CIs.

Each learner is the same MLP (64 -> 100 -> 100 -> 10, ReLU, LeCun-uniform init, plain SGD with
step size 0.1, minibatches of 16; ``rl_plasticity.problems.continual``) with one registered
method attached from plain PyTorch, trained online on permuted 8x8 digits
(``rl_plasticity.problems.permuted_digits``: every task is the 1,797 images with a new pixel
permutation, each seen once). Two references: the linear learner (one Linear layer, its own step
size) and a fresh network at every task (the ``reset`` method: what a network that never lost
plasticity reaches within one task).

Settings: each method's main setting is chosen from a small grid (``ENTRIES``, with the problems,
in ``bench.method_table_rows``) by the mean error over the second half of the tasks on the tuning
seeds (1000, 1001), which are not reported; the reported seeds are 0..N-1. Where a method's
default is counted in updates for RL (CBP's maturity, ReDo's period), the fixed value here is ours
for this problem and is written beside it.

    .venv/bin/python -m bench.method_table --seeds 30 --tasks 100 --jobs 2   # tune, run, report
    .venv/bin/python -m bench.method_table --seeds 30 --tasks 100 --only-cached  # report only

Every finished run is cached (``--cache``), so a stopped bench continues where it was. With
``--population``, the rows a population can run (no method, SGD: backprop, L2, the linear
learner) run each grid point's seeds as one process
(``rl_plasticity.problems.population.continual``), writing the same cache files. This module
runs the jobs and picks each row's setting; ``bench.method_table_report`` writes the table, the
per-seed CSV and the figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.method_table_report import paired, per_seed_csv, plot, summarize
from bench.method_table_rows import (
    DIGITS,
    ENTRIES,
    PROBLEMS,
    REGRESSION,
    Entry,
    Problem,
    learner_for,
    resolve,
)

RESULTS = Path(__file__).parent / "results"
TUNING_SEEDS = (1000, 1001)


def job_key(entry: Entry, point: Mapping[str, Any], seed: int, tasks: int, problem: Problem) -> str:
    """A file name for one run's cache."""
    parts: list[Any] = [
        entry.method,
        dict(entry.fixed),
        resolve(point, problem),
        dict(problem.base),
    ]
    if problem.name != DIGITS.name:  # by name: a problem sent to a worker is a copy
        parts.append([problem.name, problem.steps_per_task])
    digest = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]
    return f"{entry.name.replace(' ', '_')}_{digest}_s{seed}_t{tasks}"


def run_job(job: tuple[Entry, dict, int, int, str, Problem]) -> tuple[str, float]:
    """Run (or load) one learner on one seed; return its key and the seconds it took."""
    import torch

    from rl_plasticity.problems.continual import online_task_errors

    torch.set_num_threads(1)
    entry, point, seed, tasks, cache, problem = job
    key = job_key(entry, point, seed, tasks, problem)
    path = Path(cache) / f"{key}.npy"
    if path.exists():
        return key, 0.0
    start = time.perf_counter()
    errors = online_task_errors(
        learner_for(entry, point, problem),
        problem.tasks(seed, tasks),
        problem.num_inputs,
        problem.num_outputs,
        seed,
        loss=problem.loss,
    )
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, errors)
    os.replace(tmp, path)
    return key, time.perf_counter() - start


def load(
    entry: Entry,
    point: Mapping[str, Any],
    seeds: Sequence[int],
    tasks: int,
    cache: str,
    problem: Problem,
) -> np.ndarray | None:
    """(seeds, tasks) errors of the cached runs, or None when any is missing."""
    paths = [Path(cache) / f"{job_key(entry, point, s, tasks, problem)}.npy" for s in seeds]
    if not all(p.exists() for p in paths):
        return None
    return np.stack([np.load(p) for p in paths])


def run_population_job(
    job: tuple[Entry, dict, tuple[int, ...], int, str, Problem],
) -> tuple[str, float]:
    """Run the seeds of one row and grid point as one population (``population.continual``),
    writing each seed's cache file as :func:`run_job` would; return a key and the seconds."""
    import torch

    from rl_plasticity.problems.population.continual import population_task_errors

    torch.set_num_threads(1)
    entry, point, seeds, tasks, cache, problem = job
    start = time.perf_counter()
    errors = population_task_errors(
        learner_for(entry, point, problem),
        [problem.tasks(seed, tasks) for seed in seeds],
        problem.num_inputs,
        problem.num_outputs,
        seeds,
        loss=problem.loss,
    )
    for seed, row in zip(seeds, errors, strict=True):
        path = Path(cache) / f"{job_key(entry, point, seed, tasks, problem)}.npy"
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, row)
        os.replace(tmp, path)
    key = f"{job_key(entry, point, seeds[0], tasks, problem)} and {len(seeds) - 1} more seeds"
    return key, time.perf_counter() - start


def as_populations(jobs: list) -> list:
    """The jobs with every row and grid point that a population can run (no method, SGD: see
    ``population.continual.continual_population_reason``) merged into one population job over
    its seeds not cached yet; the other jobs unchanged."""
    from rl_plasticity.problems.population.continual import continual_population_reason

    groups: dict[tuple, list[int]] = {}
    named: dict[str, tuple[Entry, Problem]] = {}
    rest = []
    for job in jobs:
        entry, point, seed, tasks, cache, problem = job
        cached = (Path(cache) / f"{job_key(entry, point, seed, tasks, problem)}.npy").exists()
        if problem.name != DIGITS.name or continual_population_reason(
            learner_for(entry, point, problem)
        ):
            rest.append(job)
        elif not cached:
            named[entry.name] = (entry, problem)
            groups.setdefault((entry.name, json.dumps(point), tasks, cache), []).append(seed)
    merged = [
        (named[name][0], json.loads(point), tuple(seeds), tasks, cache, named[name][1])
        for (name, point, tasks, cache), seeds in groups.items()
    ]
    return merged + rest


def _run_any(job: tuple) -> tuple[str, float]:
    return run_population_job(job) if isinstance(job[2], tuple) else run_job(job)


def run_all(jobs: list, workers: int, population: bool = False) -> float:
    """Run the jobs (cached ones cost nothing); return the CPU seconds of those that ran.

    :param population: run the digits rows a population can run as one job per row and point
    """
    if population:
        jobs = as_populations(jobs)
    if not jobs:
        return 0.0
    total = 0.0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, (key, seconds) in enumerate(pool.map(_run_any, jobs), 1):
            total += seconds
            if seconds:
                print(f"[{done}/{len(jobs)}] {key} {seconds:.1f} s", flush=True)
    return total


def choose(entry: Entry, tasks: int, cache: str, problem: Problem) -> dict:
    """The grid point with the lowest mean error over the second half of the tasks on the
    tuning seeds."""
    scores = {}
    for point in entry.grid:
        errors = load(entry, point, TUNING_SEEDS, tasks, cache, problem)
        if errors is None:
            raise RuntimeError(f"{entry.name}: tuning runs missing")
        scores[json.dumps(point)] = float(errors[:, tasks // 2 :].mean())
    return json.loads(min(scores, key=scores.__getitem__))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="digits")
    parser.add_argument("--seeds", type=int, default=30, help="reported seeds 0..N-1")
    parser.add_argument("--tasks", type=int, default=100, help="tasks (regression: flip periods)")
    parser.add_argument(
        "--flip-period", type=int, default=10_000, help="regression: examples between flips"
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--cache", default="runs/method_table_cache", help="finished runs")
    parser.add_argument("--only", default="", help="comma-separated rows (default: all)")
    parser.add_argument("--only-cached", action="store_true", help="report what is cached")
    parser.add_argument("--out", type=Path, default=None, help="table (.md) and figure (.png)")
    parser.add_argument(
        "--population",
        action="store_true",
        help="digits: run each row's seeds as one population where it can (backprop, L2, linear)",
    )
    args = parser.parse_args(argv)
    problem = PROBLEMS[args.problem]
    if problem is REGRESSION:
        problem = replace(problem, steps_per_task=args.flip_period)
    entries = [e for e in ENTRIES if not args.only or e.name in args.only.split(",")]
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    seeds = range(args.seeds)
    start = time.perf_counter()
    cpu = 0.0
    common = (args.tasks, args.cache, problem)
    if not args.only_cached:
        tuning = [
            (e, dict(p), s, *common)
            for e in entries
            if len(e.grid) > 1
            for p in e.grid
            for s in TUNING_SEEDS
        ]
        cpu += run_all(tuning, args.jobs, args.population)
    chosen = {e.name: choose(e, *common) if len(e.grid) > 1 else {} for e in entries}
    if not args.only_cached:
        jobs = [(e, chosen[e.name], s, *common) for e in entries for s in seeds]
        cpu += run_all(jobs, args.jobs, args.population)
    results = {}
    for e in entries:
        errors = load(e, chosen[e.name], seeds, *common)
        if errors is not None:
            results[e.name] = errors
    print(f"{time.perf_counter() - start:.0f} s wall, {cpu:.0f} s in runs that ran")
    lines = summarize(results, chosen, {e.name: e.fresh for e in entries})
    lines += ["", *paired(results)]
    print("\n".join(lines))
    out = args.out or RESULTS / f"method_table_{problem.name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    per_seed_csv(results, chosen, out.with_suffix(".per_seed.csv"))
    if "fresh network" in results:
        plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
