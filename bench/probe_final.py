"""Plasticity probe of every trained network of a sweep, against a fresh network on the same inputs.

Return says whether an agent still learns its task; the probe (Lyle et al. 2022; see
``rl_plasticity.metrics.probe``) asks the network itself: a copy of it is trained for 100 Adam
steps to fit a fresh random network's outputs on recent inputs, and the normalized error it
reaches is the probe loss (1: nothing learned, 0: a perfect fit; lower is more plastic). For each
finished PPO run below ``--root``, this loads the final model, collects ``--samples``
observations with it in the physics of the run's last step, and probes its policy network (hidden
layers + action head) and value network (hidden layers + value head). A fresh network of the same
spec (same initialization, seed 1000 + the run's seed) is probed on the same observations. The
ratio trained / fresh above 1 means the trained network fits new targets worse than a fresh one:
lost plasticity, measured directly.

The probe is scale-free (its targets take the network's own output scale and it fits offsets
from the network's output, so every network starts at an error of 1): a trained value network
whose outputs are returns in the thousands is not scored by how far they are from 0.

    .venv/bin/python -m bench.probe_final --root runs/study-800k --out bench/results/probe_final.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import emit
from rl_plasticity.experiment.build import build_model, make_vec_env
from rl_plasticity.metrics.probe import probe_loss
from rl_plasticity.specs import algorithm_class, load_agent_spec, load_env_spec


def _heads(model) -> dict[str, nn.Module]:
    policy = model.policy
    extractor = policy.mlp_extractor
    return {
        "policy": nn.Sequential(extractor.policy_net, policy.action_net),
        "value": nn.Sequential(extractor.value_net, policy.value_net),
    }


def probe_run(run: Path, samples: int) -> dict[str, tuple[float, float]]:
    """Probe losses (trained, fresh) of the run's policy and value networks."""
    config = json.loads((run / "config.json").read_text())
    agent = load_agent_spec(config["agent"]["path"])
    env_spec = load_env_spec(config["env"]["path"])
    steps, seed = int(config["steps"]), int(config["seed"])
    env = make_vec_env(env_spec, agent, start_step=steps - 1)
    trained = algorithm_class(agent.algorithm).load(run / "final_model.zip", device="cpu")
    observations = []
    obs = env.reset()
    for _ in range(samples):
        observations.append(obs[0].copy())
        action, _ = trained.predict(obs, deterministic=False)
        obs, _, _, _ = env.step(action)
    inputs = torch.as_tensor(np.array(observations), dtype=torch.float32)
    fresh = build_model(agent, env, 1000 + seed, "cpu")
    result = {}
    fresh_heads = _heads(fresh)
    for name, network in _heads(trained).items():
        result[name] = (
            probe_loss(network, inputs, seed=seed),
            probe_loss(fresh_heads[name], inputs, seed=seed),
        )
    env.close()
    return result


def main() -> None:
    """Probe every finished run of the sweep; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/study-800k"))
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    by_agent: dict[str, list[dict[str, tuple[float, float]]]] = {}
    for run in sorted(p.parent for p in args.root.glob("*/final_model.zip")):
        config = json.loads((run / "config.json").read_text())
        if config["agent"]["algorithm"] not in ("PPO", "FastPPO"):
            continue
        probed = probe_run(run, args.samples)
        by_agent.setdefault(config["agent_name"], []).append(probed)
        cells = "  ".join(f"{k} {t:.3f}/{f:.3f}" for k, (t, f) in probed.items())
        print(f"{run.name}: trained/fresh {cells}", flush=True)
    lines = [
        f"Runs of `{args.root}`; {args.samples} observations per run; median over seeds of the"
        " probe loss (normalized error after 100 Adam steps fitting a fresh random network at"
        " the network's own output scale; 1 at the start, lower is more plastic)",
        "",
        "| agent | seeds | policy net: trained | fresh | ratio | value net: trained | fresh |"
        " ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for agent, rows in by_agent.items():
        cells = []
        for net in ("policy", "value"):
            trained = statistics.median(r[net][0] for r in rows)
            fresh = statistics.median(r[net][1] for r in rows)
            ratio = statistics.median(r[net][0] / r[net][1] for r in rows)
            cells += [f"{trained:.3f}", f"{fresh:.3f}", f"{ratio:.2f}"]
        lines.append(f"| {agent} | {len(rows)} | " + " | ".join(cells) + " |")
    emit(lines, args.out, __doc__)


if __name__ == "__main__":
    main()
