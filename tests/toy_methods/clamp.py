"""Step hook: clamp every weight to [-bound, bound] after each optimizer step."""

from __future__ import annotations

import torch
from torch import nn

from rl_plasticity.plasticity.protocol import Method, register_method


@register_method("test_clamp")
class Clamp(Method):
    """Weight clipping to ``bound`` after every ``every`` optimizer steps (counts its calls)."""

    def __init__(self, *, bound: float = 0.05, every: int = 1) -> None:
        self.bound = bound
        self.every = every
        self.calls = 0
        super().__init__()

    def after_step(self) -> None:
        if self.steps % self.every == 0:
            self.calls += 1
            with torch.no_grad():
                for sub in self.module.modules():
                    if isinstance(sub, nn.Linear):
                        sub.weight.clamp_(-self.bound, self.bound)

    def counters(self) -> dict[str, float]:
        return {"clamps": self.calls}
