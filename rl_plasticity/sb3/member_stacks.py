"""The policy's networks as steps, one member's or many members' stacked: what the engine's core
(:mod:`rl_plasticity.sb3.engine_core`) runs instead of module calls.

* :func:`lean_steps` and :func:`run_steps`: one member's actor or critic as (function, tensors)
  pairs bound to its live parameters, computing what the layers' ``forward`` computes without
  module calls (so without forward hooks).
* :func:`stacked_forward`: the members' networks on a member dimension, one ``torch.baddbmm``
  per Linear for all members.
* :class:`RolloutStacks`: the members' actor and critic parameters stacked for the rollout's
  batched forward, stacked again when a member's tensor changes.
* :class:`UpdateStacks`: P members' update on stacks: their trained parameters and Adam state
  as stacks with gradients, their plasticity methods in population form, their metrics'
  gradient norms; copied back into the members afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from rl_plasticity.plasticity.protocol import Method, implements
from rl_plasticity.plasticity.stacked import MemberStacks

if TYPE_CHECKING:
    from rl_plasticity.sb3.fast_ppo import FastPPO

#: One network as steps: (function, the tensors it takes after its input).
Steps = list[tuple[Callable, tuple]]


def lean_steps(net: nn.Sequential, head: nn.Linear) -> Steps:
    """``net`` then ``head`` as (function, tensors) pairs that compute what their ``forward``
    computes, bound to the live parameters, without module calls (so without forward hooks).

    :param net: a Sequential of Linears and activations
    :param head: the Linear reading its last layer
    :return: the steps, for :func:`run_steps`
    """
    steps: Steps = []
    for layer in [*net, head]:
        if isinstance(layer, nn.Linear):
            steps.append((F.linear, (layer.weight, layer.bias)))
        elif type(layer) is nn.ReLU and not layer.inplace:
            steps.append((torch.relu, ()))
        else:
            steps.append((layer.forward, ()))
    return steps


def run_steps(steps: Steps, x: torch.Tensor) -> torch.Tensor:
    """Apply the steps of :func:`lean_steps` to ``x``.

    :param steps: one network's steps
    :param x: its input, (batch, in)
    :return: its output, (batch, out)
    """
    for function, tensors in steps:
        x = function(x, *tensors)
    return x


def policy_steps(model: FastPPO) -> tuple[Steps, Steps]:
    """The model's actor (Gaussian mean) and critic as :func:`lean_steps`.

    :param model: a FastPPO on the fast path
    :return: (actor steps, critic steps)
    """
    policy = model.policy
    return (
        lean_steps(policy.mlp_extractor.policy_net, policy.action_net),
        lean_steps(policy.mlp_extractor.value_net, policy.value_net),
    )


def trained_tensors(model: FastPPO) -> list[torch.Tensor]:
    """The parameters in the order the batched update stacks them: actor steps, critic steps,
    log-std.

    :param model: a FastPPO on the fast path
    """
    pi, vf = policy_steps(model)
    return [t for _, tensors in pi + vf for t in tensors] + [model.policy.log_std]


def stacked_forward(
    steps: Steps,
    tensors: Sequence[Sequence[torch.Tensor]],
    x: torch.Tensor,
    transposed: bool = False,
    record: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the members' networks on ``x`` (P, batch, in) as batched products.

    :param steps: one member's :func:`lean_steps` (the functions; linears become ``baddbmm``)
    :param tensors: per step, the stacked tensors (weight (P, out, in), bias (P, out)) or ()
    :param x: the members' inputs
    :param transposed: the weights are stacked transposed, (P, in, out) (contiguous: read in
        order by the batch-1 product, about a tenth faster than through a transposed view)
    :param record: called with (step index, output) after each activation step
    :return: (P, batch, out)
    """
    for index, ((function, _), stacked) in enumerate(zip(steps, tensors, strict=True)):
        if stacked:
            weight, bias = stacked
            weight = weight if transposed else weight.transpose(1, 2)
            x = torch.baddbmm(bias.unsqueeze(1), x, weight)
        else:
            x = function(x)
            if record is not None:
                record(index, x)
    return x


