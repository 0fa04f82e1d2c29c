"""Reset: draw a whole network afresh and forget its optimizer state when the environment changes.

The from-scratch reference of every plasticity study: an agent reset when its task changes shows
what a freshly initialized network learns in the new task; a method that keeps plasticity should
do at least as well. Replay buffers, learning-rate schedules and entropy coefficients are kept;
target networks are set equal to their re-drawn networks, as in a freshly built agent.

Hooks: ``on_context_change`` (the re-draw; ``syncs_targets``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from rl_plasticity.catalog import init_names
from rl_plasticity.plasticity.init import check_init, reinit_linear_
from rl_plasticity.plasticity.protocol import Method, register_method

#: What ``Reset(init=...)`` accepts: the framework's own initialization (``"sb3"``: as SB3 builds
#: the policy; in plain PyTorch each module's ``reset_parameters``), or one of ``init.INITS``.
RESET_INITS = init_names("reset")


def reinit_network_(
    module: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    init: str = "lecun_uniform",
    generator: torch.Generator | None = None,
) -> None:
    """Re-draw every Linear of ``module`` from ``init``, reset LayerNorms, drop optimizer state.

    The optimizer state of every parameter of ``module`` is removed, so the optimizer treats them
    as new (Adam: step 0, zero moments), as a freshly built optimizer would.

    :param init: ``"lecun_uniform"`` or ``"kaiming_uniform"`` (see ``init.weight_bound``)
    :param generator: random source; ``None`` uses torch's global one
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            reinit_linear_(sub, init, generator)
        elif isinstance(sub, nn.LayerNorm):
            sub.reset_parameters()
    if optimizer is not None:
        for param in module.parameters():
            optimizer.state.pop(param, None)


@register_method("reset")
class Reset(Method):
    """Re-draw the network and forget its optimizer state at each environment change.

    :param init: ``"sb3"`` (as the framework builds the network: SB3's orthogonal gains for
        PPO/A2C when ``ortho_init``, torch's default otherwise), ``"lecun_uniform"`` (the paper's)
        or ``"kaiming_uniform"``; use the agent's own initialization
    """

    random = True
    acts_on_change = True
    syncs_targets = True
    model_counters = ("resets",)

    def __init__(
        self,
        *,
        init: str = "sb3",
    ) -> None:
        self.init = check_init(init, allowed=RESET_INITS)
        self.resets = 0
        super().__init__()

    def on_context_change(self, phase: int) -> None:
        self.reinit(self.module, "default" if self.init == "sb3" else self.init, self.generator)
        if self.optimizer is not None:
            for param in self.module.parameters():
                self.optimizer.state.pop(param, None)
        self.resets += 1

    def counters(self) -> dict[str, float]:
        return {"resets": self.resets}

    def state_dict(self) -> dict:
        """The generator's state and the number of resets."""
        return {**super().state_dict(), "resets": self.resets}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from :meth:`state_dict`'s output."""
        super().load_state_dict(state)
        self.resets = int(state["resets"])
