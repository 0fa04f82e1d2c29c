"""Spectral regularization: Lewandowski, Bortkiewicz, Kumar, Gyorgy, Schuurmans, Ostaszewski &
Machado 2025, "Learning continually by spectral regularization", ICLR 2025, arXiv 2406.06811.

Keep each layer's largest singular value close to one, as at a good initialization::

    loss = task loss + lambda * ( sum_l (sigma_max(W_l)^k - 1)^2  +  sum_l ||b_l||^(2k) )

``sigma_max(W_l)`` is estimated by power iteration, with the singular vectors ``u_l, v_l`` kept
from step to step (``power_iterations`` iterations per step, as spectral normalization does):
``v <- W^T u / |W^T u|``, ``u <- W v / |W v|``, ``sigma = u^T W v`` with ``u, v`` held fixed, so
the gradient of ``sigma`` is ``u v^T`` and a layer's gradient is
``2 lambda k sigma^(k-1) (sigma^k - 1) u v^T``. The bias is a vector, whose spectral norm is its
Euclidean norm; it is pulled toward zero (its value at initialization), the same form with target
0.

Sources, and what could not be checked: the abstract states the regularizer keeps the maximum
singular value of each layer close to one; the form ``(sigma^k - 1)^2`` with an exponent ``k``
and biases regularized toward zero come from secondary summaries of the paper, whose full text
(and its values of ``k`` and ``lambda``) could not be read when this was written, and no code of
the authors' was found. Defaults, all to be checked against the paper or swept: ``k`` = 2 (a
third-party PyTorch reimplementation uses 3), ``lambda`` = 1e-4, one power iteration per step.
Every Linear the optimizer trains is regularized, output layers included ("each layer").
Searched again in session 4 (arXiv HTML, the ICLR proceedings text, OpenReview): only the
abstracts and the reviews could be read. A reviewer writes that the regularizer "steer[s] the
maximum singular value of a layer to 1 (and 0 for the bias terms)", which agrees with the form
above; a third-party reimplementation also pulls normalization layers' scales toward 1 and
offsets toward 0 ("Appendix A.7", unverified), which this class does not do (it acts on Linears;
combined with ``layernorm`` the LayerNorms are not regularized).

Hooks: ``loss_term`` (the penalty; its gradient is added before each optimizer step).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.functional import normalize

from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_int, check_number


def power_iteration_(
    weight: torch.Tensor, u: torch.Tensor, iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine the left singular vector estimate ``u`` of ``weight`` in place.

    :param weight: out x in
    :param u: length ``out``, unit norm; updated in place
    :param iterations: power iterations
    :return: ``(u, v)``, the left and right singular vector estimates (no gradient)
    """
    with torch.no_grad():
        w = weight.detach()
        for _ in range(max(1, iterations)):
            v = normalize(w.T @ u, dim=0)
            u.copy_(normalize(w @ v, dim=0))
    return u, v


@register_method("spectral")
class SpectralRegularizer(Method):
    """Spectral regularization of every Linear the optimizer trains.

    :param coeff: lambda
    :param k: the exponent of the singular value
    :param power_iterations: power iterations per optimizer step (estimates carry over)
    """

    random = True

    def __init__(
        self,
        *,
        coeff: float = 1e-4,
        k: float = 2.0,
        power_iterations: int = 1,
    ) -> None:
        self.coeff = check_number("coeff", coeff, 0.0)
        self.k = check_number("k", k, 0.0, low_open=True)
        self.power_iterations = check_int("power_iterations", power_iterations, 1)
        self.linears: list[nn.Linear] = []
        #: each Linear's left singular vector estimate
        self.vectors: list[torch.Tensor] = []
        #: the latest estimate of each Linear's largest singular value
        self.sigmas: list[float] = []
        #: optimizer steps the penalty was added to
        self.terms = 0
        super().__init__()

    def setup(self) -> None:
        assert self.module is not None
        trained = (
            {id(p) for g in self.optimizer.param_groups for p in g["params"]}
            if self.optimizer is not None
            else None
        )
        self.linears = [
            m
            for m in self.module.modules()
            if isinstance(m, nn.Linear) and (trained is None or id(m.weight) in trained)
        ]
        self.vectors = []
        for linear in self.linears:
            weight = linear.weight
            start = torch.randn(weight.shape[0], generator=self.generator, dtype=weight.dtype).to(
                weight.device
            )
            self.vectors.append(normalize(start, dim=0))
        self.sigmas = [float("nan")] * len(self.linears)

    def penalty(self) -> torch.Tensor:
        """``sum_l (sigma_l^k - 1)^2 + ||b_l||^(2k)`` after this step's power iterations."""
        terms = []
        for i, (linear, u) in enumerate(zip(self.linears, self.vectors, strict=True)):
            u, v = power_iteration_(linear.weight, u, self.power_iterations)
            sigma = u @ linear.weight @ v
            self.sigmas[i] = float(sigma.detach())
            terms.append((sigma**self.k - 1.0) ** 2)
            if linear.bias is not None:
                terms.append(linear.bias.norm() ** (2 * self.k))
        return torch.stack(terms).sum()

    def loss_term(self, features: list[torch.Tensor] | None) -> torch.Tensor | None:
        if self.coeff == 0 or not self.linears:
            return None
        self.terms += 1
        return self.coeff * self.penalty()

    def counters(self) -> dict[str, float]:
        """The largest of the latest singular value estimates, and the steps penalized."""
        finite = [s for s in self.sigmas if s == s]
        return {"sigma_max": max(finite, default=float("nan")), "terms": float(self.terms)}

    def state_dict(self) -> dict:
        """The singular vector estimates."""
        return {**super().state_dict(), "vectors": [u.clone() for u in self.vectors]}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the power iteration from the saved estimates."""
        super().load_state_dict(state)
        for mine, saved in zip(self.vectors, state["vectors"], strict=True):
            mine.copy_(saved)
