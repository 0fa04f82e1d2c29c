"""TRAC's scale S_t on permuted digits: why some seeds stay at chance (BENCHMARKS.md, digits).

Trains the digits table's TRAC learner (``bench.method_table_rows.DIGITS``'s base learner with the
``trac`` method) on the first tasks of each seed and prints the distribution of TRAC's scale
``S_t = sum_beta s_beta`` over the steps: the weights are ``theta_ref + max(S_t, 0) * Delta_t``,
so at S_t <= 0 they stay at their initial values.

    .venv/bin/python -m bench.trac_scale --seeds 0 2 --tasks 2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.method_table_rows import DIGITS
from rl_plasticity.plasticity.trac import TRAC_KEY
from rl_plasticity.problems.continual import ContinualLearner, build_learner


def scales(seed: int, tasks: int) -> np.ndarray:
    """TRAC's S_t after every step of the first ``tasks`` digits tasks of ``seed``."""
    learner = ContinualLearner(**DIGITS.base, method="trac")
    net, optimizer, method = build_learner(learner, DIGITS.num_inputs, DIGITS.num_outputs, seed)
    out = []
    try:
        for inputs, labels in DIGITS.tasks(seed, tasks):
            x, y = torch.from_numpy(inputs), torch.from_numpy(labels)
            for start in range(0, len(x), learner.batch_size):
                batch = slice(start, start + learner.batch_size)
                loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                out.append(float(optimizer.state[TRAC_KEY]["s"].sum()))
    finally:
        if method is not None:
            method.detach()
    return np.asarray(out)


def main(argv: list[str] | None = None) -> None:
    """Print each seed's S_t quantiles and the share of steps with S_t <= 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.trac_scale", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--tasks", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for seed in args.seeds:
        s = scales(seed, args.tasks)
        q = np.quantile(s, [0, 0.5, 1])
        print(
            f"seed {seed}: {len(s)} steps, S_t <= 0 at {(s <= 0).sum()}, "
            f"min {q[0]:.3g}, median {q[1]:.3g}, max {q[2]:.3g}"
        )


if __name__ == "__main__":
    main()
