"""Every registered plasticity method on permuted digits: one comparison table, with CIs.

Each learner is the same MLP (64 -> 100 -> 100 -> 10, ReLU, LeCun-uniform init, plain SGD with
step size 0.1, minibatches of 16; ``rl_plasticity.problems.continual``) with one registered
method attached from plain PyTorch, trained online on permuted 8x8 digits
(``rl_plasticity.problems.permuted_digits``: every task is the 1,797 images with a new pixel
permutation, each seen once). Two references: the linear learner (one Linear layer, its own step
size) and a fresh network at every task (the ``reset`` method: what a network that never lost
plasticity reaches within one task).

Settings: each method's main setting is chosen from a small grid (``ENTRIES``) by the mean error
over the second half of the tasks on the tuning seeds (1000, 1001), which are not reported; the
reported seeds are 0..N-1. Where a method's default is counted in updates for RL (CBP's maturity,
ReDo's period), the fixed value here is ours for this problem and is written beside it.

    .venv/bin/python -m bench.method_table --seeds 30 --tasks 100 --jobs 2   # tune, run, report
    .venv/bin/python -m bench.method_table --seeds 30 --tasks 100 --only-cached  # report only

Every finished run is cached (``--cache``), so a stopped bench continues where it was. With
``--population``, the rows a population can run (no method, SGD: backprop, L2, the linear
learner) run each grid point's seeds as one process
(``rl_plasticity.problems.population.continual``), writing the same cache files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from rl_plasticity.problems.continual import ContinualLearner

RESULTS = Path(__file__).parent / "results"
TUNING_SEEDS = (1000, 1001)


@dataclass(frozen=True)
class Problem:
    """A supervised stream and the base learner every row of its table shares.

    :param name: ``digits`` or ``regression``
    :param base: ContinualLearner fields of the base learner
    :param num_inputs: input features
    :param num_outputs: network outputs
    :param loss: ``cross_entropy`` or ``squared``
    :param steps_per_task: optimizer steps per task
    """

    name: str
    base: Mapping[str, Any]
    num_inputs: int
    num_outputs: int
    loss: str
    steps_per_task: int

    def tasks(self, seed: int, num_tasks: int):
        """The run's tasks: permutations of the digits, or flip periods of the regression (of
        ``steps_per_task`` examples each, batch 1)."""
        if self.name == "digits":
            from rl_plasticity.problems.permuted_digits import PermutedDigits

            return PermutedDigits(seed).tasks(num_tasks)
        from rl_plasticity.problems.slowly_changing import SlowlyChangingRegression

        return SlowlyChangingRegression(seed, flip_period=self.steps_per_task).chunks(
            num_tasks * self.steps_per_task
        )


#: Permuted digits: 64 -> 100 -> 100 -> 10, SGD 0.1, minibatches of 16 (our settings: the step
#: size at which backprop's error rises within 100 tasks in a pilot, see BENCHMARKS.md).
DIGITS = Problem(
    "digits",
    {"hidden": (100, 100), "optimizer": "sgd", "step_size": 0.1, "batch_size": 16},
    64,
    10,
    "cross_entropy",
    -(-1797 // 16),
)
#: The slowly-changing regression with the paper's learner: 5 ReLU units, SGD 0.01, batch 1.
REGRESSION = Problem(
    "regression",
    {"hidden": (5,), "optimizer": "sgd", "step_size": 0.01, "batch_size": 1},
    20,
    1,
    "squared",
    10_000,
)
PROBLEMS = {p.name: p for p in (DIGITS, REGRESSION)}
BASE = DIGITS.base
LEARNER_KEYS = {f.name for f in fields(ContinualLearner)}


@dataclass(frozen=True)
class Entry:
    """One row of the table: a method with fixed settings and a grid for its main setting.

    :param name: the row's name
    :param method: registered method name, or None
    :param fixed: settings every grid point shares (ContinualLearner fields or method settings)
    :param grid: the candidates (one dict each); one empty dict when nothing is tuned
    :param note: where the fixed settings come from
    :param fresh: the row of the fresh network it is compared with (same architecture and base)
    """

    name: str
    method: str | None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    grid: Sequence[Mapping[str, Any]] = ({},)
    note: str = ""
    fresh: str = "fresh network"


def _grid(key: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    return [{key: v} for v in values]


ENTRIES: list[Entry] = [
    Entry("backprop", None, note="no method"),
    Entry("linear", None, {"hidden": ()}, _grid("step_size", [0.01, 0.03, 0.1])),
    Entry("fresh network", "reset", {"init": "lecun_uniform"}, note="a new network every task"),
    Entry("l2", None, grid=_grid("weight_decay", [1e-4, 1e-3, 1e-2])),
    Entry(
        "cbp",
        "cbp",
        {"maturity_threshold": 100},
        _grid("replacement_rate", [1e-5, 1e-4, 1e-3]),
        "maturity 100 updates (the Nature code's supervised configs)",
    ),
    Entry(
        "cbpi",
        "cbp",
        {"maturity_threshold": 100, "decay_rate": 0.0},
        _grid("replacement_rate", [1e-5, 1e-4, 1e-3]),
        "instantaneous utility",
    ),
    Entry(
        "redo", "redo", {"every_updates": 100}, _grid("tau", [0.0, 0.025, 0.1]), "every 100 updates"
    ),
    Entry(
        "regrama",
        "regrama",
        {"every_updates": 100, "init": "lecun_uniform"},
        _grid("tau", [0.0, 0.025, 0.1]),
        "every 100 updates",
    ),
    Entry(
        "shrink-perturb",
        "snp",
        {"shrink": 0.9999, "target": "zero"},
        _grid("noise_std", [1e-4, 1e-3, 1e-2]),
        "shrink 1e-4 per update toward 0",
    ),
    Entry("l2init", "l2init", grid=_grid("coeff", [1e-3, 1e-2, 1e-1])),
    Entry("er", "er", grid=_grid("coeff", [1e-3, 1e-2, 1e-1])),
    Entry("parseval", "parseval", {"scale": 1.0}, _grid("coeff", [1e-4, 1e-3, 1e-2]), "s 1"),
    Entry("spectral", "spectral", grid=_grid("coeff", [1e-4, 1e-3, 1e-2])),
    Entry(
        "noisy_sgd",
        "noisy_sgd",
        {"restart_on_change": True},
        _grid("noise_scale", [1e-3, 1e-2, 1e-1]),
        "restarted at each task",
    ),
    Entry(
        "weight_clipping",
        "weight_clipping",
        {"init": "lecun_uniform"},
        _grid("kappa", [2.0, 3.0, 5.0]),
    ),
    Entry("upgd", "upgd", grid=_grid("sigma", [1e-4, 1e-3, 1e-2])),
    Entry("trac", "trac"),
    Entry("layernorm", "layernorm"),
    Entry("crelu", "crelu", fresh="fresh crelu"),
    Entry("fourier", "fourier", fresh="fresh fourier"),
    Entry("nap", "nap"),
    Entry(
        "layer_reset",
        "layer_reset",
        {"init": "lecun_uniform"},
        _grid("every_tasks", [5, 20, 50]),
        "every 5, 20 or 50 tasks",
    ),
    Entry(
        "injection",
        "injection",
        {"init": "lecun_uniform", "at_change": True},
        _grid("max_injections", [1, 3, 10]),
        "at task changes",
    ),
]


#: The architecture methods against a fresh network of their own architecture, and in the
#: width-matched form (``width="match_parameters"``: at least the base network's parameter count
#: with fewer units, as Kumar et al. 2023, App. A.1.3, fit Concat ReLU).
MATCHED = {"width": "match_parameters"}
ARCHITECTURE_ENTRIES: list[Entry] = [
    Entry(
        f"fresh {arch}{suffix}",
        "reset",
        {"init": "lecun_uniform", "architecture": arch, "architecture_settings": width},
        note=f"a new {arch} network every task",
        fresh=f"fresh {arch}{suffix}",
    )
    for arch in ("crelu", "fourier")
    for suffix, width in (("", {}), (" (matched)", MATCHED))
] + [
    Entry(f"{arch} (matched)", arch, MATCHED, fresh=f"fresh {arch} (matched)")
    for arch in ("crelu", "fourier")
]

#: Each method on the base its authors train it with, where that is not plain SGD: Adam at step
#: size 1e-3 (Kumar et al. 2023, Table 3: the best Adam step size on Permuted MNIST for L2 Init,
#: Concat ReLU, LayerNorm, shrink & perturb, CBP and ReDo; their baseline: 1e-4, tuned here),
#: compared with backprop and a fresh network on the same Adam. The Adam of TRAC's, NaP's,
#: Parseval's, ER's and spectral regularization's papers is the same choice; their step sizes
#: for this problem are untraced (not the papers' problems), so 1e-3 is ours.
ADAM = {"optimizer": "adam", "step_size": 1e-3}
ADAM_ROWS = ("l2init", "layernorm", "crelu", "fourier", "nap", "trac", "parseval", "er", "spectral")
ADAM_ROWS += ("redo",)
ADAM_ENTRIES: list[Entry] = [
    Entry(
        "backprop (adam)",
        None,
        {"optimizer": "adam"},
        _grid("step_size", [1e-4, 1e-3]),
        "Kumar et al.'s Adam step sizes",
        fresh="fresh network (adam)",
    ),
    Entry(
        "fresh network (adam)",
        "reset",
        {**ADAM, "init": "lecun_uniform"},
        note="a new network every task",
        fresh="fresh network (adam)",
    ),
    *[
        replace(e, name=f"{e.name} (adam)", fixed={**e.fixed, **ADAM}, fresh="fresh network (adam)")
        for e in ENTRIES
        if e.name in ADAM_ROWS
    ],
    Entry(
        "shrink-perturb ash-adams (adam)",
        "snp",
        {**ADAM, "shrink": 1 - 1e-3, "init": "lecun_uniform"},
        _grid("fresh_scale", [1e-3, 1e-2, 1e-1]),
        "Kumar et al. Table 3 (Adam): p = 1 - 1e-3, sigma on init-distribution noise",
        fresh="fresh network (adam)",
    ),
]

#: Shrink-and-perturb in Ash & Adams' form on the shared SGD base (Kumar et al. Table 3, SGD:
#: p = 1 - 1e-4, sigma 1e-2), and UPGD stepped as its authors' code steps it (2 x the step size;
#: its weight decay stays 1e-3, so it decays by (1 - 2e-4) a step where theirs would by (1 - 1e-4)).
AUTHORS_FORM_ENTRIES: list[Entry] = [
    Entry(
        "shrink-perturb ash-adams",
        "snp",
        {"shrink": 1 - 1e-4, "init": "lecun_uniform"},
        _grid("fresh_scale", [1e-3, 1e-2, 1e-1]),
        "Kumar et al. Table 3 (SGD): p = 1 - 1e-4, sigma on init-distribution noise",
    ),
    Entry(
        "upgd (2 x step)",
        "upgd",
        {"step_size": 0.2},
        _grid("sigma", [1e-4, 1e-3, 1e-2]),
        "the authors' code steps by 2 x lr: 0.2 = 2 x the shared 0.1",
    ),
]
ENTRIES += ARCHITECTURE_ENTRIES + ADAM_ENTRIES + AUTHORS_FORM_ENTRIES


def resolve(point: Mapping[str, Any], problem: Problem) -> dict[str, Any]:
    """A grid point in the method's own settings (``every_tasks`` becomes ``every_updates``)."""
    point = dict(point)
    if "every_tasks" in point:
        point["every_updates"] = point.pop("every_tasks") * problem.steps_per_task
    return point


