"""Population networks: P multilayer perceptrons of one architecture, one per seed, stacked.

Each Linear layer holds ``weight`` (P, out, in) and ``bias`` (P, out); a forward pass over an
input of shape (P, batch, in) is one ``torch.baddbmm`` per layer for all P members, where P
separate networks would pay a call's fixed cost P times. With batch size 1 and small layers that
fixed cost is nearly all of the time (the slowly-changing regression: 5 hidden units, one example
per step), so a population runs many seeds for about the price of one.

Every member is also an ordinary network: :meth:`PopulationMLP.member` gives an
``nn.Sequential`` (Linear, ReLU, ..., Linear) whose parameters are views of the member's slices
of the stacks, so changing one changes the other, and its ``state_dict`` loads into a plain
``nn.Sequential`` of the same shape. :meth:`PopulationMLP.from_members` stacks existing networks,
:meth:`PopulationMLP.member_stacks` presents the stacks to the members' plasticity methods.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.stacked import MemberStacks


class PopulationLinear(nn.Module):
    """P Linear layers of one shape, stacked: y[k] = x[k] @ weight[k].T + bias[k].

    :param population: P, the number of members
    :param in_features: inputs of each member's layer
    :param out_features: outputs of each member's layer
    """

    def __init__(self, population: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.population = population
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.zeros(population, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(population, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All members' outputs in one batched product.

        :param x: (P, batch, in_features), member k's inputs in ``x[k]``
        :return: (P, batch, out_features)
        """
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def member(self, k: int) -> nn.Linear:
        """Member ``k``'s layer as an ``nn.Linear`` whose weight and bias are views of the stacks.

        :param k: the member's index
        """
        # Built on the meta device: no initial draw from torch's global generator.
        linear = nn.Linear(self.in_features, self.out_features, device="meta")
        linear.weight = nn.Parameter(self.weight.detach()[k])
        linear.bias = nn.Parameter(self.bias.detach()[k])
        return linear

    def extra_repr(self) -> str:
        return f"population={self.population}, in={self.in_features}, out={self.out_features}"


class PopulationMLP(nn.Module):
    """P multilayer perceptrons with ReLU between the Linear layers, no activation at the output.

    :param population: P, the number of members (one per seed)
    :param sizes: widths from input to output, e.g. ``(20, 5, 1)``; ``(20, 1)`` is linear
    :raises ConfigError: on a population below 1, fewer than two sizes or a size below 1
    """

    def __init__(self, population: int, sizes: Sequence[int]) -> None:
        super().__init__()
        if population < 1:
            raise ConfigError("population", population, "a positive int")
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError("sizes", tuple(sizes), "at least two positive widths")
        self.population = population
        self.sizes = tuple(sizes)
        self.linears = nn.ModuleList(
            PopulationLinear(population, n_in, n_out) for n_in, n_out in itertools.pairwise(sizes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's output.

        :param x: (P, batch, sizes[0])
        :return: (P, batch, sizes[-1])
        """
        for linear in self.linears[:-1]:
            x = torch.relu(linear(x))
        return self.linears[-1](x)

    def member(self, k: int) -> nn.Sequential:
        """Member ``k`` as ``nn.Sequential(Linear, ReLU, ..., Linear)`` sharing its parameters.

        The parameters are views: training the population changes the returned module and
        changing the module changes the population. To save a member to a file, save its state
        with the tensors cloned (``torch.save`` of a view writes the whole stack's storage).

        :param k: the member's index, in [0, P)
        :raises ConfigError: when ``k`` is out of range
        """
        if not 0 <= k < self.population:
            raise ConfigError("member", k, f"an index in [0, {self.population})")
        modules: list[nn.Module] = []
        for linear in self.linears:
            modules += [linear.member(k), nn.ReLU()]
        return nn.Sequential(*modules[:-1])

    def member_stacks(self, members: Sequence[nn.Sequential]) -> MemberStacks:
        """The population as a plasticity method's population form sees it
        (``Method.stacked_after_step``): the stacked weight and bias of each Linear in order,
        ``members[k]``'s parameters as member k's, no optimizer state (plain SGD has none). The
        features of the i-th hidden layer (the output of ``linears[i]``) go in
        ``features[2 * i]``, the position of that layer's weight.

        :param members: ``member(k)`` at index k: the networks the members' methods are attached to
        :return: the stacks
        """
        stacks = [p for linear in self.linears for p in (linear.weight, linear.bias)]
        return MemberStacks(stacks, [list(member.parameters()) for member in members])

    @classmethod
    def from_members(cls, members: Sequence[nn.Sequential]) -> PopulationMLP:
        """Stack existing networks (copied) into a population, member k = ``members[k]``.

        :param members: networks of one architecture ``Sequential(Linear, ReLU, ..., Linear)``
        :return: the population
        :raises ConfigError: when a network is not of that form or shapes differ
        """
        if not members:
            raise ConfigError("members", [], "at least one nn.Sequential")
        sizes = _mlp_sizes(members[0])
        for index, net in enumerate(members):
            if _mlp_sizes(net) != sizes:
                raise ConfigError(
                    f"members[{index}]", net, f"the architecture of members[0], sizes {sizes}"
                )
        population = cls(len(members), sizes)
        with torch.no_grad():
            for position, linear in enumerate(population.linears):
                layer = 2 * position
                linear.weight.copy_(torch.stack([net[layer].weight for net in members]))
                linear.bias.copy_(torch.stack([net[layer].bias for net in members]))
        return population


def _mlp_sizes(net: nn.Module) -> tuple[int, ...]:
    """Widths of ``Sequential(Linear, ReLU, ..., Linear)`` (biases required), else ConfigError."""
    allowed = "nn.Sequential(Linear, ReLU, ..., Linear) with biases"
    if not isinstance(net, nn.Sequential) or len(net) % 2 == 0:
        raise ConfigError("members", net, allowed)
    sizes: list[int] = []
    for index, module in enumerate(net):
        if index % 2 == 1:
            if not isinstance(module, nn.ReLU):
                raise ConfigError("members", net, allowed)
            continue
        if not isinstance(module, nn.Linear) or module.bias is None:
            raise ConfigError("members", net, allowed)
        if sizes and sizes[-1] != module.in_features:
            raise ConfigError("members", net, allowed)
        sizes = sizes or [module.in_features]
        sizes.append(module.out_features)
    return tuple(sizes)
