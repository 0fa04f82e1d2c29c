"""Slowly-changing regression (Dohare et al. 2024): backprop loses plasticity, CBP keeps it.

Backprop, continual backprop, L2, shrink-and-perturb and a linear learner learn the same example
streams online (batch 1, SGD, step size 0.01, 5 ReLU units); writes a plot of the binned squared
error against examples and a table of early vs late error.

    .venv/bin/python -m bench.bench_regression              # 1M examples, 3 seeds (long)
    .venv/bin/python -m bench.bench_regression --quick      # 100k examples, 1 seed
    .venv/bin/python -m bench.bench_regression --population --seeds 30 --workers 2
        # each learner's 30 seeds as one population (rl_plasticity.problems.population),
        # one process each
    .venv/bin/python -m bench.bench_regression --speed --population --seeds 30
        # examples/s of a 30-member population against 30 single learners in one process

Settings: backprop, CBP (replacement rate 1e-4, maturity threshold 100, decay rate 0.99) and the
linear learner are the paper's. L2's weight decay and shrink-and-perturb's shrink and noise were
chosen by us (see ``LEARNERS``), not taken from the paper.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import interleaved, medians
from rl_plasticity.problems.population.regression import population_binned_errors
from rl_plasticity.problems.slowly_changing import Learner, binned_errors

STEP_SIZE = 0.01
#: The learners compared. L2: SGD weight decay 1e-2 (the value the authors' code fixes for its
#: shrink-and-perturb runs on this problem); shrink-and-perturb: the same shrink applied after each
#: step (lambda = 1 - step_size * 1e-2) plus N(0, 1e-3^2) noise on every parameter (our choice).
LEARNERS: dict[str, Learner] = {
    "backprop": Learner(step_size=STEP_SIZE),
    "cbp": Learner(step_size=STEP_SIZE, replacement_rate=1e-4, maturity_threshold=100),
    "l2": Learner(step_size=STEP_SIZE, weight_decay=1e-2),
    "shrink-perturb": Learner(step_size=STEP_SIZE, shrink=1 - STEP_SIZE * 1e-2, perturb_std=1e-3),
    "linear": Learner(step_size=STEP_SIZE, num_hidden=0),
}
COLORS = {"backprop": "C3", "cbp": "C0", "l2": "C2", "shrink-perturb": "C1", "linear": "C7"}


def cache_path(cache: str, name: str, seed: int, num_examples: int, bin_size: int) -> Path:
    """Where a finished run's binned errors and speed are kept."""
    return Path(cache) / f"{name}_s{seed}_n{num_examples}_b{bin_size}.npz"


def run_one(
    name: str, seed: int, num_examples: int, bin_size: int, cache: str | None
) -> tuple[np.ndarray, float]:
    """Binned errors of one learner on one seed, and its examples per second.

    With ``cache``, a finished run is saved there and loaded instead of run again, so a long
    bench that was stopped can be summarized or continued.
    """
    import torch

    torch.set_num_threads(1)
    path = None
    if cache is not None:
        path = cache_path(cache, name, seed, num_examples, bin_size)
        if path.exists():
            saved = np.load(path)
            return saved["errors"], float(saved["speed"])
    start = time.perf_counter()
    errors = binned_errors(LEARNERS[name], seed, num_examples=num_examples, bin_size=bin_size)
    speed = num_examples / (time.perf_counter() - start)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, errors=errors, speed=speed)
    return errors, speed


def run_population(
    name: str, seeds: list[int], num_examples: int, bin_size: int, cache: str | None
) -> dict[int, tuple[np.ndarray, float]]:
    """Binned errors of one learner on every seed, the seeds not in ``cache`` run as one
    population (one member per seed, ``population.regression``).

    Each seed is cached in its own file, named and laid out as :func:`run_one`'s (``errors``,
    ``speed``) plus ``population`` (the number of members it ran with); ``speed`` is the
    population's examples per second summed over its members. Give single and population runs
    different ``--cache`` folders to compare them file by file.

    :return: seed -> (binned errors, examples/s)
    """
    import torch

    torch.set_num_threads(1)
    results: dict[int, tuple[np.ndarray, float]] = {}
    for seed in seeds:
        path = cache_path(cache, name, seed, num_examples, bin_size) if cache else None
        if path is not None and path.exists():
            saved = np.load(path)
            results[seed] = saved["errors"], float(saved["speed"])
    missing = [seed for seed in seeds if seed not in results]
    if not missing:
        return results
    start = time.perf_counter()
    errors = population_binned_errors(
        LEARNERS[name], missing, num_examples=num_examples, bin_size=bin_size
    )
    speed = len(missing) * num_examples / (time.perf_counter() - start)
    for seed, row in zip(missing, errors, strict=True):
        results[seed] = row, speed
        if cache is not None:
            path = cache_path(cache, name, seed, num_examples, bin_size)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, errors=row, speed=speed, population=len(missing))
    return results


