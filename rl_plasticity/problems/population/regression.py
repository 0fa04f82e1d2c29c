"""The slowly-changing regression's learners as one population: one member per seed, one process.

Member k is the single learner of ``problems.slowly_changing.online_squared_errors`` run with
seed ``seeds[k]``: it sees the example stream of ``SlowlyChangingRegression(seeds[k])``, starts
from ``build_network(..., torch.Generator().manual_seed(seeds[k]))``, takes each example's
squared error before its update, and updates with SGD (step size, weight decay as
``torch.optim.SGD`` applies it) at batch size 1; continual backprop and shrink-and-perturb act
after each step as ``CBP(...).attach(net, optimizer, seed=seeds[k])`` and
``ShrinkPerturb(...).attach(net, optimizer, seed=seeds[k])`` do, each drawing from its own
generator seeded with ``seeds[k]``. Continual backprop is ``plasticity.cbp.CBP`` itself: one
instance per member, attached to the member's network (``PopulationMLP.member``), all stepped at
once by its population form on the population's stacks. The members' errors equal the single
learners' within float rounding (``tests/test_population.py``): the forward products are batched
matrix products, whose sums may round differently from the single network's ``addmm``.

What is batched over members and what loops per member, per example:

=============================  ==================================================================
forward, error, gradient       batched: one ``baddbmm`` / ``bmm`` per layer for all members
SGD step (and weight decay)    batched: one multi-tensor add over the stacked parameters
CBP: ages, utilities, counts   batched (``CBP.stacked_after_step``): (P, units) ages and
                               utilities, eligible units counted from the ages, (P,) float64
                               accumulated counts, one tensor operation each for all members
CBP: replacements              per member, only for the members that replace a unit on this step
                               (with the paper's settings a member replaces one of its 5 units
                               about every 2,000 steps): ranking, the re-draw from the member's
                               generator, zeroing, in the single CBP's order
shrink                         batched: one multiply per stacked parameter
perturb (noise)                per member: each member's noise is drawn from its own generator,
                               parameter by parameter as the single learner draws it (a draw
                               cannot be shared between generators); the noise is then added to
                               every member in one batched add per parameter
=============================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.core import new_generator
from rl_plasticity.problems.population.network import PopulationMLP
from rl_plasticity.problems.slowly_changing import (
    Learner,
    SlowlyChangingRegression,
    bin_means,
    build_network,
)
from rl_plasticity.validate import check_int, check_number

# ---------------------------------------------------------------------------------------------
# Shrink-and-perturb with member-local state
# ---------------------------------------------------------------------------------------------


class PopulationShrinkPerturb:
    """Shrink-and-perturb toward zero after every step (``ShrinkPerturb(target="zero")``):
    theta <- shrink * theta + noise_std * N(0, 1) on every weight and bias of every member.

    The shrink is one multiply per stacked parameter for all members. The noise is drawn per
    member from its own generator (seeded as ``ShrinkPerturb.attach(seed=...)`` seeds it),
    parameter by parameter in the single learner's order (weight, bias of each Linear), so each
    member's noise is the single learner's; it is added in one batched add per parameter.

    :param network: the population
    :param seeds: member k's generator is seeded with ``seeds[k]``
    :param shrink: lambda, in [0, 1]
    :param noise_std: sigma, >= 0
    :raises ConfigError: on a setting out of range or when the seeds are not one per member
    """

    def __init__(
        self, network: PopulationMLP, seeds: Sequence[int], shrink: float, noise_std: float
    ) -> None:
        self.shrink = check_number("shrink", shrink, 0.0, 1.0)
        self.noise_std = check_number("perturb_std", noise_std, 0.0, float("inf"))
        if len(seeds) != network.population:
            raise ConfigError("seeds", list(seeds), f"{network.population} seeds, one per member")
        self.params = [p for linear in network.linears for p in (linear.weight, linear.bias)]
        self.generators = [new_generator(seed) for seed in seeds]
        self.noise = [torch.empty_like(p) for p in self.params]

    def step(self) -> None:
        """One event on every member, after an optimizer step."""
        with torch.no_grad():
            if self.shrink != 1.0:
                torch._foreach_mul_(self.params, self.shrink)
            if self.noise_std > 0:
                for k, generator in enumerate(self.generators):  # per member: its own stream
                    for noise in self.noise:
                        noise[k].normal_(generator=generator)
                torch._foreach_add_(self.params, self.noise, alpha=self.noise_std)


# ---------------------------------------------------------------------------------------------
# The learner
# ---------------------------------------------------------------------------------------------


def squared_errors_and_gradients_(
    network: PopulationMLP, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Every member's squared error on its example; the gradients written into ``.grad``.

    The batched form of ``slowly_changing.squared_error_and_gradients_`` (the same products,
    by hand, no autograd), for an MLP of any depth with ReLU and batch size 1.

    :param network: the population; every parameter's ``.grad`` must be a tensor of its shape
    :param x: inputs, (P, 1, num_inputs)
    :param y: targets, (P, 1, 1)
    :return: the squared errors before the update, (P,), and each hidden layer's features
        (P, 1, units) (what CBP reads)
    """
    linears = network.linears
    inputs = [x]
    pre_activations = []
    for linear in linears[:-1]:
        pre = linear(inputs[-1])
        pre_activations.append(pre)
        inputs.append(torch.relu(pre))
    output = linears[-1](inputs[-1])
    error = output - y
    d_output = 2.0 * error
    for index in reversed(range(len(linears))):
        linear = linears[index]
        torch.bmm(d_output.transpose(1, 2), inputs[index], out=linear.weight.grad)
        linear.bias.grad.copy_(d_output[:, 0])
        if index > 0:
            # ReLU's derivative: 1 where the unit was active, 0 elsewhere.
            d_output = torch.bmm(d_output, linear.weight) * (pre_activations[index - 1] > 0)
    return error.square().flatten(), inputs[1:]


