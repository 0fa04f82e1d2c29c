"""``make bench``: every benchmark in turn (hours). Each writes its own results file.

.venv/bin/python -m bench.run_all
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = (
    ["bench.bench_wrapper", "--out", "bench/results/wrapper.md"],
    ["bench.bench_threads"],
    ["bench.bench_methods", "--steps", "20480", "--repeats", "3"],
    ["bench.bench_metrics", "--repeats", "5"],
    [
        "bench.bench_agents",
        "--steps",
        "20480",
        "--repeats",
        "3",
        "--out",
        "bench/results/agents.md",
    ],
    [
        *("bench.bench_engine", "--env", "HalfCheetah-v5", "Ant-v5", "--steps", "8192"),
        *("--repeats", "3", "--n-envs", "8", "--specs", "--out", "bench/results/engine.md"),
    ],
    [
        *("bench.engine_equivalence", "--seeds", "8", "--steps", "32768"),
        *("--out", "bench/results/engine_equivalence.md"),
    ],
    ["bench.paper_scale", "--steps", "40960", "--jobs", "2"],
    ["bench.bench_regression"],
    ["bench.lr_pilot"],
    ["bench.study", "--steps", "800000", "--seeds", "0-2", "--group", "study-800k"],
    ["bench.probe_final", "--root", "runs/study-800k", "--out", "bench/results/probe_final.md"],
)


def main() -> int:
    """Run each benchmark as its own process; return the number that failed."""
    failed = 0
    for args in BENCHES:
        print(f"== python -m {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, "-m", *args]).returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
