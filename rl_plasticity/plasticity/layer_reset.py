"""Periodic resets of the last layers (Nikishin, Schwarzer, D'Oro, Bacon and Courville, *The
primacy bias in deep reinforcement learning*, ICML 2022, arXiv 2205.07802).

An agent over-fits its early experience (the primacy bias); Nikishin et al. keep the replay
buffer and periodically re-initialize the last layers of the networks, which then re-learn from
the whole buffer. Every ``every_updates`` optimizer steps of a network (and/or at each environment
change with ``at_change``), the last k = ``n_layers`` layers of each network are drawn afresh:

    theta_l <- theta_l^new ~ p_init(theta_l)   for the last k layers l,   the others unchanged,

and their optimizer state is dropped (Adam: step 0 and zero moments for those parameters), as for
a freshly built optimizer. "Last" counts from each output: the output Linears (PPO's
``action_net`` and ``value_net``, SAC's ``mu`` and ``log_std``, the critics' and Q-net's last
Linear) are layer 1, the hidden layers that feed them layer 2, and so on; a reset hidden layer's
LayerNorm is reset with it. The authors' code (``rl_with_resets``): for SAC on DeepMind Control
(256-256 MLPs) it builds "a completely new agent" every ``reset_interval`` environment steps (its
README's example: 200,000 steps with 3 updates per step), i.e. all layers of actor and critic,
the target critic, the temperature and the optimizers; for SPR on Atari 100k it resets the last
layers (the encoder optionally). Defaults here: ``n_layers=1`` (the output layers, Plasticine's
``reset_type='final'``) and ``every_updates=200_000`` optimizer steps (the README's interval at one
update per environment step; with u updates per step the code's period is 200,000 u updates); set
``n_layers`` to the network's depth (3 for SB3's 2-hidden-layer MLPs) for the code's SAC resets
of the networks (the temperature is not reset here). The paper has no PPO setting
(``agents/ppo-layer_reset.toml`` resets at each environment change instead).

Targets: the code re-creates the agent, targets included. At a reset on an environment change
the SB3 callback sets the target networks equal to the trained ones (``syncs_targets``; like
``reset``); at a periodic reset the targets are not reached by the method (it acts on one
network) and follow the reset layers by the algorithm's Polyak averaging.

Draws: ``init="sb3"`` draws as the framework builds the network (SB3: orthogonal with PPO's
gains when ``ortho_init``; torch's default otherwise), the layers kept are restored exactly;
another name draws every reset Linear from that distribution (``init.reinit_linear_``).
Plasticine's scripts reset the weights without the optimizer state; here both are reset.

Hooks: ``after_step`` (periodic) and ``on_context_change``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rl_plasticity.plasticity.core import check_schedule
from rl_plasticity.plasticity.init import check_init, reinit_linear_
from rl_plasticity.plasticity.layers import HiddenLayer
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.plasticity.reset import RESET_INITS
from rl_plasticity.validate import check_int


def last_layers(layers: Sequence[HiddenLayer], n_layers: int) -> list[nn.Module]:
    """The Linears (and LayerNorms) of the last ``n_layers`` layers before each output.

    :param n_layers: how many layers counted from the outputs (1: the output Linears)
    :return: the modules, outputs first
    """
    incoming = {id(layer.incoming) for layer in layers}
    level: list[nn.Module] = []
    for layer in layers:
        for out in layer.outgoing:
            if id(out) not in incoming and all(out is not m for m in level):
                level.append(out)
    chosen = list(level)
    for _ in range(n_layers - 1):
        ids = {id(m) for m in level}
        feeding = [layer for layer in layers if any(id(o) in ids for o in layer.outgoing)]
        level = [layer.incoming for layer in feeding]
        chosen += level + [layer.layer_norm for layer in feeding if layer.layer_norm is not None]
    return chosen


@register_method("layer_reset")
class LayerReset(Method):
    """Re-draw the last ``n_layers`` layers of the network and drop their optimizer state, every
    ``every_updates`` optimizer steps and/or at each environment change.

    :param n_layers: layers counted from each output (1: the output Linears)
    :param every_updates: optimizer steps between resets; 0: no periodic reset
    :param at_change: also reset at each environment change
    :param init: ``"sb3"`` (as the framework builds the network) or a distribution name
    """

    random = True
    needs_layers = True
    syncs_targets = True
    model_counters = ("layer_resets",)

    def __init__(
        self,
        *,
        n_layers: int = 1,
        every_updates: int = 200_000,
        at_change: bool = False,
        init: str = "sb3",
    ) -> None:
        self.n_layers = check_int("n_layers", n_layers, 1, 100)
        self.every_updates, self.at_change = check_schedule(every_updates, at_change)
        self.init = check_init(init, allowed=RESET_INITS)
        self.resets = 0
        self.reset_modules: list[nn.Module] = []
        super().__init__()

    @property
    def acts_on_change(self) -> bool:  # type: ignore[override]
        return self.at_change and self.every_updates == 0

    def setup(self) -> None:
        self.reset_modules = last_layers(self.layers, self.n_layers)

    def after_step(self) -> None:
        if self.every_updates and self.steps % self.every_updates == 0:
            self.reset_layers()

    def on_context_change(self, phase: int) -> None:
        if self.at_change:
            self.reset_layers()

    def check_reachable(self, updates: int) -> str | None:
        if (
            self.every_updates
            and not self.at_change
            and self.every_updates - self.steps % self.every_updates > updates
        ):
            return (
                f"layer_reset every_updates={self.every_updates} optimizer steps; this run takes "
                f"at most {updates} more per network, so no layer is reset"
            )
        return None

    def reset_layers(self) -> None:
        """Re-draw the last layers now and drop their optimizer state."""
        reset = {id(p) for m in self.reset_modules for p in m.parameters()}
        if self.init == "sb3":
            kept = [(p, p.detach().clone()) for p in self.module.parameters() if id(p) not in reset]
            self.reinit(self.module, "default", self.generator)
            with torch.no_grad():
                for param, value in kept:
                    param.copy_(value)
        else:
            for sub in self.reset_modules:
                if isinstance(sub, nn.Linear):
                    reinit_linear_(sub, self.init, self.generator)
                else:
                    sub.reset_parameters()
        if self.optimizer is not None:
            for module in self.reset_modules:
                for param in module.parameters():
                    self.optimizer.state.pop(param, None)
        self.resets += 1

    def counters(self) -> dict[str, float]:
        return {"layer_resets": self.resets}

    def state_dict(self) -> dict[str, Any]:
        """The step count, the generator's state and the number of resets."""
        return {**super().state_dict(), "resets": self.resets}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        super().load_state_dict(state)
        self.resets = int(state["resets"])
