"""Whether P members' PPO update can run as one batched update on member stacks, and what watches
each member's update: :func:`batched_update_reason`.

An update is batched when the members share their update settings and optimizer (one plain
Adam group, the same hyperparameters and step count), and everything that hooks a member's
update is known and has a batched form: its plasticity methods (each with a population form,
``Method.stacked_before_step`` / ``stacked_after_step``, the same classes and settings for every
member) and its metrics callbacks (whose gradient norms the batched update records). Anything
else (another hook, a method without a population form, ``target_kl``) makes each member update
on its own, and the reason is said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from torch import nn

from rl_plasticity.plasticity.protocol import Method
from rl_plasticity.plasticity.stacked import population_form_reason
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.fast_ppo import FastPPO
from rl_plasticity.sb3.member_stacks import trained_tensors

#: The settings members must share to be updated as one (read from each member).
SHARED_SETTINGS = (
    "n_epochs",
    "batch_size",
    "normalize_advantage",
    "max_grad_norm",
    "vf_coef",
    "ent_coef",
    "target_kl",
)


@dataclass
class Watchers:
    """What watches one member's update: its plasticity methods (from its ``MethodCallback``)
    and its metrics callbacks, and the ids of the hooks they installed.

    :param methods: the attached methods, in callback order
    :param settings: per method, its class and settings (members must agree to batch)
    :param metrics: the ``PlasticityMetrics`` callbacks
    :param method_hooks: ids of the methods' hooks
    :param metrics_hooks: ids of the metrics callbacks' hooks
    """

    methods: list[Method] = field(default_factory=list)
    settings: list[tuple] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)
    method_hooks: set[int] = field(default_factory=set)
    metrics_hooks: set[int] = field(default_factory=set)


def watchers(callback: BaseCallback | None) -> Watchers:
    """The plasticity methods and metrics callbacks in a member's callback (a list nested any
    way).

    :param callback: what the member's ``learn`` bound (``CallbackList``, a callback or None)
    """
    found = Watchers()
    pending = [callback]
    while pending:
        cb = pending.pop(0)
        if isinstance(cb, CallbackList):
            pending[:0] = cb.callbacks
        elif isinstance(cb, MethodCallback):
            for method in cb.methods.values():
                found.methods.append(method)
                found.settings.append((cb.method_class, sorted(cb.settings.items())))
                recorders = (method._recorder, method._inputs)
                handles = [*method._handles, *(h for r in recorders if r for h in r._handles)]
                found.method_hooks.update(h.id for h in handles)
        elif callable(getattr(cb, "record_gradient_norms", None)):
            # a PlasticityMetrics, known by what the batched update calls on it: the metrics
            # package builds on sb3/, so sb3/ does not import it (tests/test_layering.py)
            found.metrics.append(cb)
            found.metrics_hooks.update(h.id for h in cb._hook_handles)
    return found


def _hook_ids(policy: nn.Module, optimizer: torch.optim.Optimizer) -> set[int]:
    """The ids of every hook on the update: optimizer step hooks, module hooks, gradient
    hooks."""
    ids = {*optimizer._optimizer_step_pre_hooks, *optimizer._optimizer_step_post_hooks}
    for module in policy.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks):
            ids.update(hooks)
        ids.update(module._backward_pre_hooks)
    for param in policy.parameters():
        ids.update(getattr(param, "_post_accumulate_grad_hooks", None) or ())
    return ids


def watchers_reason(model: FastPPO, found: Watchers) -> str | None:
    """Why what watches this member's update has no batched form (None when it has).

    :param model: the member
    :param found: its :func:`watchers`
    """
    from torch.optim import optimizer as optim_module

    if optim_module._global_optimizer_pre_hooks or optim_module._global_optimizer_post_hooks:
        return "global optimizer hooks"
    unknown = _hook_ids(model.policy, model.policy.optimizer)
    unknown -= found.method_hooks | found.metrics_hooks
    if unknown:
        return "hooks on the update that are neither a plasticity method's nor the metrics'"
    for method in found.methods:
        reason = population_form_reason(method)
        if reason is not None:
            return reason
    # The batched update gives the metrics the gradient the optimizer applies, after the
    # methods' terms: what their pre-step hook sees when it runs after the methods' ones.
    pre_step = model.policy.optimizer._optimizer_step_pre_hooks
    last_method = max((h for h in found.method_hooks if h in pre_step), default=-1)
    if any(hook < last_method for hook in found.metrics_hooks if hook in pre_step):
        return "a metrics callback attached before a plasticity method"
    return None


def batched_update_reason(
    members: Sequence[FastPPO], found: Sequence[Watchers] | None = None
) -> str | None:
    """Why these members' ``train()`` cannot run as one batched update (None when it can).

    :param members: the members to update
    :param found: per member, what watches its update (:func:`watchers`); None: nothing may
    """
    first = members[0]
    found = list(found) if found is not None else [Watchers() for _ in members]
    for index, (model, watching) in enumerate(zip(members, found, strict=True)):
        optimizer = model.policy.optimizer
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
            return f"member {index}'s optimizer is not one plain torch.optim.Adam group"
        group = optimizer.param_groups[0]
        if group["amsgrad"] or group["maximize"] or group["differentiable"] or group["fused"]:
            return "Adam with amsgrad, maximize, differentiable or fused"
        reason = watchers_reason(model, watching)
        if reason is not None:
            return reason
        if watching.settings != found[0].settings:
            return "members differ in their plasticity methods or settings"
        if model.target_kl is not None:
            return "target_kl (each member may stop its epochs at a different time)"
        for name in SHARED_SETTINGS:
            if getattr(model, name) != getattr(first, name):
                return f"members differ in {name}"
        progress = (model._current_progress_remaining, first._current_progress_remaining)
        same_schedule = model.clip_range(progress[0]) == first.clip_range(progress[1]) and (
            model.lr_schedule(progress[0]) == first.lr_schedule(progress[1])
        )
        if not same_schedule or (model.clip_range_vf is None) != (first.clip_range_vf is None):
            return "members differ in learning rate or clip range at this update"
        hyper = {k: v for k, v in group.items() if k != "params"}
        first_hyper = {k: v for k, v in first.policy.optimizer.param_groups[0].items()}
        if any(hyper[k] != first_hyper[k] for k in hyper if k not in ("lr", "initial_lr")):
            return "members' Adam settings differ"
        if _adam_step(model) != _adam_step(first):
            return "members' Adam has taken different numbers of steps"
        named = {id(p) for p in model.policy.parameters()}
        if named != {id(t) for t in trained_tensors(model)}:
            return "the policy has parameters outside the actor, critic and log-std"
    return None


def _adam_step(model: FastPPO) -> float:
    state = model.policy.optimizer.state.get(model.policy.log_std)
    return 0.0 if not state else float(state["step"])
