"""Plasticity metrics as pure functions of an activation matrix, its singular values, or weights.

``activations`` is always one layer's features on a batch: ``n`` samples x ``d`` units (rows are
samples, columns are units). Every function accepts a numpy array or a torch tensor and returns a
Python float. Definitions follow ``REFERENCES.md`` ("Metrics, exact definitions"); the rank metrics
take singular values so that a caller computes them once per layer (:func:`singular_values`) and
shares them.

This module knows nothing of SB3 or of modules: a 3x3 matrix is enough to test it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import torch

from rl_plasticity.catalog import Activation
from rl_plasticity.metrics.registry import DORMANT_TAUS

ArrayLike = np.ndarray | torch.Tensor

#: A sample counts as saturated outside these bounds (``REFERENCES.md``: tanh ``|h| > 0.99``,
#: sigmoid ``h < 0.01`` or ``h > 0.99``).
SATURATION_BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (-0.99, 0.99),
    "sigmoid": (0.01, 0.99),
}


def _matrix(activations: ArrayLike) -> torch.Tensor:
    h = torch.as_tensor(activations).detach()
    if h.ndim != 2:
        raise ValueError(f"activations must be 2-D (samples x units), got shape {tuple(h.shape)}")
    return h if h.is_floating_point() else h.double()


def _vector(values: ArrayLike) -> torch.Tensor:
    return torch.as_tensor(values).detach().double().flatten()


def singular_values(activations: ArrayLike) -> torch.Tensor:
    """Singular values of the activation matrix, in descending order, as float64.

    :param activations: ``n x d`` features of one layer
    :return: ``min(n, d)`` singular values
    """
    return torch.linalg.svdvals(_matrix(activations)).double()


def dead_unit_fraction(
    activations: ArrayLike, threshold: float = 0.0, max_active_fraction: float = 0.0
) -> float:
    """Fraction of units that are (almost) never active on the batch.

    A unit is active on a sample when ``|h| > threshold``; it is dead when it is active on at most
    ``max_active_fraction`` of the samples. The defaults are the ReLU definition (``h == 0`` on
    every sample). ``threshold=1e-7, max_active_fraction=0.01`` is the general one for smooth
    activations (``|h| < 1e-7`` on 99% or more); ``threshold=0, max_active_fraction=0.01`` is the
    Nature paper's "dormant" (active on at most 1% of inputs).

    :param activations: ``n x d`` features of one layer
    :param threshold: ``|h|`` at or below which a sample counts as inactive
    :param max_active_fraction: a unit active on this fraction of samples or fewer is dead
    :return: dead units / ``d``
    """
    h = _matrix(activations)
    active = (h.abs() > threshold).double().mean(dim=0)
    return float((active <= max_active_fraction).double().mean())


def saturated_fraction(
    activations: ArrayLike,
    activation: Literal["tanh", "sigmoid"] = "tanh",
    min_fraction: float = 0.99,
) -> float:
    """Fraction of units saturated on more than ``min_fraction`` of the samples.

    :param activations: ``n x d`` features of one layer (outputs of the activation)
    :param activation: ``"tanh"`` (saturated: ``|h| > 0.99``) or ``"sigmoid"`` (``h < 0.01`` or
        ``h > 0.99``)
    :param min_fraction: a unit saturated on more than this fraction of samples counts
    :return: saturated units / ``d``
    """
    if activation not in SATURATION_BOUNDS:
        raise ValueError(f"activation must be one of {sorted(SATURATION_BOUNDS)}, got {activation}")
    low, high = SATURATION_BOUNDS[activation]
    h = _matrix(activations)
    saturated = ((h < low) | (h > high)).double().mean(dim=0)
    return float((saturated > min_fraction).double().mean())


def dormant_fraction(activations: ArrayLike, tau: float = 0.025) -> float:
    """Fraction of tau-dormant units (ReDo, Sokar et al. 2023, Def. 3.1).

    ``s_i = E|h_i| / mean_k E|h_k|``; a unit is dormant when ``s_i <= tau``. A layer whose every
    activation is zero has every unit dormant.

    :param activations: ``n x d`` features of one layer
    :param tau: dormancy threshold (0.025 in ReDo, 0.1 in some RL work)
    :return: dormant units / ``d``
    """
    score = _matrix(activations).abs().double().mean(dim=0)
    mean = score.mean()
    if mean == 0:
        return 1.0
    return float((score / mean <= tau).double().mean())


def effective_rank(sigma: ArrayLike) -> float:
    """Effective rank (Roy & Vetterli 2007): ``exp(-sum p_i log p_i)``, ``p_i = sigma_i / sum``.

    ``0 log 0 = 0``; a zero matrix has effective rank 0.

    :param sigma: singular values (:func:`singular_values`)
    :return: a number in ``[0, len(sigma)]``; ``n`` for an ``n x n`` identity, 1 for rank one
    """
    s = _vector(sigma)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def feature_rank(sigma: ArrayLike, delta: float = 0.01) -> int:
    """Feature rank srank_delta (Kumar et al. 2021, "Implicit under-parameterization").

    The smallest ``k`` with ``sum_{i<=k} sigma_i >= (1 - delta) sum sigma`` (sigma descending).

    :param sigma: singular values (:func:`singular_values`)
    :param delta: the fraction of the spectrum's mass allowed to be left out
    :return: ``k``; 0 for a zero matrix
    """
    s = torch.sort(_vector(sigma), descending=True).values
    total = s.sum()
    if total <= 0:
        return 0
    cumulative = torch.cumsum(s, 0)
    # A relative slack of 1e-12 so that an exact spectrum ([1, 1, 1, 1], delta 0) is not lost to
    # rounding in the cumulative sum.
    reached = cumulative >= (1 - delta) * total * (1 - 1e-12)
    return int(torch.nonzero(reached)[0, 0]) + 1


def stable_rank(sigma: ArrayLike) -> float:
    """Stable rank: ``sum sigma^2 / max sigma^2`` (0 for a zero matrix).

    :param sigma: singular values (:func:`singular_values`)
    :return: a number in ``[0, len(sigma)]``
    """
    s = _vector(sigma)
    top = s.max() if s.numel() else torch.tensor(0.0)
    if top <= 0:
        return 0.0
    return float((s**2).sum() / top**2)


def feature_norm(activations: ArrayLike) -> float:
    """Mean over samples of the L2 norm of the feature vector, ``E_x ||h(x)||_2``.

    :param activations: ``n x d`` features of one layer
    :return: the mean norm
    """
    return float(torch.linalg.vector_norm(_matrix(activations).double(), dim=1).mean())


def cloned_unit_fraction(activations: ArrayLike, threshold: float = 0.95) -> float:
    """Fraction of units whose activation vector has cosine similarity ``> threshold`` with another.

    Cosine similarity is of the raw (uncentred) activation vectors over the batch. Units whose
    vector is all zero have no direction: they are dead, not clones, and are never counted (nor
    does another unit count as their clone).

    :param activations: ``n x d`` features of one layer
    :param threshold: cosine similarity above which two units are clones
    :return: cloned units / ``d`` (both members of a pair count)
    """
    h = _matrix(activations).double()
    norms = torch.linalg.vector_norm(h, dim=0)
    alive = norms > 0
    if int(alive.sum()) < 2:
        return 0.0
    unit = h[:, alive] / norms[alive]
    cosine = unit.T @ unit
    cosine.fill_diagonal_(-1.0)
    cloned = (cosine > threshold).any(dim=1)
    return float(cloned.sum()) / h.shape[1]


def mean_abs(weights: ArrayLike) -> float:
    """Mean absolute value, the paper's weight magnitude of a layer.

    :param weights: any tensor (a layer's weight matrix)
    :return: ``mean |w|``
    """
    return float(_vector(weights).abs().mean())


def rms(values: ArrayLike) -> float:
    """Root mean square, ``sqrt(mean w^2)``.

    :param values: any tensor (a layer's weight matrix)
    :return: the RMS
    """
    return float(_vector(values).pow(2).mean().sqrt())


def rms_change(current: ArrayLike, previous: ArrayLike) -> float:
    """Weight change: RMS of ``theta - theta_prev``.

    :param current: the weights now
    :param previous: the same weights at the previous measurement
    :return: the RMS of the difference
    """
    return rms(_vector(current) - _vector(previous))


def global_norm(tensors: Iterable[ArrayLike | None]) -> float:
    """L2 norm of several tensors taken together (a gradient norm); ``None`` entries are skipped.

    :param tensors: e.g. the ``.grad`` of each parameter
    :return: ``sqrt(sum ||t||^2)``; NaN when every entry is ``None``
    """
    squares = [float(_vector(t).pow(2).sum()) for t in tensors if t is not None]
    return float(np.sqrt(sum(squares))) if squares else float("nan")


def layer_metrics(
    activations: torch.Tensor,
    activation: Activation | None,
    weight: torch.Tensor,
    previous_weight: torch.Tensor | None,
    weight_grad_norm: torch.Tensor | None,
    cloned_threshold: float = 0.95,
) -> dict[str, float]:
    """Every per-layer metric the metrics callback records, by its name in
    :data:`rl_plasticity.metrics.registry.METRICS`.

    ``dead`` is ``h == 0`` on every sample for an activation with exact zeros (ReLU, ReLU6) and
    ``|h| <= 1e-7`` on at least 99% of samples otherwise; ``saturated`` is there only for a
    saturating activation (tanh, sigmoid); ``weight_change`` is NaN without a previous weight.

    :param activations: the layer's features (samples x units)
    :param activation: the layer's activation (``rl_plasticity.catalog.activation_of``), or None
    :param weight: the layer's incoming weight matrix
    :param previous_weight: the same matrix at the previous measurement, or None
    :param weight_grad_norm: the norm of its latest gradient, or None
    :param cloned_threshold: cosine similarity above which two units are clones
    :return: metric name -> value
    """
    h = activations
    exact_zero = activation is not None and activation.exact_zeros
    threshold, dead_fraction = (0.0, 0.0) if exact_zero else (1e-7, 0.01)
    sigma = singular_values(h)
    metrics = {
        "dead": dead_unit_fraction(h, threshold, dead_fraction),
        "rarely_active": dead_unit_fraction(h, threshold, 0.01),
    }
    for tau in DORMANT_TAUS:
        metrics[f"dormant_{tau}"] = dormant_fraction(h, tau)
    if activation is not None and activation.saturating:
        metrics["saturated"] = saturated_fraction(h, activation.name)
    metrics.update(
        effective_rank=effective_rank(sigma),
        srank=float(feature_rank(sigma, 0.01)),
        stable_rank=stable_rank(sigma),
        feature_norm=feature_norm(h),
        cloned=cloned_unit_fraction(h, cloned_threshold),
        weight_mean_abs=mean_abs(weight),
        weight_rms=rms(weight),
        weight_change=rms_change(weight, previous_weight)
        if previous_weight is not None
        else float("nan"),
        grad_norm=global_norm([weight_grad_norm]),
    )
    return metrics
