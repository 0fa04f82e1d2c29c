"""PPO's loss from the Gaussian's mean, for :class:`rl_plasticity.sb3.fast_ppo.FastPPO`.

SB3's ``PPO.train`` gets log pi and the entropy from ``policy.evaluate_actions`` (a
``DiagGaussianDistribution`` built per minibatch); :func:`ppo_loss` computes the same quantities
from the mean and the log-std directly, and autograd takes the gradient. The forward through the
policy's modules stays outside it (the plasticity methods' hooks must see it).

A hand-derived backward (the loss as one autograd node) was measured against this and removed: it
did not pay (``bench/bench_ppo_loss.py``, which keeps it for re-measurement;
``bench/results/ppo_loss.md``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.nn import functional as F

#: log(sqrt(2 pi)), written as ``torch.distributions.Normal.log_prob`` writes it.
LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
#: The per-dimension entropy of N(0, 1) without the log-std, as ``Normal.entropy`` writes it.
ENTROPY_CONSTANT = 0.5 + 0.5 * math.log(2 * math.pi)


class PPOBatch(NamedTuple):
    """A minibatch's constants in PPO's loss (advantages already normalized if they are)."""

    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOLossSettings(NamedTuple):
    """PPO's loss settings for one ``train()`` (``clip_range_vf`` None: value loss unclipped)."""

    clip_range: float
    clip_range_vf: float | None
    vf_coef: float
    ent_coef: float


def ppo_loss(
    mean: torch.Tensor,
    values: torch.Tensor,
    log_std: torch.Tensor,
    batch: PPOBatch,
    settings: PPOLossSettings,
) -> tuple[torch.Tensor, ...]:
    """SB3's PPO loss from the Gaussian's mean, the values and the log-std.

    As ``PPO.train`` computes it (``Normal.log_prob`` and ``Normal.entropy`` for a
    state-independent std): log pi = sum_j -(a - mu)^2 / (2 var) - log std - log sqrt(2 pi);
    r = exp(log pi - log pi_old); policy loss = -mean(min(A r, A clamp(r, 1 - eps, 1 + eps)));
    value loss = mean((R - V)^2) (V clipped around the old values if ``clip_range_vf``);
    loss = policy loss + ent_coef * entropy loss + vf_coef * value loss (the entropy term left
    out when ``ent_coef == 0``: its gradient is exactly 0).

    Every tensor may carry a leading member dimension (a population's members, each with its own
    log-std: ``mean`` (P, batch, action dims), ``log_std`` (P, action dims)); the losses are then
    one per member, (P,), each reduced over that member's batch only.

    :param mean: the Gaussian's mean, (batch, action dims), with gradient
    :param values: the value predictions, (batch,), with gradient
    :param log_std: the policy's log-std parameter, (action dims,)
    :param batch: the minibatch's constants
    :param settings: the update's clip ranges and coefficients
    :return: the loss (with gradient), then, detached: policy loss, value loss, entropy loss,
        log pi and r
    """
    std = log_std.exp()
    log_scale = std.log()
    squared = (batch.actions - mean) ** 2
    terms = -squared / (2 * std**2).unsqueeze(-2) - log_scale.unsqueeze(-2) - LOG_SQRT_2PI
    log_prob = terms.sum(dim=-1)
    ratio = torch.exp(log_prob - batch.old_log_prob)
    clip = settings.clip_range
    surrogate_1 = batch.advantages * ratio
    surrogate_2 = batch.advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    policy_loss = -torch.min(surrogate_1, surrogate_2).mean(dim=-1)
    values_pred = values
    if settings.clip_range_vf is not None:
        change = values - batch.old_values
        values_pred = batch.old_values + torch.clamp(
            change, -settings.clip_range_vf, settings.clip_range_vf
        )
    value_loss = F.mse_loss(batch.returns, values_pred, reduction="none").mean(dim=-1)
    # Every sample has the same entropy (the std does not depend on the state).
    entropy_loss = -(ENTROPY_CONSTANT + log_scale).sum(dim=-1)
    loss = policy_loss
    if settings.ent_coef != 0:
        loss = loss + settings.ent_coef * entropy_loss
    loss = loss + settings.vf_coef * value_loss
    return loss, *(t.detach() for t in (policy_loss, value_loss, entropy_loss, log_prob, ratio))
