"""Concatenated ReLU (Abbas, Zhao, Modayil, White and Machado, *Loss of plasticity in continual
deep reinforcement learning*, CoLLAs 2023, arXiv 2303.07507).

Abbas et al. find that the activation footprint of value-based agents that cycle through Atari
games becomes sparse and their gradients vanish; their mitigation replaces each ReLU by the
concatenated ReLU of Shang et al. (2016), which always passes a gradient through one of its two
halves:

    CReLU(z) = [ relu(z), relu(-z) ]        (2n features from n pre-activations z = W x + b)

So the features double. ``width="double_fan_in"`` (default) keeps each layer's n units and
doubles the fan-in of the Linears that read them, as CReLU is defined and as Plasticine's
``CReLU4Linear`` is used (its ``ca`` scripts follow CReLU layers by Linears of doubled fan-in);
``width="halve_units"`` keeps the number of features (n/2 units, n features, about half the
hidden-to-hidden weights) for a comparison at equal feature width; ``width="match_parameters"``
removes the fraction of units that brings the parameter count back to the original network's (at
least), as Kumar et al. 2023 fit their Concat ReLU baseline (App. A.1.3: 9% of the units of a
784-100-100-10 MLP), for a comparison at equal parameter count. The paper's RL setting is
DQN/Rainbow on Atari; it has none for PPO, so ``agents/ppo-crelu.toml`` keeps the PPO spec's.

CReLU is not an elementwise activation (a unit's outgoing weights are two columns), so
unit-level methods (CBP, ReDo, ReGraMa) do not act on a CReLU network and say so when attached.
``PlasticityMetrics`` measures its layers' 2n features (dead, effective rank, ...) and incoming
weights (``find_hidden_layers(..., concatenating=True)``).

Hook: ``build_network`` (SB3: carried by ``rl_plasticity.sb3.policies``; Linears it resizes are
drawn as ``nn.Linear`` draws, not with SB3's orthogonal gains; an agent spec's ``init`` is
applied to them like to every Linear).
"""

from __future__ import annotations

import torch
from torch import nn

from rl_plasticity.plasticity.architecture import ConcatActivationMethod
from rl_plasticity.plasticity.protocol import register_method


class CReLUActivation(nn.Module):
    """``[relu(z), relu(-z)]`` along the last dimension (twice the features)."""

    #: two features per unit: unit-level methods cannot act on it (``layers.required_layers``)
    concatenates = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat((torch.relu(z), torch.relu(-z)), dim=-1)


@register_method("crelu")
class CReLU(ConcatActivationMethod):
    """Replace each hidden activation by CReLU.

    Parameters (setting: ``width``): those of :class:`.architecture.ConcatActivationMethod`.
    """

    activation = CReLUActivation
