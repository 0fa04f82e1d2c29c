"""Rewriting an MLP's hidden layers in place: shared by the architecture methods.

LayerNorm, Normalize-and-Project, CReLU, deep Fourier features and plasticity injection change
the hidden layers of a network made of ``nn.Sequential`` containers (what SB3 and most MLP code
build): a hidden layer is an ``nn.Linear`` directly followed by an elementwise activation module
(``layers.ACTIVATIONS``), as in :func:`rl_plasticity.plasticity.layers.find_hidden_layers`.

A Linear -> activation pair that ends its Sequential is a hidden layer when the network has
Linears outside every Sequential (the heads that read it: PPO's ``action_net`` / ``value_net``,
SAC's ``mu`` / ``log_std``); without such heads it is the network's output (TD3's
``Linear -> Tanh``) and is left alone. The heads that read a Sequential's last hidden layer are
the Linears outside every Sequential whose ``in_features`` equal that layer's width (SB3 keeps
its heads in attributes, so the data flow between them cannot be read from the modules).

This module knows nothing of SB3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from rl_plasticity.plasticity.layers import ACTIVATIONS
from rl_plasticity.plasticity.protocol import Method
from rl_plasticity.validate import check_choice


@dataclass
class Pair:
    """A hidden layer as found in a Sequential: ``seq[index]`` is the Linear, the activation is
    ``seq[index + 1]``; ``readers`` are the Linears that read its features.

    :param seq: the Sequential holding the layer
    :param index: position of the Linear in ``seq``
    :param readers: the next Linear in ``seq``, or the heads outside every Sequential
    """

    seq: nn.Sequential
    index: int
    readers: list[nn.Linear] = field(default_factory=list)

    @property
    def linear(self) -> nn.Linear:
        """The layer's incoming Linear."""
        return self.seq[self.index]


def _sequentials(module: nn.Module) -> list[nn.Sequential]:
    return [m for m in module.modules() if isinstance(m, nn.Sequential)]


def outside_linears(module: nn.Module) -> list[nn.Linear]:
    """The Linears of ``module`` that are not inside any ``nn.Sequential`` (the heads).

    :return: those Linears, in registration order
    """
    inside = {id(m) for seq in _sequentials(module) for m in seq.modules()}
    return [m for m in module.modules() if isinstance(m, nn.Linear) and id(m) not in inside]


def hidden_pairs(module: nn.Module) -> list[Pair]:
    """Every hidden layer of ``module`` as a :class:`Pair` (see the module docstring).

    :return: the hidden layers, in registration order
    """
    heads = outside_linears(module)
    pairs: list[Pair] = []
    for seq in _sequentials(module):
        items = list(seq)
        for i, item in enumerate(items[:-1]):
            if not (isinstance(item, nn.Linear) and isinstance(items[i + 1], ACTIVATIONS)):
                continue
            following = [m for m in items[i + 2 :] if isinstance(m, nn.Linear)]
            if following:
                readers = following[:1]
            else:
                readers = [h for h in heads if h.in_features == item.out_features]
            if readers:
                pairs.append(Pair(seq, i, readers))
    return pairs


