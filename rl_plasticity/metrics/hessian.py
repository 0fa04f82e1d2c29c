"""Hessian spectrum of a loss by stochastic Lanczos quadrature on Hessian-vector products.

Prakash et al. (arXiv 2509.22335) link loss of plasticity to a collapse of the Hessian spectrum:
few directions keep ``|lambda| > epsilon``. The Hessian of a network with ``p`` parameters is
``p x p``; it is never formed here. Lanczos (with full reorthogonalization) on Hessian-vector
products (double backward) from a random start vector ``v`` gives a tridiagonal ``T``; its
eigenvalues ``theta_j`` (Ritz values) with weights ``tau_j`` (squared first components of its
eigenvectors) are a quadrature of the spectral density: ``E_v[sum_j tau_j f(theta_j)] =
(1/p) sum_i f(lambda_i)`` (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019). Extremal
Ritz values converge first, so a few dozen steps give the top eigenvalues; with ``p`` steps the
Ritz values are the eigenvalues. The density is resolved only down to about the spacing of the
nodes, roughly ``lambda_max / n_steps``: an epsilon far below that needs many steps (on the
242-parameter net of ``tests/test_metrics_hessian.py``, 40 steps estimate the fraction with
``|lambda| > 0.005 lambda_max`` within 0.05, while ``0.0005 lambda_max`` needs about 160).

That is why the epsilon-rank takes a *relative* epsilon by default: a fraction of the largest
eigenvalue's magnitude, so that one setting means the same resolution for a loss of any scale
(an absolute ``1e-3`` is below the resolution of 30 steps for a loss whose top eigenvalue is 10,
and above every eigenvalue of one whose top eigenvalue is ``1e-4``). Choose it at or above
``1 / n_steps``.

Torch core: no SB3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class HessianSpectrum:
    """A quadrature of the Hessian's eigenvalue density.

    :param nodes: Ritz values, one tensor per probe vector
    :param weights: their quadrature weights (each probe's sum to 1)
    :param n_params: the Hessian's size ``p``
    """

    nodes: list[torch.Tensor]
    weights: list[torch.Tensor]
    n_params: int

    def epsilon_rank(self, epsilon: float, relative: bool = True) -> float:
        """Estimated fraction of eigenvalues with ``|lambda| > epsilon * |lambda|_max``.

        :param epsilon: the threshold, a fraction of the largest eigenvalue magnitude (the
            largest ``|Ritz value|`` over all probes); with ``relative=False`` an absolute
            magnitude
        :param relative: whether ``epsilon`` is relative to the largest magnitude
        :return: a fraction in ``[0, 1]`` (multiply by ``n_params`` for a count)
        """
        threshold = epsilon * self.largest_magnitude() if relative else epsilon
        per_probe = [
            float((w * (t.abs() > threshold).double()).sum())
            for t, w in zip(self.nodes, self.weights, strict=True)
        ]
        return sum(per_probe) / len(per_probe)

    def largest_magnitude(self) -> float:
        """The largest ``|Ritz value|`` over all probes: the estimate of ``max_i |lambda_i|``."""
        return max(float(t.abs().max()) for t in self.nodes)

    def top_eigenvalues(self, k: int = 1) -> list[float]:
        """The ``k`` largest Ritz values over all probes, descending (largest eigenvalue estimates).

        Ritz values of different probes approximate the same extreme eigenvalues, so the first
        probe's are used.

        :param k: how many
        :return: up to ``k`` values
        """
        return torch.sort(self.nodes[0], descending=True).values[:k].tolist()


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def hessian_spectrum(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.nn.Parameter],
    n_steps: int = 30,
    n_probes: int = 1,
    seed: int = 0,
) -> HessianSpectrum:
    """Stochastic Lanczos quadrature of the Hessian of ``loss_fn()`` with respect to ``params``.

    :param loss_fn: computes the scalar loss (on a fixed batch) from the current parameters
    :param params: the parameters the Hessian is taken over
    :param n_steps: Lanczos steps per probe (at most the number of parameters; the iteration stops
        earlier when the Krylov space is exhausted)
    :param n_probes: random start vectors (Rademacher) averaged for the density
    :param seed: seed of the start vectors (the global RNG is not touched)
    :return: the quadrature
    """
    params = [p for p in params if p.requires_grad]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat_grad = _flat(grads)
    n = flat_grad.numel()
    n_steps = min(n_steps, n)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        product = torch.autograd.grad(
            flat_grad, params, grad_outputs=v.to(flat_grad.dtype), retain_graph=True
        )
        return _flat(product).double()

    generator = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    for _ in range(n_probes):
        v = torch.randint(0, 2, (n,), generator=generator).to(flat_grad.device).double() * 2 - 1
        basis = [v / v.norm()]
        alphas, betas = [], []
        for step in range(n_steps):
            w = hvp(basis[-1])
            alpha = torch.dot(w, basis[-1])
            alphas.append(alpha)
            # Full reorthogonalization (twice, "twice is enough") keeps the Ritz values from
            # repeating converged eigenvalues ("ghosts") in finite precision.
            q = torch.stack(basis, dim=1)
            for _ in range(2):
                w = w - q @ (q.T @ w)
            beta = w.norm()
            if step == n_steps - 1 or beta <= 1e-10 * max(1.0, float(alpha.abs())):
                break
            betas.append(beta)
            basis.append(w / beta)
        t = torch.diag(torch.stack(alphas))
        if betas:
            off = torch.stack(betas)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        theta, vectors = torch.linalg.eigh(t)
        nodes.append(theta)
        weights.append(vectors[0] ** 2)
    return HessianSpectrum(nodes, weights, n)
