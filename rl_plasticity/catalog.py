"""The tables of activations and initializations, shared by specs, methods, metrics and runs.

Pure Python: torch classes are named, not imported (``activation_class`` imports torch on use), so
specs can check names without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Activation:
    """An elementwise activation and the properties the methods and metrics rely on.

    :param name: the spec name (``policy_kwargs.activation``)
    :param torch_name: its class in ``torch.nn``
    :param non_negative: h >= 0 everywhere (then |h| = h: CBP skips the abs)
    :param exact_zeros: an inactive unit outputs exactly 0 (then "dead" means h == 0 on every
        sample; otherwise |h| <= 1e-7)
    :param saturating: bounded with flat tails (tanh, sigmoid: a saturation metric exists)
    :param in_specs: offered as an agent spec's ``policy_kwargs.activation``
    """

    name: str
    torch_name: str
    non_negative: bool
    exact_zeros: bool
    saturating: bool
    in_specs: bool = True


#: Every elementwise activation a hidden layer may have, by spec name.
ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", "ReLU", non_negative=True, exact_zeros=True, saturating=False),
        Activation("tanh", "Tanh", non_negative=False, exact_zeros=False, saturating=True),
        Activation("elu", "ELU", non_negative=False, exact_zeros=False, saturating=False),
        Activation("leaky_relu", "LeakyReLU", False, False, False),
        Activation("gelu", "GELU", non_negative=False, exact_zeros=False, saturating=False),
        Activation("silu", "SiLU", non_negative=False, exact_zeros=False, saturating=False),
        Activation("sigmoid", "Sigmoid", non_negative=True, exact_zeros=False, saturating=True),
        Activation("selu", "SELU", False, False, False, in_specs=False),
        Activation("softplus", "Softplus", True, False, False, in_specs=False),
        Activation("mish", "Mish", False, False, False, in_specs=False),
        Activation("hardtanh", "Hardtanh", False, False, False, in_specs=False),
        Activation("relu6", "ReLU6", True, True, False, in_specs=False),
    )
}

#: Spec names of the activations an agent spec may choose.
SPEC_ACTIVATIONS: tuple[str, ...] = tuple(n for n, a in ACTIVATIONS.items() if a.in_specs)

_BY_TORCH_NAME = {a.torch_name: a for a in ACTIVATIONS.values()}


def activation_of(module: Any) -> Activation | None:
    """The table's entry for an activation module (by its class), or None for another module.

    :param module: a module instance (``nn.ReLU()``) or class
    :return: its :class:`Activation`
    """
    cls = module if isinstance(module, type) else type(module)
    if getattr(cls, "__module__", "").startswith("torch.nn"):
        return _BY_TORCH_NAME.get(cls.__name__)
    return None


def activation_class(name: str) -> type:
    """The ``torch.nn`` class of the activation named ``name`` in :data:`ACTIVATIONS`.

    :param name: spec name
    :return: the class
    """
    from torch import nn

    return getattr(nn, ACTIVATIONS[name].torch_name)


def activation_classes() -> tuple[type, ...]:
    """Every activation class of the table (for ``isinstance``)."""
    return tuple(activation_class(name) for name in ACTIVATIONS)


@dataclass(frozen=True)
class Init:
    """A distribution a Linear's weights are drawn from.

    :param name: its name in specs and method settings
    :param weights: U(-b, b) with b as a function of fan_in, in words
    :param bias: the bias's distribution, in words
    :param uses: where it may be named: ``agent`` (a spec's ``init``), ``redraw`` (CBP/ReDo unit
        re-draws, shrink-and-perturb targets), ``reset`` (Reset)
    """

    name: str
    weights: str
    bias: str
    uses: frozenset[str]


#: Every initialization, by name.
INITS: dict[str, Init] = {
    i.name: i
    for i in (
        Init(
            "sb3_default",
            "as SB3 builds the policy (orthogonal with gains for PPO/A2C, torch's default else)",
            "as SB3 builds it",
            frozenset({"agent"}),
        ),
        Init(
            "sb3",
            "as SB3 builds the policy (Reset's name for sb3_default)",
            "as SB3 builds it",
            frozenset({"reset"}),
        ),
        Init(
            "lecun_uniform",
            "sqrt(3 / fan_in) (Dohare et al. 2024)",
            "0",
            frozenset({"agent", "redraw", "reset"}),
        ),
        Init(
            "kaiming_uniform",
            "1 / sqrt(fan_in) (torch's nn.Linear default)",
            "U(+-1 / sqrt(fan_in))",
            frozenset({"redraw", "reset"}),
        ),
        Init(
            "match",
            "sqrt(3) times the standard deviation the layer's weights have now",
            "0",
            frozenset({"unit"}),
        ),
    )
}


def init_names(use: str) -> tuple[str, ...]:
    """The names of :data:`INITS` allowed for ``use`` (``"unit"`` includes the ``redraw`` ones).

    :param use: ``agent``, ``redraw``, ``unit`` or ``reset``
    :return: the names, in table order
    """
    uses = {use, "redraw"} if use == "unit" else {use}
    return tuple(n for n, i in INITS.items() if i.uses & uses)