def _stack_steps(per_member: Sequence[Steps]) -> list[tuple]:
    """Per step, the members' tensors stacked along a new first dimension, weights transposed
    to (P, in, out)."""
    stacked = []
    for i in range(len(per_member[0])):
        groups = zip(*(steps[i][1] for steps in per_member), strict=True)
        tensors = [torch.stack(group) for group in groups]
        if tensors:  # a Linear: (weight, bias)
            tensors[0] = tensors[0].transpose(1, 2).contiguous()
        stacked.append(tuple(tensors))
    return stacked


class RolloutStacks:
    """The members' actor and critic parameters stacked for the batched rollout forward, stacked
    again whenever a member's tensor is changed in place (``_version``).

    :param pi_steps: per member, its actor's steps (bound at rollout start)
    :param vf_steps: per member, its critic's steps
    """

    def __init__(self, pi_steps: Sequence[Steps], vf_steps: Sequence[Steps]) -> None:
        self.pi_steps, self.vf_steps = list(pi_steps), list(vf_steps)
        # The steps are bound at rollout start: in-place changes are what can follow.
        self.tensors = [
            t for steps in (*self.pi_steps, *self.vf_steps) for _, tensors in steps for t in tensors
        ]
        self._keys: list[int] = []
        self.pi: list[tuple] = []
        self.vf: list[tuple] = []

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' Gaussian means and values for ``obs`` (P, n, obs_dim), from parameters
        as they are now."""
        key = [t._version for t in self.tensors]
        if key != self._keys:
            self._keys = key
            self.pi = _stack_steps(self.pi_steps)
            self.vf = _stack_steps(self.vf_steps)
        mean = stacked_forward(self.pi_steps[0], self.pi, obs, transposed=True)
        return mean, stacked_forward(self.vf_steps[0], self.vf, obs, transposed=True)


class UpdateStacks:
    """P members' update on stacks (the engine core's ``UpdateNetworks`` for a population): their
    trained parameters (:func:`trained_tensors`) as leaf stacks with gradients, one Adam over them
    holding the members' moments (per-member Adam: Adam is elementwise and every member has taken
    the same number of steps), the members' plasticity methods in their population forms
    (``Method.stacked_before_step`` / ``stacked_after_step``, on
    :class:`~rl_plasticity.plasticity.stacked.MemberStacks`), and the gradient norms the members'
    metrics callbacks record (their ``record_gradient_norms``). Parameters and moments are copied
    back into the members by :meth:`finish`.

    :param members: members on one plain ``torch.optim.Adam`` group each, with equal settings
    :param methods: per member, its attached methods (the same classes and settings for every
        member, each with a population form)
    :param metrics: per member, its metrics callbacks
    """

    def __init__(
        self,
        members: Sequence[FastPPO],
        methods: Sequence[Sequence[Method]] = (),
        metrics: Sequence[Sequence[Any]] = (),
    ) -> None:
        self.members = list(members)
        self.per_member = [trained_tensors(m) for m in members]
        self.stacks = [
            torch.stack(group).detach().requires_grad_()
            for group in zip(*self.per_member, strict=True)
        ]
        self.optimizer = self._adam()
        self.max_grad_norm = members[0].max_grad_norm
        pi, vf = policy_steps(members[0])
        self.pi_steps, self.vf_steps = pi, vf
        tensors, position, weights = [], 0, []
        for _, bound in pi + vf:
            tensors.append(tuple(self.stacks[position : position + len(bound)]))
            weights.append(position if bound else None)
            position += len(bound)
        self.pi, self.vf = tensors[: len(pi)], tensors[len(pi) :]
        self.log_std = self.stacks[-1]
        #: per step of the actor and the critic, the stack position of the Linear before it
        self._feature_keys = [None, *weights[:-1]]
        self.member_stacks = MemberStacks(self.stacks, self.per_member, self.optimizer)
        # The n-th method of every member, together (one population form call each).
        self.methods = [list(group) for group in zip(*methods, strict=True)] if methods else []
        self.metrics = [list(m) for m in metrics]

    def _adam(self) -> torch.optim.Adam:
        """One Adam over the stacks, with the members' hyperparameters and moments."""
        first = self.members[0].policy.optimizer.param_groups[0]
        group = {k: v for k, v in first.items() if k not in ("params", "initial_lr")}
        group["foreach"] = True
        optimizer = torch.optim.Adam(self.stacks, **group)
        for j, stack in enumerate(self.stacks):
            states = [
                m.policy.optimizer.state.get(self.per_member[i][j])
                for i, m in enumerate(self.members)
            ]
            if not states[0]:
                continue
            optimizer.state[stack] = {
                "step": states[0]["step"].clone(),
                "exp_avg": torch.stack([s["exp_avg"] for s in states]),
                "exp_avg_sq": torch.stack([s["exp_avg_sq"] for s in states]),
            }
        return optimizer

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' Gaussian means (P, batch, actions) and values (P, batch); each hidden
        layer's features kept for the methods (as ``ActivationRecorder`` keeps a training
        forward's)."""
        features = self.member_stacks.features
        n_pi = len(self.pi_steps)

        def record_pi(index: int, x: torch.Tensor) -> None:
            features[self._feature_keys[index]] = x.detach()

        def record_vf(index: int, x: torch.Tensor) -> None:
            features[self._feature_keys[n_pi + index]] = x.detach()

        mean = stacked_forward(self.pi_steps, self.pi, obs, record=record_pi)
        values = stacked_forward(self.vf_steps, self.vf, obs, record=record_vf)
        return mean, values.squeeze(-1)

    def step(self, loss: torch.Tensor) -> None:
        """The members' gradients, their methods' terms, clipping per member, one Adam step, the
        methods' after-step work: the order of a single run's ``train()`` and its optimizer
        hooks (plasticity/protocol.py), to float rounding (a loss term is added before the clip
        instead of the clip being undone for it)."""
        self.optimizer.zero_grad(set_to_none=False)
        loss.sum().backward()
        for group in self.methods:
            if _adds_loss(group[0]):
                type(group[0]).stacked_before_step(group, self.member_stacks)
        self._clip_per_member()
        for group in self.methods:
            if implements(group[0], "before_step") and not _adds_loss(group[0]):
                type(group[0]).stacked_before_step(group, self.member_stacks)
        self.optimizer.step()
        for group in self.methods:
            for method in group:
                method.steps += 1
            type(group[0]).stacked_after_step(group, self.member_stacks)
        self.member_stacks.features.clear()

    def _clip_per_member(self) -> None:
        """``clip_grad_norm_`` for each member: its own norm over all its gradients, its own
        factor (at most 1, as torch clamps it; a factor of exactly 1 changes nothing)."""
        norms = torch.stack([s.grad.flatten(1).norm(dim=1) for s in self.stacks]).norm(dim=0)
        factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        if bool((factor < 1).any()):
            for stack in self.stacks:
                stack.grad.mul_(factor.view(-1, *([1] * (stack.dim() - 1))))

    def finish(self) -> None:
        """Copy the stacks' values and Adam's moments back into each member; hand each member's
        metrics callbacks the norms of its last step's gradients."""
        norms = [s.grad.flatten(1).norm(dim=1) for s in self.stacks]
        with torch.no_grad():
            for j, stack in enumerate(self.stacks):
                state = self.optimizer.state[stack]
                for i, model in enumerate(self.members):
                    param = self.per_member[i][j]
                    param.copy_(stack[i])
                    model.policy.optimizer.state[param] = {
                        "step": state["step"].clone(),
                        "exp_avg": state["exp_avg"][i].clone(),
                        "exp_avg_sq": state["exp_avg_sq"][i].clone(),
                    }
        for i, (model, callbacks) in enumerate(zip(self.members, self.metrics, strict=False)):
            by_param = {id(p): norms[j][i] for j, p in enumerate(self.per_member[i])}
            for callback in callbacks:
                callback.record_gradient_norms(model.policy.optimizer, by_param)


def _adds_loss(method: Method) -> bool:
    """Whether a method's pre-step work is a loss term's gradient (clipped with the loss)."""
    return implements(method, "loss_term") or (
        method.before_step_is_loss and implements(method, "before_step")
    )
