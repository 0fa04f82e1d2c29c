"""PPO's loss as one autograd node, for :class:`rl_plasticity.sb3.fast_ppo.FastPPO`.

SB3's ``PPO.train`` builds the clipped surrogate, the value loss and the entropy term from about 25
autograd operations per minibatch; :class:`PPOLoss` computes the same forward and writes out the
gradient autograd would take through them, so that the loss is one node. The forward through the
policy's modules stays outside it (the plasticity methods' hooks must see it).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

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


class PPOLoss(torch.autograd.Function):
    """SB3's PPO loss from the Gaussian's mean, the values and the log-std, as one autograd node.

    Forward, as ``PPO.train`` computes it (``Normal.log_prob`` and ``Normal.entropy`` for a
    state-independent std): log pi = sum_j -(a - mu)^2 / (2 var) - log std - log sqrt(2 pi);
    r = exp(log pi - log pi_old); policy loss = -mean(min(A r, A clamp(r, 1 - eps, 1 + eps)));
    value loss = mean((R - V)^2) (V clipped around the old values if ``clip_range_vf``);
    loss = policy loss + ent_coef * entropy loss + vf_coef * value loss (the entropy term left
    out when ``ent_coef == 0``: its gradient is exactly 0).

    Backward: the gradient autograd would take through those operations (including
    ``torch.minimum``'s half-and-half split at ties and ``clamp``'s pass-through inside the
    interval), written out so that the loss is one node instead of about 25.

    Outputs: loss, then (without gradient) policy loss, value loss, entropy loss, log pi and r.
    """

    @staticmethod
    def forward(
        ctx: Any,
        mean: torch.Tensor,
        values: torch.Tensor,
        log_std: torch.Tensor,
        batch: PPOBatch,
        settings: PPOLossSettings,
    ) -> tuple[torch.Tensor, ...]:
        std = log_std.exp()
        two_var = 2 * std**2
        log_scale = std.log()
        diff = batch.actions - mean
        squared = diff**2
        log_prob = (-squared / two_var - log_scale - LOG_SQRT_2PI).sum(dim=1)
        ratio = torch.exp(log_prob - batch.old_log_prob)
        clip = settings.clip_range
        surrogate_1 = batch.advantages * ratio
        surrogate_2 = batch.advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
        policy_loss = -torch.min(surrogate_1, surrogate_2).mean()
        values_pred = values
        if settings.clip_range_vf is not None:
            change = values - batch.old_values
            values_pred = batch.old_values + torch.clamp(
                change, -settings.clip_range_vf, settings.clip_range_vf
            )
        value_loss = F.mse_loss(batch.returns, values_pred)
        # Every sample has the same entropy (the std does not depend on the state).
        entropy_loss = -(ENTROPY_CONSTANT + log_scale).sum()
        loss = policy_loss
        if settings.ent_coef != 0:
            loss = loss + settings.ent_coef * entropy_loss
        loss = loss + settings.vf_coef * value_loss
        ctx.save_for_backward(std, two_var, diff, squared, ratio, surrogate_1, surrogate_2)
        ctx.batch, ctx.settings, ctx.values_pred, ctx.values = batch, settings, values_pred, values
        ctx.mark_non_differentiable(policy_loss, value_loss, entropy_loss, log_prob, ratio)
        return loss, policy_loss, value_loss, entropy_loss, log_prob, ratio

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        std, two_var, diff, squared, ratio, surrogate_1, surrogate_2 = ctx.saved_tensors
        batch, settings = ctx.batch, ctx.settings
        n = len(ratio)
        # -mean(min(s1, s2)): each sample's minimum gets -grad / n, split in halves at ties.
        grad_min = (-grad / n).expand(n)
        shared = torch.where(surrogate_1 == surrogate_2, grad_min / 2, grad_min)
        grad_1 = shared.masked_fill(surrogate_1 > surrogate_2, 0)
        grad_2 = shared.masked_fill(surrogate_1 < surrogate_2, 0)
        clip = settings.clip_range
        inside = (ratio >= 1 - clip) & (ratio <= 1 + clip)
        grad_ratio = batch.advantages * grad_1 + batch.advantages * grad_2 * inside
        grad_log_prob = (grad_ratio * ratio).unsqueeze(1)
        # log pi_j = -(a - mu)^2 / (2 var) - log std - c, summed over j.
        grad_mean = grad_log_prob / two_var * (2 * diff)
        grad_two_var = (grad_log_prob * squared).sum(dim=0) / (two_var * two_var)
        grad_log_scale = -grad_log_prob.sum(dim=0)
        if settings.ent_coef != 0:
            grad_log_scale = grad_log_scale - settings.ent_coef * grad
        grad_std = 2 * grad_two_var * (2 * std) + grad_log_scale / std
        grad_log_std = grad_std * std
        # vf_coef * mean((R - V)^2) with respect to V (through the clamp when clipped).
        grad_values = settings.vf_coef * grad * (2 / n) * (ctx.values_pred - batch.returns)
        if settings.clip_range_vf is not None:
            change = ctx.values - batch.old_values
            limit = settings.clip_range_vf
            grad_values = grad_values * ((change >= -limit) & (change <= limit))
        return grad_mean, grad_values, grad_log_std, None, None