def learner_for(entry: Entry, point: Mapping[str, Any], problem: Problem) -> ContinualLearner:
    """The learner of ``entry`` at one grid ``point`` on ``problem``."""
    settings = {**entry.fixed, **resolve(point, problem)}
    own = {k: v for k, v in settings.items() if k in LEARNER_KEYS}
    method = {k: v for k, v in settings.items() if k not in LEARNER_KEYS}
    return ContinualLearner(**{**problem.base, **own}, method=entry.method, settings=method)


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


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean over seeds and the half-width of its 95% t-interval."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def fmt(value: tuple[float, float], digits: int = 3) -> str:
    """``mean ± half-width``."""
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def window_means(results: dict[str, np.ndarray]) -> tuple[int, dict, dict]:
    """The window (a tenth of the tasks) and each learner's per-seed mean error over the first
    and the last window: ``(tenth, early, late)``."""
    tasks = next(iter(results.values())).shape[1]
    tenth = max(1, tasks // 10)
    early = {name: e[:, :tenth].mean(axis=1) for name, e in results.items()}
    late = {name: e[:, -tenth:].mean(axis=1) for name, e in results.items()}
    return tenth, early, late


def summarize(
    results: dict[str, np.ndarray],
    chosen: dict[str, dict],
    fresh_of: Mapping[str, str] | None = None,
) -> list[str]:
    """The markdown table: early and late error, and late error relative to the references.

    Early: the mean online error over the first 10% of the tasks; late: over the last 10%.
    Ratios are taken per seed (every learner of a seed sees the same stream) and averaged; each
    row is divided by its own fresh network's (``fresh_of``: same architecture and base; default
    the plain ``fresh network``).
    """
    _, early, late = window_means(results)
    nan = np.full(len(next(iter(late.values()))), np.nan)
    linear = late.get("linear", nan)
    fresh_of = fresh_of or {}
    lines = [
        "| learner | setting | early error | late error | late - early | late / its fresh "
        "network's | late / linear's |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(results, key=lambda n: late[n].mean()):
        setting = ", ".join(f"{k} {v}" for k, v in chosen.get(name, {}).items()) or "-"
        fresh = late.get(fresh_of.get(name, "fresh network"), nan)
        lines.append(
            f"| {name} | {setting} | {fmt(mean_ci(early[name]))} | {fmt(mean_ci(late[name]))} | "
            f"{fmt(mean_ci(late[name] - early[name]))} | {fmt(mean_ci(late[name] / fresh), 2)} | "
            f"{fmt(mean_ci(late[name] / linear), 2)} |"
        )
    return lines


#: Paired comparisons reported under the table (when both rows ran): per seed, the first's late
#: error minus the second's.
PAIRS = (
    ("backprop", "fresh network"),
    ("backprop (adam)", "fresh network (adam)"),
    ("crelu", "fresh crelu"),
    ("crelu (matched)", "fresh crelu (matched)"),
    ("fourier", "fresh fourier"),
    ("fourier (matched)", "fresh fourier (matched)"),
)


def paired(results: dict[str, np.ndarray], pairs: Sequence[tuple[str, str]] = PAIRS) -> list[str]:
    """Per-seed differences of late error (the last tenth of the tasks: the last 100 of 1,000),
    mean with its 95% t-interval and whether the interval lies above 0."""
    tenth, _, late = window_means(results)
    lines = []
    for a, b in pairs:
        if a not in late or b not in late:
            continue
        diff = late[a] - late[b]
        mean, half = mean_ci(diff)
        verdict = "above 0" if mean - half > 0 else "below 0" if mean + half < 0 else "includes 0"
        lines.append(
            f"- {a} - {b}, mean error over the last {tenth} tasks, paired by seed: "
            f"{fmt((mean, half))} ({len(diff)} seeds; interval {verdict}; "
            f"{int((diff > 0).sum())} of {len(diff)} seeds above 0)"
        )
    return lines


def per_seed_csv(results: dict[str, np.ndarray], chosen: dict[str, dict], path: Path) -> None:
    """One line per learner and seed: its setting, early and late error (the table's windows)."""
    tenth, early, late = window_means(results)
    lines = [f"learner,setting,seed,early_error_first_{tenth},late_error_last_{tenth}"]
    for name in results:
        setting = " ".join(f"{k}={v}" for k, v in chosen.get(name, {}).items())
        for seed, (first, last) in enumerate(zip(early[name], late[name], strict=True)):
            lines.append(f"{name},{setting},{seed},{first:.6f},{last:.6f}")
    path.write_text("\n".join(lines) + "\n")


REFERENCE_COLORS = {"backprop": "C3", "fresh network": "0.45", "linear": "k"}


def plot(results: dict[str, np.ndarray], path: Path, shown: int = 4) -> None:
    """Left: error per task (mean over seeds, bins of a tenth of the run) of the references and
    the ``shown`` methods with the lowest late error; right: every learner's late error relative
    to a fresh network's, mean over seeds with its 95% t-interval, on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from rl_plasticity.report.figures import save

    tasks = next(iter(results.values())).shape[1]
    tenth, _, late_error = window_means(results)
    fresh = late_error["fresh network"]
    late = {n: e / fresh for n, e in late_error.items()}
    order = sorted(results, key=lambda n: late[n].mean())
    best = [n for n in order if n not in REFERENCE_COLORS][:shown]
    palette = ["C0", "C1", "C2", "C4", "C5", "C6"]
    colors = {**dict(zip(best, palette, strict=False)), **REFERENCE_COLORS}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.5), width_ratios=(1, 1))
    bins = np.arange(tenth, tasks + 1, tenth)
    for name in [*REFERENCE_COLORS, *best]:
        if name not in results:
            continue
        curve = [results[name][:, b - tenth : b].mean() for b in bins]
        width = 2.2 if name in REFERENCE_COLORS else 1.2
        left.plot(bins, curve, color=colors[name], marker="o", ms=3, lw=width, label=name)
    left.set_xlabel("task")
    left.set_ylabel(f"online error, mean over {len(fresh)} seeds")
    left.set_title(f"error per task (bins of {tenth} tasks): references and the {shown} best")
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    means = [mean_ci(late[n]) for n in order]
    right.barh(
        range(len(order)),
        [m for m, _ in means],
        xerr=[h for _, h in means],
        color=[colors.get(n, "#9fb8d3") for n in order],
        capsize=2,
    )
    right.axvline(1.0, color="k", lw=0.8, ls="--")
    right.set_xscale("log")
    low = min(m - h for m, h in means)
    high = max(m + h for m, h in means)
    ticks = [
        t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10) if low / 1.5 <= t <= high * 1.5
    ]
    right.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    right.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    right.set_yticks(range(len(order)), order, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("late error / a fresh network's (mean, 95% CI); < 1: better than a new net")
    right.set_title(f"last {tenth} tasks")
    right.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


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
