"""The torch core every unit-level method shares: activation hooks and unit surgery.

* :class:`ActivationRecorder` keeps, for each hidden layer, the output of its activation module
  from the latest forward pass run with gradients enabled: a training forward. Rollout collection
  and evaluation run under ``no_grad`` and are not kept, so after an optimizer step the recorder
  holds the features of exactly the minibatch that step learned from.
* :func:`reinit_units_` replaces units: incoming rows re-drawn, incoming bias 0, LayerNorm affine
  1/0, outgoing columns 0, and the optimizer state of exactly those rows and columns set to 0.
* :class:`InputRecorder` and :func:`sequential_roots` keep the inputs of the ``nn.Sequential``
  containers of hidden layers, from which ``Method.loss_term``'s features are recomputed.
* :func:`default_reinit` re-draws a whole network (``Method.reinit`` outside SB3).
* :func:`check_schedule` checks when a periodic or at-change method acts (``every_updates``,
  ``at_change``).

This module knows nothing of SB3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.init import reinit_linear_, uniform
from rl_plasticity.plasticity.layers import HiddenLayer
from rl_plasticity.seeding import derive_seed, torch_seed
from rl_plasticity.validate import check_bool, check_int


def new_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for a method's own draws.

    :param seed: its seed; ``None`` derives one from the seed torch's global generator was seeded
        with (``torch.manual_seed``, SB3's ``set_random_seed``), without drawing from that
        generator: attaching a method does not shift the random stream of the policy it acts on
    :return: the generator
    """
    if seed is None:
        seed = derive_seed(torch_seed(), "method")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def check_schedule(every_updates: object, at_change: object) -> tuple[int, bool]:
    """``every_updates`` (optimizer steps between events; 0: none periodically) and ``at_change``
    (act at each environment change), checked: at least one of them makes the method act.

    :param every_updates: the ``every_updates`` setting
    :param at_change: the ``at_change`` setting
    :return: ``(every_updates, at_change)``
    :raises ConfigError: for a value of the wrong type, or neither acting
    """
    period = check_int("every_updates", every_updates, 0, whole_floats=True)
    change = check_bool("at_change", at_change)
    if period == 0 and not change:
        raise ConfigError("every_updates", every_updates, "a positive period, or at_change = true")
    return period, change


class ActivationRecorder:
    """Forward hooks keeping each hidden layer's latest training-time features.

    :param layers: the hidden layers to watch (hooks go on their activation modules)
    """

    def __init__(self, layers: Sequence[HiddenLayer]) -> None:
        self.layers = list(layers)
        #: per layer, the activation output of the latest forward with grad enabled, or None
        self.latest: list[torch.Tensor | None] = [None] * len(self.layers)
        self._handles: list = []
        self.resume()

    def _hook(self, index: int):
        def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if torch.is_grad_enabled():  # a training forward; rollouts run under no_grad
                self.latest[index] = output.detach()

        return keep

    def take(self) -> list[torch.Tensor | None]:
        """The features kept since the last call, flattened to (samples, units); forgets them.

        :return: one entry per layer; None for a layer with no training forward since then
        """
        taken = [None if h is None else h.reshape(-1, h.shape[-1]) for h in self.latest]
        self.latest = [None] * len(self.layers)
        return taken

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pause(self) -> None:
        """Remove the hooks until :meth:`resume`: a module with a forward hook takes PyTorch's
        slower call path, which costs a few percent over thousands of batch-1 rollout forwards."""
        self.remove()

    def resume(self) -> None:
        """Put the hooks (back) on the activation modules."""
        if not self._handles:
            self._handles = [
                layer.activation.register_forward_hook(self._hook(i))
                for i, layer in enumerate(self.layers)
            ]


def zero_optimizer_state_(
    optimizer: torch.optim.Optimizer | None, param: torch.Tensor, index: torch.Tensor, dim: int
) -> None:
    """Zero the optimizer state of ``param``'s slices ``index`` along ``dim``.

    Every state tensor shaped like the parameter is per-element state (Adam's ``exp_avg`` and
    ``exp_avg_sq``, RMSprop's ``square_avg``, SGD's ``momentum_buffer``); scalars such as Adam's
    ``step`` are shared by all elements and left alone.

    :param optimizer: the optimizer that updates ``param``; None: nothing to zero
    :param param: the parameter
    :param index: indices along ``dim`` (a long tensor)
    :param dim: 0 for rows (incoming weights, biases), 1 for columns (outgoing weights)
    """
    state = optimizer.state.get(param) if optimizer is not None else None
    if not state:
        return
    for value in state.values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value.index_fill_(dim, index.to(value.device), 0)


