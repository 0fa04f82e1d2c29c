"""Find the hidden layers of a module: chains Linear -> [LayerNorm] -> activation -> Linear(s).

A hidden layer is the ``out_features`` units of one ``nn.Linear`` (its *incoming* weights are the
rows of that Linear), seen through one activation module, and read by one or more *outgoing*
Linears (their columns). Chains are found inside ``nn.Sequential`` containers, where the order is
the data flow. The last hidden layer of a Sequential usually feeds heads that live outside it (PPO's
``action_net``, SAC's ``mu`` and ``log_std``): pass them as ``heads``.

This module knows nothing of SB3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

from rl_plasticity.catalog import activation_classes

#: Elementwise activations a hidden layer may have (``rl_plasticity.catalog.ACTIVATIONS``). Units
#: of others (softmax) are not independent.
ACTIVATIONS: tuple[type[nn.Module], ...] = activation_classes()


@dataclass
class HiddenLayer:
    """One hidden layer: its units are the rows of ``incoming`` and the columns of ``outgoing``.

    :param name: dotted name of the incoming Linear within the searched module (``"0"``,
        ``"mlp_extractor.policy_net.2"``)
    :param incoming: the Linear that computes the units' pre-activations
    :param activation: the activation module whose output is the layer's features
    :param outgoing: every Linear that reads these units (several when a layer feeds several heads)
    :param layer_norm: a LayerNorm between ``incoming`` and ``activation``, if any
    """

    name: str
    incoming: nn.Linear
    activation: nn.Module
    outgoing: list[nn.Linear] = field(default_factory=list)
    layer_norm: nn.LayerNorm | None = None

    @property
    def n_units(self) -> int:
        """Number of units (``incoming.out_features``)."""
        return self.incoming.out_features


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _chains_in_sequential(
    seq: nn.Sequential, prefix: str, heads: Sequence[nn.Linear], concatenating: bool = False
) -> list[HiddenLayer]:
    items = list(seq.named_children())
    layers: list[HiddenLayer] = []
    i = 0
    while i < len(items):
        name, module = items[i]
        if not isinstance(module, nn.Linear):
            i += 1
            continue
        j = i + 1
        norm = None
        if j < len(items) and isinstance(items[j][1], nn.LayerNorm):
            norm = items[j][1]
            j += 1
        if j >= len(items) or not _is_activation(items[j][1], concatenating):
            i += 1
            continue
        activation = items[j][1]
        # The next Linear in the same Sequential reads these units; if there is none, the heads do.
        following = [m for _, m in items[j + 1 :] if isinstance(m, nn.Linear)]
        outgoing = following[:1] if following else list(heads)
        if not outgoing:  # nothing reads these units: an output layer (TD3's Linear -> Tanh)
            i = j + 1
            continue
        layers.append(HiddenLayer(_prefixed(prefix, name), module, activation, outgoing, norm))
        i = j + 1
    return layers


def _concatenates(module: nn.Module) -> bool:
    """Whether ``module`` is an activation that concatenates two features per unit (CReLU,
    Fourier features: the class sets ``concatenates = True``)."""
    return bool(getattr(module, "concatenates", False))


def _is_activation(module: nn.Module, concatenating: bool) -> bool:
    return isinstance(module, ACTIVATIONS) or (concatenating and _concatenates(module))


def find_hidden_layers(
    module: nn.Module,
    heads: Mapping[str, Sequence[nn.Linear]] | None = None,
    exclude: Sequence[str] = (),
    *,
    concatenating: bool = False,
) -> list[HiddenLayer]:
    """Every hidden layer in ``module``, in registration order.

    :param module: any module; chains are looked for in each ``nn.Sequential`` it contains
    :param heads: for a Sequential (by dotted name) whose last hidden layer is read by Linears
        outside it, those Linears. A Linear -> activation that nothing reads is an output layer
        and is not returned.
    :param exclude: dotted names of submodules to skip with everything under them (target networks)
    :param concatenating: also layers whose activation concatenates two features per unit
        (CReLU, Fourier features: ``concatenates = True``), whose features are 2n columns for n
        units. For feature-level use (the metrics); unit-level methods cannot act on them
    :return: the hidden layers
    :raises ValueError: if one activation module instance serves two layers (its forward hook could
        not tell them apart)
    """
    heads = dict(heads or {})
    layers: list[HiddenLayer] = []
    for name, sub in module.named_modules():
        if not isinstance(sub, nn.Sequential):
            continue
        if any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        layers.extend(_chains_in_sequential(sub, name, heads.get(name, ()), concatenating))
    seen: dict[int, str] = {}
    for layer in layers:
        key = id(layer.activation)
        if key in seen:
            raise ValueError(
                f"activation module shared by hidden layers {seen[key]!r} and {layer.name!r}; "
                "give each layer its own activation instance"
            )
        seen[key] = layer.name
    return layers


def required_layers(
    module: nn.Module,
    layers: Sequence[HiddenLayer] | None,
    heads: Mapping[str, Sequence[nn.Linear]] | None,
    method: str,
) -> list[HiddenLayer]:
    """``layers``, or the hidden layers :func:`find_hidden_layers` finds in ``module``.

    A method that acts on hidden units and finds none would never act: that is an error.

    :param module: the network
    :param layers: layers the caller gave, or None to look for them
    :param heads: for :func:`find_hidden_layers`
    :param method: the method's name, for the message
    :return: the hidden layers, at least one
    :raises ValueError: naming the module and the Linears it has, when there is no hidden layer
    """
    found = list(layers) if layers is not None else find_hidden_layers(module, heads)
    if found:
        return found
    concatenating = sorted({type(m).__name__ for m in module.modules() if _concatenates(m)})
    if concatenating:
        raise ValueError(
            f"{method} found no hidden layer in {type(module).__name__}: its activations "
            f"({', '.join(concatenating)}) concatenate two features per unit, so a unit's "
            "outgoing weights are two columns and unit-level methods (CBP, ReDo, ReGraMa, ...) "
            "cannot act on them. Use the method on a network without CReLU or Fourier features"
        )
    linears = [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
    raise ValueError(
        f"{method} found no hidden layer in {type(module).__name__} (Linears: "
        f"{', '.join(linears) or 'none'}), so it would never act. A hidden layer is a Linear -> "
        "activation module -> Linear chain inside an nn.Sequential; layers kept as attributes "
        "(self.fc1, self.fc2) with the activation called as a function cannot be followed. Put "
        "them in an nn.Sequential with activation modules (nn.ReLU()), or pass layers=[...]"
    )
