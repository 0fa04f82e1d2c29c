"""Does FastPPO's hand-derived loss backward pay? (Issue 26: it did not, and autograd replaced it.)

Issue 26 asked to keep the hand-written gradient only if it measurably pays. Both variants run in
one process, one torch thread, interleaved: FastPPO with the paper's settings (``agents/ppo.toml``)
on one rollout of 2,048 steps, its ``train()`` (10 epochs x 16 minibatches of 128) timed from the
same saved state each time, once with :class:`HandDerivedLoss` (one autograd node, gradient
written out: FastPPO's loss until this measurement) and once with :func:`ppo_loss` (the same
forward as ordinary torch operations, autograd's gradient: FastPPO's loss since). Also timed
alone: the loss's forward and backward on one minibatch of 128. Reported: medians of CPU time and
the ratio autograd / hand-derived (above 1: the hand-derived backward is faster), with the spread of
the per-round ratios; and the largest difference between the two variants' results (weights after
one ``train()``: Adam turns gradient differences of float rounding into weight differences of
about its step size; gradients of the loss alone).

    .venv/bin/python -m bench.bench_ppo_loss --env HalfCheetah-v5 Ant-v5 --repeats 15 \\
        --out bench/results/ppo_loss.md
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from bench.common import emit, interleaved
from rl_plasticity.sb3 import fast_ppo
from rl_plasticity.sb3.ppo_loss import (
    ENTROPY_CONSTANT,
    LOG_SQRT_2PI,
    PPOBatch,
    PPOLossSettings,
    ppo_loss,
)

HAND = "hand-derived"
AUTOGRAD = "autograd"


class HandDerivedLoss(torch.autograd.Function):
    """FastPPO's former loss: :func:`ppo_loss`'s forward as one autograd node, gradient by hand.

    Removed from the package after this benchmark (it did not pay); kept here so that the
    decision can be measured again.

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


def use(variant: str) -> None:
    """Make FastPPO's ``train`` use the ``variant`` loss."""
    fast_ppo.ppo_loss = HandDerivedLoss.apply if variant == HAND else ppo_loss


def prepared(env_id: str, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """A paper-settings FastPPO after one rollout, and its policy and optimizer state."""
    from bench.common import paper_ppo

    model = paper_ppo(env_id, seed)
    assert isinstance(model, fast_ppo.FastPPO), type(model)
    model.learn(model.n_steps)  # one rollout and one update: a warm, realistic state
    model.rollout_buffer.reset()
    model._last_obs = model.env.reset()
    from stable_baselines3.common.callbacks import CallbackList

    callback = CallbackList([])
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    state = {
        "policy": copy.deepcopy(model.policy.state_dict()),
        "optimizer": copy.deepcopy(model.policy.optimizer.state_dict()),
        "buffer": copy.deepcopy(model.rollout_buffer.__dict__),
    }
    return model, state


def restore(model: Any, state: dict[str, Any]) -> None:
    """Put back the saved policy, optimizer and buffer (train() flattens the buffer)."""
    model.policy.load_state_dict(state["policy"])
    # A copy: load_state_dict keeps the given tensors as the state, which step() then changes.
    model.policy.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
    model.rollout_buffer.__dict__.update(copy.deepcopy(state["buffer"]))


def train_seconds(model: Any, state: dict[str, Any], variant: str) -> float:
    """CPU seconds of one ``train()`` from ``state`` with the ``variant`` loss."""
    restore(model, state)
    use(variant)
    torch.manual_seed(0)
    import numpy as np

    np.random.seed(0)
    start = time.process_time()
    model.train()
    return time.process_time() - start


def loss_seconds(model: Any, variant: str, rounds: int = 200) -> tuple[float, torch.Tensor]:
    """CPU seconds per forward and backward of the loss alone, on one minibatch."""
    torch.manual_seed(1)
    n, d = model.batch_size, model.action_space.shape[0]
    mean = torch.randn(n, d, requires_grad=True)
    values = torch.randn(n, requires_grad=True)
    log_std = torch.zeros(d, requires_grad=True)
    batch = PPOBatch(
        torch.randn(n, d), torch.randn(n), torch.randn(n) - 5, torch.randn(n), torch.randn(n)
    )
    settings = PPOLossSettings(0.2, None, 0.5, 0.0)
    apply = HandDerivedLoss.apply if variant == HAND else ppo_loss
    start = time.process_time()
    for _ in range(rounds):
        loss = apply(mean, values, log_std, batch, settings)[0]
        grads = torch.autograd.grad(loss, (mean, values, log_std))
    return (time.process_time() - start) / rounds, torch.cat([g.reshape(-1) for g in grads])


def measure(env_id: str, repeats: int) -> list[str]:
    """The two table rows for ``env_id``."""
    import numpy as np

    model, state = prepared(env_id)
    weights = {}
    for variant in (HAND, AUTOGRAD):
        restore(model, state)
        use(variant)
        np.random.seed(0)
        model.train()
        weights[variant] = torch.cat([p.detach().reshape(-1) for p in model.policy.parameters()])
    weight_diff = (weights[HAND] - weights[AUTOGRAD]).abs().max().item()
    rates = interleaved(
        [HAND, AUTOGRAD], repeats, lambda v, _r: train_seconds(model, state, v), "s"
    )
    alone = interleaved([HAND, AUTOGRAD], repeats, lambda v, _r: loss_seconds(model, v)[0] * 1e6)
    grad_diff = (loss_seconds(model, HAND, 1)[1] - loss_seconds(model, AUTOGRAD, 1)[1]).abs().max()
    rows = []
    for what, times, diff in (
        (
            "train() (160 minibatches), ms",
            {v: [t * 1e3 for t in x] for v, x in rates.items()},
            f"{weight_diff:.1e} (weights after train)",
        ),
        ("loss forward + backward, one minibatch, us", alone, f"{grad_diff.item():.1e}"),
    ):
        ratios = [a / h for h, a in zip(times[HAND], times[AUTOGRAD], strict=True)]
        rows.append(
            f"| {env_id} | {what} | {statistics.median(times[HAND]):.0f} | "
            f"{statistics.median(times[AUTOGRAD]):.0f} | {statistics.median(ratios):.3f} "
            f"[{min(ratios):.3f}, {max(ratios):.3f}] | {diff} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["HalfCheetah-v5"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = [
        f"{args.repeats} interleaved rounds; CPU time; one torch thread.",
        "",
        "| environment | measured | hand-derived | autograd | autograd / hand-derived "
        "(median [min, max] over rounds) | max difference |",
        "|---|---|---:|---:|---|---:|",
    ]
    for env_id in args.env:
        lines += measure(env_id, args.repeats)
    use(HAND)
    emit(lines, args.out, __doc__)


if __name__ == "__main__":
    main()
