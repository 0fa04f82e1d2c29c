"""Loss-term hook: penalize the hidden layers' squared features on the step's minibatch."""

from __future__ import annotations

import torch

from rl_plasticity.plasticity.protocol import Method, register_method


@register_method("test_feature_penalty")
class FeaturePenalty(Method):
    """``coeff * mean_l mean(h_l^2)``; keeps how many steps it saw features on."""

    loss_features = True

    def __init__(self, *, coeff: float = 1.0) -> None:
        self.coeff = coeff
        self.with_features = 0
        super().__init__()

    def loss_term(self, features: list[torch.Tensor] | None) -> torch.Tensor | None:
        if not features:
            return None
        self.with_features += 1
        return self.coeff * torch.stack([(h**2).mean() for h in features]).mean()

    def counters(self) -> dict[str, float]:
        return {"with_features": self.with_features}
