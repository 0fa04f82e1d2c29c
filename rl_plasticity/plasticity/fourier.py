"""Deep Fourier features (Lewandowski, Schuurmans and Machado, *Plastic learning with deep Fourier
features*, ICLR 2025, arXiv 2410.20634).

Lewandowski et al. show that linear function approximation does not lose plasticity and propose
an activation that stays close to linear for part of its units wherever the pre-activation lies:
every layer concatenates a sine and a cosine of the same pre-activations,

    phi(z) = [ sin(z), cos(z) ]             (2n features from n pre-activations z = W x + b)

(where sin is near-linear, cos is near its extremum, and the reverse). The features double, as
with CReLU: ``width="double_fan_in"`` (default) keeps each layer's units and doubles the fan-in of
the Linears that read them, as phi is defined; ``width="halve_units"`` keeps the number of
features (n/2 units), for a comparison at equal width; ``width="match_parameters"`` keeps the
parameter count (fewer units, doubled fan-in; see ``architecture.WIDTHS``). Untraced: whether the
paper's networks change their width (its abstract and Plasticine's ``DFFLayer4Linear``, which
concatenates ``sin(z)`` and ``cos(-z) = cos(z)``, do not say). The paper pairs the features
with regularization (L2 or L2-init) in its best results; combine with ``l2``/``l2init`` specs for
that. The paper's experiments are supervised continual learning; it has no RL setting, so
``agents/ppo-fourier.toml`` keeps the PPO spec's.

As for CReLU, the features are not one per unit, so unit-level methods (CBP, ReDo, ReGraMa) do
not act on such a network (and say so); ``PlasticityMetrics`` measures its 2n features.

Hook: ``build_network`` (SB3: carried by ``rl_plasticity.sb3.policies``).
"""

from __future__ import annotations

import torch
from torch import nn

from rl_plasticity.plasticity.architecture import ConcatActivationMethod
from rl_plasticity.plasticity.protocol import register_method


class FourierActivation(nn.Module):
    """``[sin(z), cos(z)]`` along the last dimension (twice the features)."""

    #: two features per unit: unit-level methods cannot act on it (``layers.required_layers``)
    concatenates = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat((torch.sin(z), torch.cos(z)), dim=-1)


@register_method("fourier")
class DeepFourierFeatures(ConcatActivationMethod):
    """Replace each hidden activation by ``[sin, cos]``.

    Parameters (setting: ``width``): those of :class:`.architecture.ConcatActivationMethod`.
    """

    activation = FourierActivation