@dataclass
class PopulationRun:
    """What :func:`train_regression_population` leaves: the errors and the trained members.

    :param errors: (P, num_examples) float32 squared errors, member k's in row k
    :param network: the trained population (``network.member(k)`` is member k's network)
    :param cbp: member k's continual backprop at index k (its ``replaced_total``, its
        ``state_dict`` as a single run's), or None without CBP
    """

    errors: np.ndarray
    network: PopulationMLP
    cbp: list[CBP] | None


def train_regression_population(
    learner: Learner, seeds: Sequence[int], num_examples: int, flip_period: int = 10_000
) -> PopulationRun:
    """Train one member per seed of ``learner`` online, all members in the same operations.

    :param learner: the learners' settings (every field is supported)
    :param seeds: member k's seed: its problem's, its initial network's and its methods'
    :param num_examples: examples each member learns from
    :param flip_period: examples between flips of the problem
    :return: the errors, the trained network and the members' CBP
    :raises ConfigError: on no seeds, a negative seed, fewer than one example, or a learner
        setting a single learner would refuse
    """
    if len(seeds) == 0:
        raise ConfigError("seeds", list(seeds), "at least one seed")
    for seed in seeds:
        check_int("seeds", seed, 0)
    check_int("num_examples", num_examples, 1)
    check_int("num_hidden", learner.num_hidden, 0)
    check_number("step_size", learner.step_size, 0.0, float("inf"))
    check_number("weight_decay", learner.weight_decay, 0.0, float("inf"))
    check_number("shrink", learner.shrink, 0.0, 1.0)
    check_number("perturb_std", learner.perturb_std, 0.0, float("inf"))
    check_number("replacement_rate", learner.replacement_rate, 0.0, 1.0)
    if learner.replacement_rate > 0 and learner.num_hidden == 0:
        raise ConfigError("num_hidden", 0, "at least one hidden layer for continual backprop")
    problems = [SlowlyChangingRegression(seed, flip_period=flip_period) for seed in seeds]
    num_inputs = problems[0].num_inputs
    network = PopulationMLP.from_members(
        [
            build_network(num_inputs, learner.num_hidden, torch.Generator().manual_seed(seed))
            for seed in seeds
        ]
    )
    members = [network.member(k) for k in range(len(seeds))]
    stacks = network.member_stacks(members)
    cbp = None
    if learner.replacement_rate > 0:
        # No optimizer to hook: the loop below steps them (SGD has no state to zero).
        cbp = [
            CBP(
                replacement_rate=learner.replacement_rate,
                maturity_threshold=learner.maturity_threshold,
                decay_rate=learner.decay_rate,
                init="lecun_uniform",
            ).attach(member, seed=seed)
            for member, seed in zip(members, seeds, strict=True)
        ]
    snp = None
    if learner.shrink < 1 or learner.perturb_std > 0:
        snp = PopulationShrinkPerturb(network, seeds, learner.shrink, learner.perturb_std)
    params = list(network.parameters())
    for param in params:
        param.grad = torch.zeros_like(param)
    grads = [param.grad for param in params]
    errors = np.empty((len(seeds), num_examples), dtype=np.float32)
    done = 0
    streams = [problem.chunks(num_examples) for problem in problems]
    # hidden layer i's features go under its weight's position (``PopulationMLP.member_stacks``)
    feature_keys = range(0, 2 * (len(network.linears) - 1), 2)
    with torch.no_grad():
        for chunks in zip(*streams, strict=True):
            x_chunk = torch.from_numpy(np.stack([inputs for inputs, _ in chunks]))
            y_chunk = torch.from_numpy(np.stack([targets for _, targets in chunks]))[..., None]
            size = x_chunk.shape[1]
            chunk_errors = torch.empty(size, len(seeds))
            for i in range(size):
                chunk_errors[i], features = squared_errors_and_gradients_(
                    network, x_chunk[:, i : i + 1], y_chunk[:, i : i + 1]
                )
                # torch.optim.SGD's step: g + weight_decay * theta, then theta - step_size * g.
                step = grads
                if learner.weight_decay != 0:
                    step = torch._foreach_add(grads, params, alpha=learner.weight_decay)
                torch._foreach_add_(params, step, alpha=-learner.step_size)
                if cbp is not None:
                    stacks.features.update(zip(feature_keys, features, strict=True))
                    CBP.stacked_after_step(cbp, stacks)
                if snp is not None:
                    snp.step()
            for method in cbp or ():  # counted per chunk: CBP's step does not read it
                method.steps += size
            errors[:, done : done + size] = chunk_errors.T.numpy()
            done += size
    for method in cbp or ():  # as the single learner ends: warns if no unit was replaced
        method.detach()
    return PopulationRun(errors=errors, network=network, cbp=cbp)


