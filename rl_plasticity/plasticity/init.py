"""Initial weight distributions: the paper's LeCun uniform, torch's default, fresh draws.

Dohare et al. (2024) initialize every layer of their PPO networks with LeCun uniform weights,
U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)), and zero biases. Continual backprop re-draws a replaced
unit's incoming weights from the same distribution, so the distribution is named once here and
used by initialization, CBP, ReDo, shrink-and-perturb and Reset alike.

This module knows nothing of SB3.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rl_plasticity.catalog import init_names
from rl_plasticity.errors import ConfigError

#: Initial distributions of a Linear's weights (biases: 0 for LeCun, U(+-1/sqrt(fan_in)) for torch).
#: ``"match"`` (CBP and ReDo only) draws uniform weights with the standard deviation the layer's
#: weights had when the method was attached.
INITS: tuple[str, ...] = init_names("redraw")


def check_init(value: str, key: str = "init", allowed: tuple[str, ...] = INITS) -> str:
    """``value`` if it names an initial distribution, else :class:`ConfigError`.

    :param value: the name given
    :param key: the setting's name, for the error
    :param allowed: names allowed here
    :return: ``value``
    """
    if value not in allowed:
        raise ConfigError(key, value, "one of: " + ", ".join(allowed))
    return value


def weight_bound(linear: nn.Linear, init: str) -> float:
    """Half-width of the uniform distribution that ``init`` draws ``linear``'s weights from.

    :param linear: the layer (its ``in_features`` is the fan-in)
    :param init: ``"lecun_uniform"`` (sqrt(3 / fan_in), the paper's) or ``"kaiming_uniform"``
        (1 / sqrt(fan_in): torch's ``nn.Linear`` default, kaiming uniform with a = sqrt(5)), or
        ``"match"`` (sqrt(3) times the current standard deviation of the weights)
    :return: the bound b of U(-b, b)
    """
    fan_in = linear.in_features
    if init == "lecun_uniform":
        return math.sqrt(3.0 / fan_in)
    if init == "kaiming_uniform":
        return 1.0 / math.sqrt(fan_in)
    if init == "match":
        return math.sqrt(3.0) * float(linear.weight.detach().std())
    raise ConfigError("init", init, "one of: " + ", ".join(init_names("unit")))


def bias_bound(linear: nn.Linear, init: str) -> float:
    """Half-width of the uniform distribution of ``linear``'s initial bias (0: the bias is zero).

    :param linear: the layer
    :param init: as in :func:`weight_bound`
    :return: the bound
    """
    if init == "kaiming_uniform":
        return 1.0 / math.sqrt(linear.in_features)
    return 0.0


def uniform(
    shape: tuple[int, ...], bound: float, generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """U(-bound, bound) samples drawn with ``generator`` (a CPU generator), on ``like``'s device.

    :param shape: shape of the result
    :param bound: half-width
    :param generator: random source; ``None`` uses torch's global one
    :param like: tensor whose dtype and device the result takes
    :return: the samples
    """
    sample = torch.empty(shape, dtype=like.dtype).uniform_(-bound, bound, generator=generator)
    return sample.to(like.device)


def reinit_linear_(
    linear: nn.Linear, init: str = "lecun_uniform", generator: torch.Generator | None = None
) -> None:
    """Draw all of ``linear``'s weights and bias afresh from ``init``.

    :param linear: the layer, changed in place
    :param init: one of :data:`INITS`
    :param generator: random source; ``None`` uses torch's global one
    """
    with torch.no_grad():
        linear.weight.copy_(
            uniform(linear.weight.shape, weight_bound(linear, init), generator, linear.weight)
        )
        if linear.bias is not None:
            linear.bias.copy_(
                uniform(linear.bias.shape, bias_bound(linear, init), generator, linear.bias)
            )


def lecun_uniform_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The paper's init: every Linear in ``module`` gets U(+-sqrt(3/fan_in)) weights, 0 bias.

    Other parameters (SB3's state-independent ``log_std``, which starts at 0) are left alone.

    :param module: the network, changed in place
    :param generator: random source; ``None`` uses torch's global one (seeded by SB3)
    :return: ``module``
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            reinit_linear_(sub, "lecun_uniform", generator)
    return module