def replace_module(module: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``old`` is registered in ``module`` (every place it is).

    :param old: a submodule of it
    :param new: its replacement
    :raises ValueError: if ``old`` is not a submodule of ``module``
    """
    places = [
        (parent, name)
        for parent in module.modules()
        for name, child in parent.named_children()
        if child is old
    ]
    if not places:
        raise ValueError(f"{type(old).__name__} is not a submodule of {type(module).__name__}")
    for parent, name in places:  # found first: ``new`` may hold ``old``
        setattr(parent, name, new)


def resized_linear(linear: nn.Linear, in_features: int, out_features: int) -> nn.Linear:
    """A new Linear of the given sizes, on ``linear``'s device and dtype, with a bias if it had
    one, drawn as ``nn.Linear`` draws (torch's default initialization).

    :param linear: the Linear it replaces
    :param in_features: fan-in of the new Linear
    :param out_features: units of the new Linear
    :return: the new Linear
    """
    w = linear.weight
    return nn.Linear(
        in_features, out_features, bias=linear.bias is not None, device=w.device, dtype=w.dtype
    )


#: How a concatenating activation (CReLU, Fourier features) that doubles the features is fitted:
#: ``"double_fan_in"`` keeps each layer's units and doubles the fan-in of the Linears that read
#: them; ``"halve_units"`` halves each layer's units so that the features (and every reader) keep
#: their size (about half the parameters); ``"match_parameters"`` doubles the readers' fan-in and
#: removes the same fraction of every hidden layer's units, the largest fraction (on a grid of
#: 1%) that leaves at least the original number of parameters, as Kumar et al. 2023 fit their
#: Concat ReLU networks (App. A.1.3: 9% of the units of their 784-100-100-10 MLP).
WIDTHS = ("double_fan_in", "halve_units", "match_parameters")


def _parameter_matched_units(module: nn.Module, pairs: list[Pair]) -> list[int]:
    """Each hidden layer's units under ``"match_parameters"`` (see :data:`WIDTHS`)."""
    total = sum(p.numel() for p in module.parameters())
    linears = {id(p.linear): p.linear for p in pairs}
    linears.update({id(r): r for p in pairs for r in p.readers})
    fixed = total - sum(sum(t.numel() for t in m.parameters()) for m in linears.values())
    chosen = [p.linear.out_features for p in pairs]
    for percent in range(1, 100):
        units = [max(1, round(p.linear.out_features * (100 - percent) / 100)) for p in pairs]
        out = {id(p.linear): u for p, u in zip(pairs, units, strict=True)}
        fan_in = {id(r): 2 * u for p, u in zip(pairs, units, strict=True) for r in p.readers}
        count = fixed + sum(
            fan_in.get(k, m.in_features) * out.get(k, m.out_features)
            + (out.get(k, m.out_features) if m.bias is not None else 0)
            for k, m in linears.items()
        )
        if count < total:
            break
        chosen = units
    return chosen


def concat_activations(module: nn.Module, make: type[nn.Module], width: str) -> list[nn.Module]:
    """Replace every hidden activation of ``module`` by ``make()``, an activation that returns
    twice as many features as it gets, and resize the Linears around it (see :data:`WIDTHS`).

    Resized Linears are new modules drawn as ``nn.Linear`` draws; the network must be built
    again from these modules' parameters (SB3: the policy classes build the optimizer after).

    :param make: the activation's class (no arguments)
    :param width: one of :data:`WIDTHS`
    :return: the new activation modules
    :raises ValueError: for ``"halve_units"`` with a layer of an odd number of units, or when the
        network has no hidden layer
    """
    pairs = hidden_pairs(module)
    if not pairs:
        raise ValueError(
            f"no hidden layer (a Linear followed by an activation module in an nn.Sequential) "
            f"in {type(module).__name__}"
        )
    made: list[nn.Module] = []
    for pair in pairs:
        activation = make()
        pair.seq[pair.index + 1] = activation
        made.append(activation)
    if width == "halve_units":
        for pair in pairs:
            linear = pair.linear
            if linear.out_features % 2:
                raise ValueError(
                    f"width 'halve_units' needs an even number of units; a layer has "
                    f"{linear.out_features}"
                )
            pair.seq[pair.index] = resized_linear(
                linear, linear.in_features, linear.out_features // 2
            )
        return made
    units = [p.linear.out_features for p in pairs]
    if width == "match_parameters":
        units = _parameter_matched_units(module, pairs)
    out = {id(p.linear): u for p, u in zip(pairs, units, strict=True)}
    fan_in = {id(r): 2 * u for p, u in zip(pairs, units, strict=True) for r in p.readers}
    linears = {id(p.linear): p.linear for p in pairs}
    linears.update({id(r): r for p in pairs for r in p.readers})
    for key, linear in linears.items():
        shape = (fan_in.get(key, linear.in_features), out.get(key, linear.out_features))
        if shape != (linear.in_features, linear.out_features):
            replace_module(module, linear, resized_linear(linear, *shape))
    return made


class ConcatActivationMethod(Method):
    """Base of the methods that put an activation of twice the features in place of every hidden
    activation (CReLU, deep Fourier features); a subclass sets :attr:`activation`.

        :meth:`build_network`)
    :param width: ``"double_fan_in"`` (keep the units, readers get twice the inputs; the
        default, as CReLU and phi are defined), ``"halve_units"`` (half the units, the same
        number of features) or ``"match_parameters"`` (fewer units, readers get twice the
        inputs, at least the original parameter count: Kumar et al.'s width-matched Concat ReLU)
    """

    #: the activation's class (no arguments), returning twice the features it gets
    activation: ClassVar[type[nn.Module]]

    def __init__(
        self,
        *,
        width: str = "double_fan_in",
    ) -> None:
        self.width = check_choice("width", width, WIDTHS)
        super().__init__()

    def build_network(self, module: nn.Module) -> nn.Module:
        """Put :attr:`activation` in place of every hidden activation and resize the Linears
        around it (:func:`concat_activations`).

        :return: ``module``, changed in place
        """
        concat_activations(module, self.activation, self.width)
        return module