def population_online_squared_errors(
    learner: Learner, seeds: Sequence[int], num_examples: int, flip_period: int = 10_000
) -> np.ndarray:
    """Each seed's online squared errors, as ``online_squared_errors`` gives them one at a time.

    Row k equals ``online_squared_errors(learner, SlowlyChangingRegression(seeds[k]),
    num_examples, seeds[k])`` within float rounding.

    :param learner: the learners' settings
    :param seeds: one member per seed
    :param num_examples: examples each member learns from
    :param flip_period: examples between flips of the problem
    :return: (len(seeds), num_examples) float32 squared errors
    """
    return train_regression_population(learner, seeds, num_examples, flip_period).errors


def population_binned_errors(
    learner: Learner,
    seeds: Sequence[int],
    num_examples: int = 1_000_000,
    bin_size: int = 40_000,
    flip_period: int = 10_000,
) -> np.ndarray:
    """Mean squared online error per bin, per seed: ``binned_errors`` for many seeds at once.

    :param learner: the learners' settings
    :param seeds: one member per seed
    :param num_examples: examples in the run, 1M in the paper
    :param bin_size: examples per bin
    :param flip_period: examples between flips, 10,000 in the paper
    :return: (len(seeds), num_examples // bin_size) mean squared errors
    """
    errors = population_online_squared_errors(learner, seeds, num_examples, flip_period)
    return np.stack([bin_means(row, bin_size) for row in errors])
