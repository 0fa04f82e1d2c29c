"""Learning-rate pilot: can a larger step size compress the paper's time scale on this machine?

Weight growth scales with learning rate times steps, so 10x the paper's learning rate might show
in 1M steps what the paper saw in 10M+. This trains the ``ppo`` spec (the paper's settings,
lr 1e-4) and variants that differ only in learning rate (``bench/agents/ppo-lr*.toml``) on the
first phase of ``study-slippery-cheetah``, then reads each run's ``progress.csv``: PPO's mean KL
divergence between the old and new policy per update (``train/approx_kl``; PPO's clipped
objective keeps it near 0.01 to 0.1 when learning is stable), the fraction of samples clipped,
and the return. A learning rate whose updates jump by KL >> 1 is not learning, so it cannot show
loss of plasticity either.

    .venv/bin/python -m bench.lr_pilot --steps 102400 --seeds 0-1 --jobs 1
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from rl_plasticity.sweep import parse_seeds, sweep

ENV = "study-slippery-cheetah"
BENCH = Path(__file__).resolve().parent
AGENTS = (
    "ppo",
    str(BENCH / "agents/ppo-lr2e-4.toml"),
    str(BENCH / "agents/ppo-lr3e-4.toml"),
    str(BENCH / "agents/ppo-lr1e-3.toml"),
)


def summarize(progress: Path) -> dict[str, float]:
    """KL, clip fraction and return statistics of one run's ``progress.csv``."""
    rows = [r for r in csv.DictReader(progress.open()) if r.get("train/approx_kl")]
    kl = [float(r["train/approx_kl"]) for r in rows]
    clipped = [float(r["train/clip_fraction"]) for r in rows]
    returns = [float(r["rollout/ep_rew_mean"]) for r in rows if r.get("rollout/ep_rew_mean")]
    return {
        "updates": len(rows),
        "median_kl": statistics.median(kl),
        "max_kl": max(kl),
        "kl_over_1": sum(k > 1 for k in kl) / len(kl),
        "median_clip": statistics.median(clipped),
        "first_return": statistics.mean(returns[:5]),
        "last_return": statistics.mean(returns[-5:]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the pilot sweep and print (and write) its table; return 1 if a run failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.lr_pilot", description=__doc__)
    parser.add_argument("--steps", type=int, default=102_400)
    parser.add_argument("--seeds", default="0-1")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path("runs"))
    parser.add_argument("--group", default="lr-pilot")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "lr_pilot.md")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    result = sweep(
        [ENV], list(AGENTS), seeds, args.steps, root=args.root, group=args.group, jobs=args.jobs
    )
    print(result.summary())
    lines = [
        f"`{ENV}`, {args.steps:,} steps (the first phase), seeds {args.seeds}; per run, over its"
        " PPO updates:",
        "",
        "| agent | seed | learning rate | updates | median KL | max KL | updates with KL > 1 |"
        " median clip fraction | return, first 5 updates | return, last 5 updates |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for agent in AGENTS:
        name = Path(agent).stem
        for seed in seeds:
            run = args.root / args.group / f"{ENV}__{name}__s{seed}"
            config = (run / "config.json").read_text()
            lr = _learning_rate(config)
            s = summarize(run / "progress.csv")
            lines.append(
                f"| {name} | {seed} | {lr:g} | {s['updates']} | {s['median_kl']:.3f} |"
                f" {s['max_kl']:.3g} | {s['kl_over_1']:.0%} | {s['median_clip']:.2f} |"
                f" {s['first_return']:.0f} | {s['last_return']:.0f} |"
            )
    text = "\n".join(lines)
    print(text)
    args.out.write_text(__doc__ + "\n" + text + "\n")
    return 1 if result.failed else 0


def _learning_rate(config_json: str) -> float:
    return float(json.loads(config_json)["agent"]["hyperparameters"]["learning_rate"])


if __name__ == "__main__":
    sys.exit(main())
