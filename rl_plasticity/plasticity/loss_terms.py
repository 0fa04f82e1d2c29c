"""How a method's loss term reaches the gradient when the algorithm computes its loss itself.

SB3 computes its loss inside ``train()``, so :meth:`~.protocol.Method.loss_term` is added as a
gradient in an optimizer pre-step hook: :func:`recompute_features` recomputes the hidden layers'
features with gradients from the inputs the step's training forward gave the ``nn.Sequential``
containers, and :func:`add_term_gradient` adds the term's gradient to each parameter's ``.grad``.
:class:`ClipWithLoss` clips the term with the loss, as the references add it: it records the
gradient's norm before the algorithm clips it, undoes the clip's factor before the terms are added
and clips the sum as ``clip_grad_norm_`` would have clipped the loss with the terms in it. The
protocol's module docstring says when each hook runs. This module knows nothing of SB3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from rl_plasticity.plasticity.layers import HiddenLayer


def recompute_features(
    roots: Sequence[nn.Module],
    inputs: Sequence[torch.Tensor | None],
    layers: Sequence[HiddenLayer],
) -> list[torch.Tensor] | None:
    """Each hidden layer's features, recomputed with gradients from the step's inputs.

    :param roots: the ``nn.Sequential`` containers of the hidden layers
        (:func:`~.core.sequential_roots`)
    :param inputs: each root's input in the step's training forward
        (:attr:`~.core.InputRecorder.latest`)
    :param layers: the hidden layers, whose activations' outputs are the features
    :return: the features (samples x units) in the order of ``layers``, or None when a root saw
        no input
    """
    if any(x is None for x in inputs):
        return None
    by_activation = {id(layer.activation): i for i, layer in enumerate(layers)}
    features: list[torch.Tensor | None] = [None] * len(layers)
    for root, x in zip(roots, inputs, strict=True):
        for sub in root.children():
            x = sub(x)
            if id(sub) in by_activation:
                features[by_activation[id(sub)]] = x.reshape(-1, x.shape[-1])
    return [f for f in features if f is not None]


def add_term_gradient(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """Add the gradient of ``loss`` to ``.grad`` of each parameter the optimizer trains.

    :param loss: a scalar with a graph to the optimizer's parameters
    :param optimizer: the optimizer whose parameters (those requiring grad) receive it
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    with torch.no_grad():
        for param, grad in zip(params, grads, strict=True):
            if grad is None:
                continue
            if param.grad is None:
                param.grad = grad.detach()
            else:
                param.grad.add_(grad)


class ClipWithLoss:
    """Clips loss terms added in pre-step hooks with the loss, as ``clip_grad_norm_`` would have.

    :meth:`install` records each parameter's gradient norm as backward finishes it (before the
    algorithm clips) and registers :meth:`unclip` as a pre-step hook; it must come before the
    hooks that add terms. :meth:`clip_again`, registered after them, clips the sum.

    :param optimizer: the optimizer whose parameters the algorithm clips
    :param max_grad_norm: the algorithm's ``max_grad_norm`` (finite)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> None:
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.max_grad_norm = max_grad_norm
        #: squared gradient norm of each parameter in the step's backward, by ``id``
        self.squares: dict[int, torch.Tensor] = {}

    def install(self) -> list[RemovableHandle]:
        """Register the gradient hooks and :meth:`unclip` (call before the terms' hooks).

        :return: the handles, to remove on detach
        """
        squares = self.squares

        def record(param: torch.Tensor) -> None:
            squares[id(param)] = param.grad.detach().square().sum()

        handles = [p.register_post_accumulate_grad_hook(record) for p in self.params]
        handles.append(self.optimizer.register_step_pre_hook(self.unclip))
        return handles

    def unclip(self, *_: object) -> None:
        """Undo the algorithm's clip of the step's gradient (a pre-step hook)."""
        if not self.squares:
            return
        norm = float(torch.stack(list(self.squares.values())).sum().sqrt())
        # clip_grad_norm_'s clamped coefficient
        factor = min(1.0, self.max_grad_norm / (norm + 1e-6))
        if factor < 1.0:
            with torch.no_grad():
                for p in self.params:
                    if p.grad is not None:
                        p.grad.div_(factor)

    def clip_again(self, *_: object) -> None:
        """Clip the gradient with the terms added (a pre-step hook after the terms')."""
        grads = [p for p in self.params if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(grads, self.max_grad_norm)
        self.squares.clear()
