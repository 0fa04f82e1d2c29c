"""Normalize-and-Project (Lyle, Zheng, Khetarpal, Martens, van Hasselt, Pascanu and Dabney,
*Normalization and effective learning rates in reinforcement learning*, NeurIPS 2024,
arXiv 2407.01800).

Normalization makes a layer's output invariant to the scale of its incoming weights, and then
the weights' norm grows during training, which silently decays the *effective* learning rate
(eta_eff ~ eta / ||W||^2) and costs plasticity. NaP keeps the effective learning rate fixed:

1. *Normalize*: a LayerNorm before each hidden nonlinearity (here as the ``layernorm`` method,
   ``LayerNorm(z)`` with learned scale and offset).
2. *Project*: after every optimizer step, each normalized layer's weight matrix is put back on the
   sphere of its initial norm,

       W_l <- ||W_l^(0)||_F * W_l / ||W_l||_F

   which undoes the growth of ||W_l||. It leaves the function computed unchanged only when the
   layer's bias is zero: LayerNorm(c W x + b) = LayerNorm(W x + b / c) (up to its eps), so with a
   nonzero bias b, rescaling W alone acts like rescaling b by 1 / c and changes the output
   (``tests/test_methods_reference.py`` shows both cases). The spec's LeCun-uniform
   initialization starts the biases at zero, but they are trained.

By default the projected matrices are the incoming weights of the hidden layers that have a
LayerNorm (``HiddenLayer.incoming.weight``); biases are left alone. Two variants are options:
``project_output=True`` also projects the output Linears' weights (no normalization follows them,
so this changes the function more), and ``project_affine=True`` projects each LayerNorm's scale
and offset jointly, (gamma, beta) <- ||(gamma_0, beta_0)|| (gamma, beta) / ||(gamma, beta)||,
which with a positively homogeneous activation (ReLU) only rescales the layer's output.
Untraced: whether the paper projects the output layer and the LayerNorm's scale and offset, and
how it treats the biases (only its abstract and introduction could be read here; Plasticine's NaP
scripts do both variants), so the defaults are the smallest form, marked untraced in
``docs/provenance.md``. ||.^(0)|| is measured when the method attaches (SB3: at the start of the
first ``learn()``, after the agent spec's ``init``) and saved in the method's state so a resumed
run projects onto the same norms. No paper setting for PPO: ``agents/ppo-nap.toml`` keeps the PPO
spec's; the paper's agents train NaP networks with Adam (the digits table runs it on both bases).

Hooks: ``build_network`` (the LayerNorms; SB3: carried by ``rl_plasticity.sb3.policies``) and
``after_step`` (the projection).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rl_plasticity.plasticity.layernorm import insert_layer_norms
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_bool, check_number


def _norm(group: list[torch.Tensor]) -> float:
    """The joint Euclidean norm of ``group``'s entries."""
    return float(torch.stack([t.detach().norm() for t in group]).norm())


@register_method("nap")
class NormalizeAndProject(Method):
    """LayerNorm before each hidden activation; after each step, each normalized layer's weights
    are projected back to their initial Frobenius norm.

        :meth:`attach` later
    :param elementwise_affine: LayerNorm's learned scale and offset
    :param eps: LayerNorm's epsilon
    :param project_output: also project the output Linears' weights
    :param project_affine: also project each LayerNorm's (scale, offset) jointly
    """

    needs_layers = True

    def __init__(
        self,
        *,
        elementwise_affine: bool = True,
        eps: float = 1e-5,
        project_output: bool = False,
        project_affine: bool = False,
    ) -> None:
        self.elementwise_affine = check_bool("elementwise_affine", elementwise_affine)
        self.project_output = check_bool("project_output", project_output)
        self.project_affine = check_bool("project_affine", project_affine)
        self.eps = check_number("eps", eps, 0.0, low_open=True)
        #: each projected group of tensors (one matrix, or a LayerNorm's scale and offset)
        self.weights: list[list[torch.Tensor]] = []
        self.norms: list[float] = []
        super().__init__()

    def build_network(self, module: nn.Module) -> nn.Module:
        """Insert a LayerNorm between each hidden Linear and its activation.

        :return: ``module``, changed in place
        """
        insert_layer_norms(module, self.eps, self.elementwise_affine)
        return module

    def setup(self) -> None:
        normalized = [layer for layer in self.layers if layer.layer_norm is not None]
        if not normalized:
            raise ValueError(
                f"{type(self).__name__} found no hidden layer with a LayerNorm: build the "
                "network with build_network (SB3: the policy from method_policy)"
            )
        self.weights = [[layer.incoming.weight] for layer in normalized]
        if self.project_output:
            incoming = {id(layer.incoming) for layer in self.layers}
            outputs = {id(o): o for layer in self.layers for o in layer.outgoing}
            self.weights += [[o.weight] for k, o in outputs.items() if k not in incoming]
        if self.project_affine:
            self.weights += [
                [p for p in (layer.layer_norm.weight, layer.layer_norm.bias) if p is not None]
                for layer in normalized
                if layer.layer_norm.elementwise_affine
            ]
        self.norms = [_norm(group) for group in self.weights]

    def after_step(self) -> None:
        self.project()

    def project(self) -> None:
        """Put each normalized layer's weights back on the sphere of its initial norm."""
        with torch.no_grad():
            for group, norm in zip(self.weights, self.norms, strict=True):
                scale = norm / max(_norm(group), 1e-12)
                for tensor in group:
                    tensor.mul_(scale)

    def state_dict(self) -> dict[str, Any]:
        """The step count and the initial norms."""
        return {**super().state_dict(), "norms": list(self.norms)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (the initial norms of the first attach)."""
        super().load_state_dict(state)
        self.norms = [float(n) for n in state["norms"]]
