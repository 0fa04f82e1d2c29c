"""Weight clipping (Elsayed, Lan, Lyle & Mahmood, *Weight clipping for deep continual and
reinforcement learning*, RLC 2024, arXiv 2407.01704).

After every optimizer step, each weight of layer l is clipped to [-kappa s_l, kappa s_l], where
s_l is the bound of the uniform distribution U(-s_l, s_l) layer l's weights were initialized from:

    w <- clip(w, -kappa s_l, kappa s_l)

Settings and where they come from:

* ``kappa``: 3.0, the authors' PPO script (``rl_experiments/ppo_continuous_action_clipped.py`` in
  github mohmdelsayed/weight-clipping: ``weight_clipping = 3.0``); their optimizer class defaults
  to 1.0 (the tightest: no weight may leave its initial range). The paper's text was not
  available here to check which kappa its PPO figures used.
* ``init``, which s_l: the paper's definition is the initial distribution's bound. The authors'
  code always uses 1/sqrt(fan_in), torch's ``nn.Linear`` default (``"kaiming_uniform"``, the
  default here, right for SB3's SAC/TD3/DQN networks), whatever the actual initialization (their
  PPO initializes orthogonally). ``"lecun_uniform"`` (sqrt(3/fan_in)) is the bound of this
  project's PPO specs' initialization; ``"match"``: sqrt(3) times each layer's weight standard
  deviation when the method attaches (uniform of the same variance as the weights then).
* Biases: clipped to their layer's weight bound, as the authors' code does (their bias bound is
  1/sqrt(fan_in) of the same layer). The paper speaks of weights only.
* Every ``nn.Linear`` of the network, the output layers included (the authors' code:
  ``clip_last_layer = 1``). Parameters outside Linears (PPO's ``log_std``) are not clipped.

Hook: :meth:`Method.after_step`. The bounds are fixed at attach and saved in :meth:`state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rl_plasticity.plasticity.init import check_init, weight_bound
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_number

#: Where s_l comes from (see ``init.weight_bound``).
CLIP_INITS = ("kaiming_uniform", "lecun_uniform", "match")


@register_method("weight_clipping")
class WeightClipping(Method):
    """Clip each Linear's weights and biases to kappa times its layer's initial bound after each
    optimizer step.

    :param kappa: the clipping factor (the authors' PPO script: 3.0)
    :param init: which initial distribution's bound s_l is: ``"kaiming_uniform"`` (1/sqrt(fan_in),
        the authors' code), ``"lecun_uniform"`` (sqrt(3/fan_in)) or ``"match"``
    """

    def __init__(
        self,
        *,
        kappa: float = 3.0,
        init: str = "kaiming_uniform",
    ) -> None:
        self.kappa = check_number("kappa", kappa, 0.0, float("inf"), low_open=True)
        self.init = check_init(init, allowed=CLIP_INITS)
        #: (parameter, bound kappa s_l) for each weight and bias clipped
        self.clipped: list[tuple[torch.Tensor, float]] = []
        super().__init__()

    def setup(self) -> None:
        assert self.module is not None
        self.clipped = []
        for sub in self.module.modules():
            if isinstance(sub, nn.Linear):
                bound = self.kappa * weight_bound(sub, self.init)
                self.clipped += [(p, bound) for p in (sub.weight, sub.bias) if p is not None]

    def after_step(self) -> None:
        self.clip()

    def clip(self) -> None:
        """Clip every weight and bias to its bound now."""
        with torch.no_grad():
            for param, bound in self.clipped:
                param.clamp_(-bound, bound)

    def counters(self) -> dict[str, float]:
        """``at_bound``: the fraction of the clipped weights and biases at their bound now.

        :return: key -> value
        """
        total = sum(p.numel() for p, _ in self.clipped)
        at = sum(int((p.abs() >= b).sum()) for p, b in self.clipped)
        return {"at_bound": at / max(total, 1)}

    def state_dict(self) -> dict[str, Any]:
        """The step count and each parameter's bound (fixed at attach).

        :return: a dict
        """
        return {**super().state_dict(), "bounds": [b for _, b in self.clipped]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (bounds as they were at the first attach).

        :param state: the saved state
        :raises ValueError: if the number of clipped parameters differs
        """
        super().load_state_dict(state)
        bounds = list(state["bounds"])
        if len(bounds) != len(self.clipped):
            raise ValueError(f"saved {len(bounds)} bounds for {len(self.clipped)} parameters")
        self.clipped = [(p, float(b)) for (p, _), b in zip(self.clipped, bounds, strict=True)]