def summarize(results: dict[str, dict[int, np.ndarray]], fraction: float) -> list[str]:
    """Markdown table rows: per learner, early and late error, and late error against linear's.

    Early: the first ``fraction`` of the bins; late: the last ``fraction``; mean +- standard
    error over seeds. How hard the target is depends on the flipping bits' current values, so
    every learner's error moves with the stream; the linear learner sees the same streams (same
    seeds), and the ratios to its error (of the seed means) remove that shared part.
    """
    k = max(1, round(fraction * len(next(iter(next(iter(results.values())).values())))))
    linear = results.get("linear", {})
    rows = [
        f"| learner | seeds | early error (first {fraction:.0%}) "
        f"| late error (last {fraction:.0%}) | late / early | early / linear's | late / linear's |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        curves = np.stack(list(runs.values()))
        early, late = curves[:, :k].mean(axis=1), curves[:, -k:].mean(axis=1)
        sem = np.sqrt(len(runs))
        versus_linear = "| | |"
        paired = [seed for seed in runs if seed in linear]
        if paired:  # over the seeds both ran, so that both saw the same streams
            mine = np.stack([runs[seed] for seed in paired])
            theirs = np.stack([linear[seed] for seed in paired])
            early_ratio = mine[:, :k].mean() / theirs[:, :k].mean()
            late_ratio = mine[:, -k:].mean() / theirs[:, -k:].mean()
            versus_linear = f"| {early_ratio:.2f} | {late_ratio:.2f} |"
        rows.append(
            f"| {name} | {len(runs)} | {early.mean():.3f} ± {early.std() / sem:.3f} "
            f"| {late.mean():.3f} ± {late.std() / sem:.3f} | {late.mean() / early.mean():.2f} "
            + versus_linear
        )
    return rows


def paired_against(
    results: dict[str, dict[int, np.ndarray]], reference: str, fraction: float
) -> list[str]:
    """Per seed, each learner's late error minus ``reference``'s on the same stream: the mean
    difference with its 95% t-interval, and in how many seeds it is above 0 (for backprop
    against the linear learner: in how many seeds backprop ends worse)."""
    from scipy import stats

    if reference not in results:
        return []
    k = max(1, round(fraction * len(next(iter(results[reference].values())))))
    lines = []
    for name, runs in results.items():
        seeds = sorted(set(runs) & set(results[reference]))
        if name == reference or len(seeds) < 2:
            continue
        diff = np.array([runs[s][-k:].mean() - results[reference][s][-k:].mean() for s in seeds])
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        low, high = diff.mean() - half, diff.mean() + half
        verdict = "above 0" if low > 0 else "below 0" if high < 0 else "includes 0"
        lines.append(
            f"- {name} - {reference}, late error (last {fraction:.0%}), paired by seed: "
            f"{diff.mean():.4f} ± {half:.4f} ({len(diff)} seeds; interval {verdict}; "
            f"{int((diff > 0).sum())} of {len(diff)} seeds above 0)"
        )
    return lines


def per_seed_csv(results: dict[str, dict[int, np.ndarray]], fraction: float, path: Path) -> None:
    """One line per learner and seed: early and late error (the table's windows)."""
    lines = ["learner,seed,early_error,late_error"]
    for name, runs in results.items():
        for seed, errors in sorted(runs.items()):
            k = max(1, round(fraction * len(errors)))
            lines.append(f"{name},{seed},{errors[:k].mean():.6f},{errors[-k:].mean():.6f}")
    path.write_text("\n".join(lines) + "\n")


def plot(results: dict[str, dict[int, np.ndarray]], bin_size: int, path: Path) -> None:
    """Binned error against examples (mean +- standard error), and its ratio to linear's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = 2 if "linear" in results else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), dpi=72, squeeze=False)
    for name, runs in results.items():
        curves = np.stack(list(runs.values()))
        x = (np.arange(curves.shape[1]) + 1) * bin_size
        series = [curves]
        if panels == 2:
            paired = [seed for seed in runs if seed in results["linear"]]
            series.append(np.stack([runs[seed] / results["linear"][seed] for seed in paired]))
        for ax, values in zip(axes[0], series, strict=True):
            mean = values.mean(axis=0)
            sem = values.std(axis=0) / np.sqrt(len(values))
            ax.plot(x, mean, label=f"{name} ({len(values)})", color=COLORS[name])
            ax.fill_between(x, mean - sem, mean + sem, color=COLORS[name], alpha=0.2)
    axes[0, 0].set_ylabel(f"squared error (mean per {bin_size:,})")
    axes[0, 0].set_title("Slowly-changing regression (legend: seeds)", fontsize=10)
    axes[0, 0].legend(frameon=False, fontsize=8)
    if panels == 2:
        axes[0, 1].set_ylabel("error / linear learner's error")
        axes[0, 1].set_title("relative to the linear learner, same streams", fontsize=10)
    for ax in axes[0]:
        # Thousands written out (no "1e6" offset over the axis).
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e3:,.0f}k"))
        ax.set_xlabel("examples (lines: mean over seeds; bands: ± 1 standard error)")
    fig.tight_layout()
    fig.savefig(path, pil_kwargs={"optimize": True})
    plt.close(fig)


def measure_speed(names: list[str], num_examples: int, repeats: int) -> None:
    """Examples per second of each learner, side by side in this process, median of repeats."""
    import torch

    torch.set_num_threads(1)

    def examples_per_second(name: str, _repeat: int) -> float:
        start = time.perf_counter()
        binned_errors(LEARNERS[name], 0, num_examples=num_examples, bin_size=num_examples)
        return num_examples / (time.perf_counter() - start)

    speeds = interleaved(names, repeats, examples_per_second)
    print(f"\n| learner | examples/s (median of {repeats}) | relative to {names[0]} |")
    print("|---|---|---|")
    for name, (median, ratio) in medians(speeds).items():
        print(f"| {name} | {median:,.0f} | {ratio:.2f} |")


def measure_population_speed(
    names: list[str], population: int, num_examples: int, repeats: int
) -> None:
    """Per learner, examples per second (summed over members, CPU time of this process) of one
    ``population``-member population against ``population`` single learners run one after
    another in this process, interleaved, median of ``repeats`` (after one round of warm-up).

    :param names: the learners
    :param population: P, seeds 0 .. P-1
    :param num_examples: examples per member
    :param repeats: rounds of the interleaved measurement
    """
    import torch

    torch.set_num_threads(1)
    seeds = list(range(population))

    def examples_per_second(variant: tuple[str, str], _repeat: int) -> float:
        name, how = variant
        start = time.process_time()
        if how == "population":
            population_binned_errors(LEARNERS[name], seeds, num_examples, bin_size=num_examples)
        else:
            for seed in seeds:
                binned_errors(
                    LEARNERS[name], seed, num_examples=num_examples, bin_size=num_examples
                )
        return population * num_examples / (time.process_time() - start)

    floor = seconds_per_call()
    print(
        f"\n| learner | {population} single learners (examples/s) "
        f"| population of {population} (examples/s) | population / singles "
        "| torch calls per population step | CPU us per call in the population |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        variants = [(name, "singles"), (name, "population")]
        # One round more, its measurements dropped: the first calls pay for warming up.
        rates = interleaved(variants, repeats + 1, examples_per_second)
        speeds = medians({variant: values[1:] for variant, values in rates.items()})
        (single, _), (together, ratio) = speeds.values()
        calls = torch_calls_per_step(name, seeds)
        per_call = population / together / calls
        print(
            f"| {name} | {single:,.0f} | {together:,.0f} | {ratio:.2f} | {calls:.1f} "
            f"| {per_call * 1e6:.2f} |"
        )
    print(
        f"\nThe machine's limit here is the cost of a call, not the arithmetic (a few hundred "
        f"floating point operations per member and example): an in-place add on a one-element "
        f"tensor, the cheapest torch call, takes {floor * 1e6:.2f} us of CPU here. CPU us per call "
        "in the population: the population's time per step / its top-level torch calls per step "
        "(counted by torch.profiler; views and allocations among them cost less than an add)."
    )


def seconds_per_call(calls: int = 200_000) -> float:
    """CPU seconds of the cheapest torch call: ``x.add_(1)`` on a one-element tensor."""
    import torch

    x = torch.zeros(1)
    with torch.no_grad():
        start = time.process_time()
        for _ in range(calls):
            x.add_(1)
        return (time.process_time() - start) / calls


def torch_calls_per_step(name: str, seeds: list[int], examples: int = 200) -> float:
    """Top-level torch operator calls per population step (per example), counted by
    ``torch.profiler`` over ``examples`` examples."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        population_binned_errors(LEARNERS[name], seeds, examples, bin_size=examples)
    top = [e for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")]
    return len(top) / examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k examples, 1 seed")
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bin-size", type=int, default=40_000)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--workers", type=int, default=1, help="processes (one core each)")
    parser.add_argument("--out", default="bench/results", help="folder for regression*.png")
    parser.add_argument("--cache", default=None, help="folder keeping finished runs (npz)")
    parser.add_argument(
        "--speed",
        action="store_true",
        help="only measure each learner's examples/s (20k x 3); with --population: a population "
        "of --seeds members against as many single learners (--examples per member, default 2k)",
    )
    parser.add_argument(
        "--population",
        action="store_true",
        help="run each learner's seeds as one population in one process",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of --speed")
    parser.add_argument(
        "--only-cached", action="store_true", help="summarize the runs in --cache; run nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.examples, args.seeds, args.bin_size = 100_000, 1, 10_000
    names = args.learners.split(",")
    unknown = [name for name in names if name not in LEARNERS]
    if unknown:
        parser.error(f"--learners: got {unknown[0]!r}; one of: {', '.join(LEARNERS)}")
    if args.speed and args.population:
        examples = 2_000 if args.examples == parser.get_default("examples") else args.examples
        measure_population_speed(names, args.seeds, examples, args.repeats)
        return
    if args.speed:
        measure_speed(names, num_examples=20_000, repeats=args.repeats)
        return
    jobs = [(name, seed) for seed in range(args.seeds) for name in names]
    if args.only_cached:
        jobs = [
            (name, seed)
            for name, seed in jobs
            if cache_path(args.cache or "", name, seed, args.examples, args.bin_size).exists()
        ]
        names = list(dict.fromkeys(name for name, _ in jobs))
    results: dict[str, dict[int, np.ndarray]] = {name: {} for name in names}
    start = time.perf_counter()
    if args.population:
        with ProcessPoolExecutor(args.workers) as pool:
            by_learner = {
                name: pool.submit(
                    run_population,
                    name,
                    [seed for job_name, seed in jobs if job_name == name],
                    args.examples,
                    args.bin_size,
                    args.cache,
                )
                for name in names
            }
            for name, future in by_learner.items():
                for seed, (errors, speed) in sorted(future.result().items()):
                    results[name][seed] = errors
                    print(
                        f"{name} seed {seed}: first bin {errors[0]:.3f}, last bin "
                        f"{errors[-1]:.3f}, population {speed:,.0f} examples/s",
                        flush=True,
                    )
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            futures = {
                pool.submit(run_one, *job, args.examples, args.bin_size, args.cache): job
                for job in jobs
            }
            for future, (name, seed) in futures.items():
                errors, speed = future.result()
                results[name][seed] = errors
                print(
                    f"{name} seed {seed}: first bin {errors[0]:.3f}, last bin {errors[-1]:.3f}, "
                    f"{speed:,.0f} examples/s",
                    flush=True,
                )
    print(f"total {time.perf_counter() - start:.0f} s with {args.workers} worker(s)")

    out = Path(args.out)
    os.makedirs(out, exist_ok=True)
    png = out / ("regression_quick.png" if args.quick else "regression.png")
    plot(results, args.bin_size, png)
    print(f"wrote {png}")
    print("\n" + "\n".join(summarize(results, fraction=0.1)))
    print("\n" + "\n".join(paired_against(results, "linear", fraction=0.1)))
    csv = png.with_suffix(".per_seed.csv")
    per_seed_csv(results, 0.1, csv)
    print(f"wrote {csv}")


if __name__ == "__main__":
    main()
