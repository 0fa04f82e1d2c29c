"""ReDo: recycling dormant neurons (Sokar et al. 2023, arXiv 2302.12902).

Every ``every_updates`` optimizer steps, on that step's minibatch features h of each hidden layer,
unit i's score is s_i = E|h_i| / mean_k E|h_k|; units with s_i <= tau are tau-dormant and are
replaced as in continual backprop (incoming weights re-drawn, incoming bias 0, outgoing weights 0,
optimizer state of those rows/columns 0). A layer whose units are all silent scores 0 everywhere.

This module knows nothing of SB3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from rl_plasticity.catalog import init_names
from rl_plasticity.plasticity.core import reinit_units_
from rl_plasticity.plasticity.init import check_init, weight_bound
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_int, check_number


def dormant_units(h: torch.Tensor, tau: float) -> torch.Tensor:
    """Indices of the tau-dormant units of features ``h`` (samples x units).

    :param h: activations
    :param tau: threshold on s_i = E|h_i| / mean_k E|h_k|
    :return: a long tensor of unit indices
    """
    mean_abs = h.abs().mean(0)
    score = mean_abs / mean_abs.mean().clamp_min(torch.finfo(h.dtype).tiny)
    return torch.nonzero(score <= tau).flatten()


@register_method("redo")
class ReDo(Method):
    """ReDo on the hidden layers of a network, every ``every_updates`` optimizer steps.

    :param tau: dormancy threshold (0.025 in Sokar et al.; 0.1 in some RL work)
    :param every_updates: F, optimizer steps between resets
    :param init: incoming weights' distribution: ``"lecun_uniform"``, ``"kaiming_uniform"`` or
        ``"match"``
    :raises ValueError: when ``module`` has no hidden layer (the method would never act)
    """

    needs_layers = True
    records_features = True
    random = True

    def __init__(
        self,
        *,
        tau: float = 0.025,
        every_updates: int = 1000,
        init: str = "lecun_uniform",
    ) -> None:
        self.tau = check_number("tau", tau, 0.0, float("inf"))
        self.every_updates = check_int("every_updates", every_updates, 1)
        self.init = check_init(init, allowed=init_names("unit"))
        self.bounds: list[float] = []
        self.replaced: list[int] = []
        super().__init__()

    def setup(self) -> None:
        self.bounds = [weight_bound(layer.incoming, self.init) for layer in self.layers]
        self.replaced = [0] * len(self.layers)

    def after_step(self) -> None:
        if self.steps % self.every_updates == 0:
            self.reset_dormant(self.take_features())

    def reset_dormant(self, features: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Replace the tau-dormant units of each layer, given its features.

        :param features: per layer, activations (samples x units), or None to skip it
        :return: per layer, the indices replaced
        """
        replaced = []
        for i, (layer, h) in enumerate(zip(self.layers, features, strict=True)):
            units = torch.empty(0, dtype=torch.long)
            if h is not None:
                units = dormant_units(h, self.tau)
                if len(units):
                    reinit_units_(layer, units, self.optimizer, self.bounds[i], self.generator)
                    self.replaced[i] += len(units)
            replaced.append(units)
        return replaced

    @property
    def replaced_total(self) -> dict[str, int]:
        """Units replaced so far, by layer name."""
        return {layer.name: n for layer, n in zip(self.layers, self.replaced, strict=True)}

    def check_reachable(self, updates: int) -> str | None:
        if self.steps % self.every_updates + updates >= self.every_updates:
            return None
        return (
            f"every_updates={self.every_updates} optimizer steps is beyond this run's at most "
            f"{updates}: no unit will be reset. Train longer or lower every_updates"
        )

    def idle_reason(self) -> str | None:
        if self.steps >= self.every_updates:
            return None
        return (
            f"every_updates={self.every_updates} optimizer steps is more than the {self.steps} it "
            "took: no unit was checked or reset. Train longer or lower every_updates"
        )

    def state_dict(self) -> dict:
        """Step count, bounds, counters and the generator's state."""
        return {
            **super().state_dict(),
            "bounds": list(self.bounds),
            "replaced": list(self.replaced),
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from :meth:`state_dict`'s output."""
        super().load_state_dict(state)
        self.bounds = [float(b) for b in state["bounds"]]
        self.replaced = [int(n) for n in state["replaced"]]
