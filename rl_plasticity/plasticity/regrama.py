"""ReGraMa: resetting neurons guided by gradient magnitude (Liu, Wu, Obando-Ceron, Castro,
Courville & Pan, *Measure gradients, not activations! Enhancing neuronal activity in deep
reinforcement learning*, 2025, arXiv 2505.24061).

GraMa scores a unit by the gradient that reaches it instead of its activation (ReDo's score).
Every F optimizer steps, for each hidden layer with incoming weights W (units x inputs) and the
gradient G = dL/dW of that step's minibatch loss:

    g_i = mean_j |G[i, j]|,        s_i = g_i / mean_k g_k,        unit i is reset when s_i <= tau

(the authors' code, ``utils/ReDo.py`` ``GradientReDo`` of grad-based-plasticity-metrics, read in
its public copy github rippl-svg/grad-based-plasticity-metrics: the mean absolute gradient of each
unit's incoming weight row, normalised by the layer's mean as in ReDo's tau-dormant score; the
paper's text was not available here to check its equation against the code). A reset unit gets
ReDo's surgery (``core.reinit_units_``): incoming weights re-drawn from the initial distribution,
incoming bias 0, outgoing weights 0 (so the network's output is unchanged), and the optimizer
state of those rows and columns 0.

Defaults and where they come from:

* ``tau = 0.0``: the authors' SAC config (``SAC/configs.py``, ``--grad-redo-tau 0``): only units
  whose gradient is exactly zero are reset;
* ``every_updates = 1000``: F, the same config's ``--grad-redo-frequency`` (gradient steps);
* ``init = "kaiming_uniform"``: torch's Linear default, which the code re-draws from unless
  ``--grad-use-lecun-init``.

Where the code differs from ReDo's surgery used here: it re-draws the incoming weights and the
bias (torch's default bias distribution) but leaves the outgoing weights as they are, so a reset
changes the network's output; and it scores the output layer's units too. The authors apply it to
SAC's critics only; here it acts on every network the callback is given (the actor too), like ReDo.

Hook: :meth:`Method.after_step` (it reads each incoming weight's ``.grad`` after the step, which
SB3 leaves in place until the next ``zero_grad``; gradient clipping scales every unit alike, so the
normalised score is unchanged by it). A layer whose incoming weight has no gradient is skipped.
"""

from __future__ import annotations

import torch

from rl_plasticity.plasticity.core import reinit_units_
from rl_plasticity.plasticity.protocol import register_method
from rl_plasticity.plasticity.redo import ReDo


def low_gradient_units(grad: torch.Tensor, tau: float) -> torch.Tensor:
    """Indices of the units whose normalised incoming-gradient magnitude is at most ``tau``.

    :param grad: gradient of a Linear's weight (units x inputs)
    :param tau: threshold on s_i = g_i / mean_k g_k, g_i = mean_j |grad[i, j]|
    :return: a long tensor of unit indices
    """
    magnitude = grad.abs().mean(1)
    score = magnitude / magnitude.mean().clamp_min(torch.finfo(grad.dtype).tiny)
    return torch.nonzero(score <= tau).flatten()


@register_method("regrama")
class ReGraMa(ReDo):
    """ReGraMa on the hidden layers of a network, every ``every_updates`` optimizer steps.

    :param tau: threshold on the normalised gradient magnitude (the authors' code: 0)
    :param every_updates: F, optimizer steps between resets (the authors' code: 1000)
    :param init: incoming weights' distribution for reset units: ``"kaiming_uniform"`` (the
        authors' code), ``"lecun_uniform"`` or ``"match"``
    :raises ValueError: when ``module`` has no hidden layer (the method would never act)
    """

    records_features = False

    def __init__(
        self,
        *,
        tau: float = 0.0,
        every_updates: int = 1000,
        init: str = "kaiming_uniform",
    ) -> None:
        super().__init__(tau=tau, every_updates=every_updates, init=init)

    def after_step(self) -> None:
        if self.steps % self.every_updates == 0:
            self.reset_low_gradient()

    def reset_low_gradient(self) -> list[torch.Tensor]:
        """Reset the units of each layer whose normalised incoming gradient is at most tau.

        :return: per layer, the indices reset
        """
        replaced = []
        for i, layer in enumerate(self.layers):
            grad = layer.incoming.weight.grad
            units = torch.empty(0, dtype=torch.long)
            if grad is not None:
                units = low_gradient_units(grad, self.tau)
                if len(units):
                    reinit_units_(layer, units, self.optimizer, self.bounds[i], self.generator)
                    self.replaced[i] += len(units)
            replaced.append(units)
        return replaced
