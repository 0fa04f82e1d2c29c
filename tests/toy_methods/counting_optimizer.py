"""Optimizer hook: replace the optimizer by a counting SGD over the same parameter groups."""

from __future__ import annotations

import torch

from rl_plasticity.plasticity.protocol import Method, register_method


class CountingSGD(torch.optim.SGD):
    """SGD that counts its steps (kept in its state_dict, so it is saved with the model)."""

    def __init__(self, params, lr: float = 1e-3) -> None:
        super().__init__(params, lr=lr)
        self.count = 0

    def step(self, closure=None):
        self.count += 1
        return super().step(closure)


@register_method("test_counting_optimizer")
class CountingOptimizer(Method):
    """Train with :class:`CountingSGD` at the built optimizer's learning rate."""

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        groups = [{"params": g["params"], "lr": g["lr"]} for g in optimizer.param_groups]
        return CountingSGD(groups)