def reinit_units_(
    layer: HiddenLayer,
    units: torch.Tensor,
    optimizer: torch.optim.Optimizer | None,
    bound: float,
    generator: torch.Generator,
    means: torch.Tensor | None = None,
) -> None:
    """Replace ``units`` of ``layer`` by fresh ones that do not change the network's output yet.

    Incoming weights are drawn from U(-bound, bound), the incoming bias is 0, LayerNorm affine
    weight/bias are 1/0, outgoing weights are 0, and the optimizer state of exactly those entries
    is 0 (Dohare et al. 2024, Algorithm 1).

    :param layer: the hidden layer
    :param units: indices of the units to replace (a long tensor)
    :param optimizer: the optimizer updating the layer's parameters; None leaves every
        optimizer state as it is
    :param bound: half-width of the incoming weights' initial distribution
    :param generator: random source for the new weights
    :param means: if given, each unit's mean activation: ``W_out[:, i] * mean_i`` is added to the
        outgoing layers' biases before the column is zeroed (the paper's mean correction), so the
        next layer's average input is unchanged
    """
    with torch.no_grad():
        weight = layer.incoming.weight
        rows = units.to(weight.device)
        weight[rows] = uniform((len(units), weight.shape[1]), bound, generator, weight)
        zero_optimizer_state_(optimizer, weight, rows, 0)
        bias = layer.incoming.bias
        if bias is not None:
            bias.index_fill_(0, rows, 0)
            zero_optimizer_state_(optimizer, bias, rows, 0)
        norm = layer.layer_norm
        if norm is not None and norm.elementwise_affine:
            norm.weight.index_fill_(0, rows, 1)
            zero_optimizer_state_(optimizer, norm.weight, rows, 0)
            if norm.bias is not None:
                norm.bias.index_fill_(0, rows, 0)
                zero_optimizer_state_(optimizer, norm.bias, rows, 0)
        for out in layer.outgoing:
            if means is not None and out.bias is not None:
                out.bias.add_(out.weight[:, rows] @ means[rows].to(out.weight))
            out.weight.index_fill_(1, rows, 0)
            zero_optimizer_state_(optimizer, out.weight, rows, 1)


def default_reinit(module: nn.Module, init: str, generator: torch.Generator) -> None:
    """Re-draw every Linear and LayerNorm of ``module``: ``init`` ``"default"`` calls each
    submodule's own ``reset_parameters()`` (torch's defaults, torch's global generator); another
    name draws Linears from that distribution (``init.reinit_linear_``) with ``generator``.

    :param module: the network, changed in place
    :param init: ``"default"`` or a name of ``init.INITS``
    :param generator: random source for named distributions
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear) and init != "default":
            reinit_linear_(sub, init, generator)
        elif isinstance(sub, (nn.Linear, nn.LayerNorm)):
            sub.reset_parameters()


class InputRecorder:
    """Forward pre-hooks keeping the input of each watched module's latest training forward.

    :param modules: the modules to watch (the ``nn.Sequential`` containers of hidden layers)
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)
        self.latest: list[torch.Tensor | None] = [None] * len(self.modules)
        self._handles: list = []
        self.resume()

    def _hook(self, index: int):
        def keep(module: nn.Module, inputs: tuple) -> None:
            if torch.is_grad_enabled():
                self.latest[index] = inputs[0].detach()

        return keep

    def resume(self) -> None:
        """Put the hooks (back) on the modules."""
        if not self._handles:
            self._handles = [
                m.register_forward_pre_hook(self._hook(i)) for i, m in enumerate(self.modules)
            ]

    def pause(self) -> None:
        """Remove the hooks until :meth:`resume`."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def sequential_roots(module: nn.Module, layers: Sequence[HiddenLayer]) -> list[nn.Module]:
    """The ``nn.Sequential`` containers that hold ``layers``, in order, each once.

    :param module: the network the layers' names are relative to
    :param layers: hidden layers of ``module``
    :return: the containers
    """
    roots: list[nn.Module] = []
    for layer in layers:
        parent = layer.name.rpartition(".")[0]
        root = module.get_submodule(parent) if parent else module
        if all(root is not r for r in roots):
            roots.append(root)
    return roots
