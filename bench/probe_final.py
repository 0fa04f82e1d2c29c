"""Plasticity probe of every trained network of a sweep, against a fresh network on the same inputs.

Return says whether an agent still learns its task; the probe (Lyle et al. 2022; see
``rl_plasticity.metrics.probe``) asks the network itself: a copy of it is trained for 100 Adam
steps to regress fresh random targets on recent inputs, and the error it reaches is the probe
loss (lower: more plastic). For each finished PPO run below ``--root``, this loads the final
model, collects ``--samples`` observations with it in the physics of the run's last step, and
probes its policy network (hidden layers + action head) and value network (hidden layers + value
head). A fresh network of the same spec (same initialization, seed 1000 + the run's seed) is
probed on the same observations. The ratio trained / fresh above 1 means the trained network fits
new targets worse than a fresh one: lost plasticity, measured directly.

The targets are offsets from the network's own output (the probe fits ``f(x) - f_0(x)`` to unit
normal noise, ``f_0`` a frozen copy), so every network starts at an error of 1. Fitting the noise
itself would mostly measure output scale: a trained value network outputs returns in the
thousands, and its raw probe loss (in the thousands) says how far its output is from 0, not how
plastic it is. ``--raw`` probes the raw outputs instead.

    .venv/bin/python -m bench.probe_final --root runs/study-800k --out bench/results/probe_final.md
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rl_plasticity.experiment import build_model, make_vec_env
from rl_plasticity.metrics.probe import probe_loss
from rl_plasticity.specs import algorithm_class, load_agent_spec, load_env_spec


class Centered(nn.Module):
    """``network(x) - network_0(x)``, ``network_0`` a frozen copy: output 0 at the start.

    The copy is kept out of the module's parameters (a tuple attribute), so an optimizer over
    ``parameters()`` trains only ``network``.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self._frozen = (copy.deepcopy(network).requires_grad_(False),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            start = self._frozen[0](x)
        return self.network(x) - start


def _heads(model, raw: bool) -> dict[str, nn.Module]:
    policy = model.policy
    extractor = policy.mlp_extractor
    heads = {
        "policy": nn.Sequential(extractor.policy_net, policy.action_net),
        "value": nn.Sequential(extractor.value_net, policy.value_net),
    }
    return heads if raw else {k: Centered(v) for k, v in heads.items()}


def probe_run(run: Path, samples: int, raw: bool = False) -> dict[str, tuple[float, float]]:
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
    fresh_heads = _heads(fresh, raw)
    for name, network in _heads(trained, raw).items():
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
    parser.add_argument("--raw", action="store_true", help="probe raw outputs, not offsets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    by_agent: dict[str, list[dict[str, tuple[float, float]]]] = {}
    for run in sorted(p.parent for p in args.root.glob("*/final_model.zip")):
        config = json.loads((run / "config.json").read_text())
        if config["agent"]["algorithm"] not in ("PPO", "FastPPO"):
            continue
        probed = probe_run(run, args.samples, args.raw)
        by_agent.setdefault(config["agent_name"], []).append(probed)
        cells = "  ".join(f"{k} {t:.3f}/{f:.3f}" for k, (t, f) in probed.items())
        print(f"{run.name}: trained/fresh {cells}", flush=True)
    lines = [
        f"Runs of `{args.root}`; {args.samples} observations per run; median over seeds of the"
        " probe loss (MSE after 100 Adam steps on random targets; lower is more plastic;"
        f" {'raw outputs' if args.raw else 'offsets from the network output, starting at 1'})",
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
    text = "\n".join(lines)
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(__doc__ + "\n" + text + "\n")


if __name__ == "__main__":
    main()
