"""Parseval regularization: Chung, Cherif, Meger & Precup 2024, "Parseval regularization for
continual reinforcement learning", NeurIPS 2024, arXiv 2412.07224.

Keep each hidden layer's weight matrix ``W_l`` (units x inputs; rows are the units' incoming
weights) close to a scaled orthogonal matrix::

    loss = task loss + lambda * sum_l c_l * ||W_l W_l^T - s I||_F^2
    c_l = (reference_width / n_l)^2   (1 when reference_width is None)

The gradient of one layer's term is ``4 lambda c_l (W W^T - s I) W``: zero exactly when the rows
are orthogonal with squared norm ``s``.

Defaults and where they come from:

* ``coeff`` (lambda) = 1e-3: the authors' code (github wechu/parseval_reg, ``main.py``) for its
  gridworld and MetaWorld experiments (1e-4 for LunarLander and CARL quadruped); Plasticine's
  config uses 1e-3 as well.
* layers: the hidden layers (every Linear that feeds an activation), in the policy and the value
  networks; not the output layers (the authors' code regularizes only its ``linear_orthog``
  layers, which are the hidden ones). Biases are not regularized.
* ``scale`` (s) = 2: the authors' code sets ``s = init_gain^2`` of its orthogonal initialization,
  ``sqrt(2)^2 = 2`` by default (ReLU); Plasticine's ``PRLinear`` uses ``s = 1``. ``s`` should match
  the rows' squared norm at initialization: the ``ppo-parseval`` spec uses LeCun-uniform weights
  (rows of squared norm about 1), so it sets ``scale = 1``.
* ``reference_width`` = None: the authors' code multiplies lambda by ``(64 / width)^2``, since
  lambda was tuned at width 64; set ``reference_width = 64`` to do the same (per layer, by its
  number of units).

Not implemented: the learnable per-unit scale, a diagonal layer after each Parseval layer
(``add_diag_layer``), which the authors' code turns on for its MetaWorld experiments, the paper's
headline results (so the ``ppo-parseval`` spec is the method without it, as in the gridworld runs);
and the paper's ablations and relaxations: learnable input scaling, Parseval on row-normalized
weights (``parseval_norm``) and subgroup Parseval (``parseval_num_groups``, orthogonality only
within groups of units). The paper's networks are initialized orthogonally; here the
initialization is the spec's. The authors add the term to the loss before gradient clipping; here
it is too when the algorithm clips (see ``protocol``).

Hooks: ``loss_term`` (the penalty; its gradient is added before each optimizer step).
"""

from __future__ import annotations

import torch

from rl_plasticity.plasticity.layers import HiddenLayer
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_number, check_optional_int


def parseval_penalty(weight: torch.Tensor, scale: float) -> torch.Tensor:
    """``||W W^T - s I||_F^2`` (differentiable).

    :param weight: units x inputs
    :param scale: s
    :return: a scalar
    """
    gram = weight @ weight.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return ((gram - scale * eye) ** 2).sum()


@register_method("parseval")
class Parseval(Method):
    """Parseval regularization of every hidden layer's incoming weights.

    :param coeff: lambda (the authors' code: 1e-3 on gridworld and MetaWorld)
    :param scale: s, the target ``W W^T = s I`` (the authors' code: 2, their init gain squared)
    :param reference_width: None, or lambda is multiplied by ``(reference_width / units)^2`` per
        layer (the authors' code: 64)
    """

    needs_layers = True

    def __init__(
        self,
        *,
        coeff: float = 1e-3,
        scale: float = 2.0,
        reference_width: int | None = None,
    ) -> None:
        self.coeff = check_number("coeff", coeff, 0.0)
        self.scale = check_number("scale", scale, 0.0, low_open=True)
        self.reference_width = check_optional_int("reference_width", reference_width, 1)
        #: the latest penalty, before multiplying by lambda
        self.last_penalty = float("nan")
        #: optimizer steps the penalty was added to
        self.terms = 0
        super().__init__()

    def weight_factor(self, layer: HiddenLayer) -> float:
        """``c_l``: 1, or ``(reference_width / units)^2``."""
        if self.reference_width is None:
            return 1.0
        return (self.reference_width / layer.n_units) ** 2

    def penalty(self) -> torch.Tensor:
        """``sum_l c_l ||W_l W_l^T - s I||_F^2`` over the hidden layers (differentiable)."""
        return torch.stack(
            [
                self.weight_factor(layer) * parseval_penalty(layer.incoming.weight, self.scale)
                for layer in self.layers
            ]
        ).sum()

    def loss_term(self, features: list[torch.Tensor] | None) -> torch.Tensor | None:
        if self.coeff == 0:
            return None
        penalty = self.penalty()
        self.last_penalty = float(penalty.detach())
        self.terms += 1
        return self.coeff * penalty

    def counters(self) -> dict[str, float]:
        """The latest penalty (without lambda) and the steps it was added to."""
        return {"penalty": self.last_penalty, "terms": float(self.terms)}
