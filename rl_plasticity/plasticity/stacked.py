"""Member stacks: the parameters of P networks of one architecture, stacked along a leading member
dimension, as a method's population form sees them (``Method.stacked_before_step`` and
``Method.stacked_after_step``).

A population (the PPO engine's batched update, the supervised population) trains the stacks;
each member's method instance stays attached to that member's own network and keeps its own
state. Per-update work that is elementwise or per unit runs on the stacks for all members at
once; a discrete event (a unit replaced) runs for the member concerned on :meth:`MemberStacks.layer`
(views of that member's slices of the stacks) and :meth:`MemberStacks.member_optimizer` (views of
its slice of the optimizer state), so that it lands in the stacks.

This module knows nothing of SB3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rl_plasticity.plasticity.layers import HiddenLayer
from rl_plasticity.plasticity.protocol import Method, implements


@dataclass
class MemberOptimizerView:
    """Member ``k``'s slice of a stacked optimizer's per-element state, keyed by the member's
    view tensors: what ``core.zero_optimizer_state_`` reads (``optimizer.state[param]``).

    :param state: view tensor -> its state (views of the stacked state's member slice)
    """

    state: dict[torch.Tensor, dict[str, Any]] = field(default_factory=dict)


@dataclass
class MemberStacks:
    """P members' parameters as stacks, with what a method's population form needs.

    :param stacks: the stacked parameters, each (P, *shape)
    :param members: per member, its own parameter objects in the order of ``stacks`` (a member's
        method knows its network by these)
    :param optimizer: the optimizer that trains the stacks (its per-element state is stacked
        too), or None
    :param features: the latest training forward's features of each hidden layer, (P, batch,
        units), keyed by the position in ``stacks`` of the layer's incoming weight
    :param group_state: what a method's population form keeps for as long as these stacks live
        (built on its first step on them, so that later steps do no per-member work), keyed by
        member 0's instance of the method
    """

    stacks: list[torch.Tensor]
    members: list[list[torch.Tensor]]
    optimizer: torch.optim.Optimizer | None = None
    features: dict[int, torch.Tensor] = field(default_factory=dict)
    group_state: dict[Method, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._position = {id(p): j for params in self.members for j, p in enumerate(params)}

    @property
    def population(self) -> int:
        """P, the number of members."""
        return len(self.members)

    def position(self, param: torch.Tensor) -> int:
        """The position in :attr:`stacks` of a member's parameter.

        :param param: any member's parameter
        :raises KeyError: for a tensor that is not one of them
        """
        return self._position[id(param)]

    def stack(self, param: torch.Tensor) -> torch.Tensor:
        """The stack that holds a member's parameter (P, *shape).

        :param param: any member's parameter
        """
        return self.stacks[self.position(param)]

    def layer_features(self, layer: HiddenLayer) -> torch.Tensor | None:
        """A hidden layer's features on the latest training forward, (P, batch, units), or None.

        :param layer: the layer, on any member's network
        """
        return self.features.get(self.position(layer.incoming.weight))

    def _view(self, linear: nn.Linear, k: int) -> nn.Linear:
        """Member ``k``'s slice of a Linear's stacks, as an ``nn.Linear`` of views."""
        # Built on the meta device: no initial draw from torch's global generator.
        view = nn.Linear(linear.in_features, linear.out_features, linear.bias is not None, "meta")
        view.weight = nn.Parameter(self.stack(linear.weight).detach()[k])
        if linear.bias is not None:
            view.bias = nn.Parameter(self.stack(linear.bias).detach()[k])
        return view

    def layer(self, layer: HiddenLayer, k: int) -> HiddenLayer:
        """Member ``k``'s slices of a hidden layer (incoming and outgoing Linears as views of the
        stacks): what a discrete event on member ``k`` changes.

        :param layer: the layer, on any member's network (Linears and an activation only)
        :param k: the member's index
        """
        if layer.layer_norm is not None:
            raise ValueError(f"layer {layer.name}: a LayerNorm has no member stacks")
        outgoing = [self._view(out, k) for out in layer.outgoing]
        return HiddenLayer(layer.name, self._view(layer.incoming, k), layer.activation, outgoing)

    def member_optimizer(self, k: int, params: Sequence[torch.Tensor]) -> MemberOptimizerView:
        """Member ``k``'s slice of the stacked optimizer's per-element state, for the view
        tensors ``params`` (from :meth:`layer`): zeroing it zeroes the stacks' state.

        :param k: the member's index
        :param params: views of member ``k``'s slices (each the ``k``-th slice of a stack)
        """
        view = MemberOptimizerView()
        if self.optimizer is None:
            return view
        for param in params:
            stack = next(s for s in self.stacks if _is_slice(param, s, k))
            state = self.optimizer.state.get(stack)
            if state:
                view.state[param] = {
                    key: value[k] for key, value in state.items() if _shaped(value, stack)
                }
        return view


def _shaped(value: Any, stack: torch.Tensor) -> bool:
    """Whether an optimizer state value is per element of ``stack`` (Adam's moments; not its
    step count)."""
    return torch.is_tensor(value) and value.shape == stack.shape


def _is_slice(view: torch.Tensor, stack: torch.Tensor, k: int) -> bool:
    """Whether ``view`` is ``stack[k]`` (same memory, same shape)."""
    return view.shape == stack.shape[1:] and view.data_ptr() == stack[k].data_ptr()


def shared_stack(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """The stack whose slices ``tensors`` are (member k's in slice k), or, when they are not
    (yet), a new stack of their values and its slices to put in their place. Member state kept
    as slices of one stack is updated for all members by one operation and read by each member's
    own code (its ``state_dict``, its discrete events) as before.

    :param tensors: one tensor per member, of one shape
    :return: the stack, and None, or the views the caller puts in place of ``tensors``
    """
    base = tensors[0]._base
    if (
        base is not None
        and base.shape[0] == len(tensors)
        and all(t._base is base and _is_slice(t, base, k) for k, t in enumerate(tensors))
    ):
        return base, None
    stack = torch.stack(list(tensors))
    return stack, list(stack.unbind(0))


def population_form_reason(method: Method) -> str | None:
    """Why a method's update hooks cannot run on member stacks (None when they can).

    :param method: an attached method
    :return: a short reason, or None
    """
    hooks = [h for h in ("loss_term", "before_step", "after_step") if implements(method, h)]
    if hooks and not type(method).population_form:
        return f"method {type(method).__name__} has no population form (of {', '.join(hooks)})"
    return None
