"""Slowly-changing regression (the "bit-flipping" problem) of Dohare et al. (2024).

A fast supervised check of loss of plasticity, without an environment: a small network learns,
online and one example at a time, a fixed target function whose input distribution drifts.

Problem (Dohare et al., "Loss of plasticity in deep continual learning", Nature 2024, Extended
Data Fig. 2; first posed by Mahmood & Sutton 2013). The input has m = 20 bits. The first f = 15
"flipping" bits hold their values, and every T = 10,000 examples one of them, chosen uniformly, is
flipped; the last m - f = 5 bits are drawn fresh (i.i.d. fair coins) for every example. The target
is a fixed network: m inputs plus a bias input that is always 1 -> 100 linear threshold units
(LTUs) -> 1 linear output, every weight (biases included) -1 or +1. LTU i outputs 1 when its
summed input exceeds theta_i = beta * (m + 1) - S_i, where beta = 0.7 and S_i is the number of
its m + 1 incoming weights (the bias weight counts, as the bias is the (m + 1)-th input) that
are -1; otherwise 0.

Learners (the paper's settings): one hidden layer of 5 ReLU units, plain SGD with step size 0.01
on the squared error, batch size 1, 1M examples. The error of every example is measured before the
learner updates on it (online error). Initialization: LeCun uniform weights and zero biases, the
distribution this project's continual backprop re-draws units from (the authors' code for this
problem uses Kaiming uniform with the ReLU gain, sqrt(2) wider in the hidden layer).

The top half of this file is the problem (pure numpy, seeded); the bottom half the learners.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.init import lecun_uniform_
from rl_plasticity.plasticity.snp import ShrinkPerturb

# ---------------------------------------------------------------------------------------------
# The problem
# ---------------------------------------------------------------------------------------------


def ltu_thresholds(input_weights: np.ndarray, bias_weights: np.ndarray, beta: float) -> np.ndarray:
    """Thresholds of linear threshold units: theta_i = beta * (m + 1) - S_i.

    S_i is the number of negative weights among unit i's m input weights and its bias weight
    (Mahmood & Sutton 2013; Dohare et al. 2024). With all weights +-1 and 0/1 inputs, the summed
    input is (agreements - S_i), where agreements counts the m + 1 positions whose input bit is 1
    where the weight is +1 and 0 where it is -1 (the bias input is always 1). So a unit fires
    exactly when its input agrees with its weight pattern on more than beta * (m + 1) positions.
    (The authors' code computes S_i as (m - sum(w_i) + b_i) / 2, which adds the bias with the
    opposite sign; we follow the paper's definition.)

    :param input_weights: (num_units, m) array of -1/+1
    :param bias_weights: (num_units,) array of -1/+1
    :param beta: the fraction, 0.7 in the paper
    :return: (num_units,) thresholds
    """
    num_inputs = input_weights.shape[1]
    negatives = (input_weights < 0).sum(axis=1) + (bias_weights < 0)
    return beta * (num_inputs + 1) - negatives


@dataclass(frozen=True)
class TargetNetwork:
    """The fixed target function: inputs -> LTU layer -> one linear output, all weights +-1.

    :param input_weights: (num_features, num_inputs) of -1/+1
    :param bias_weights: (num_features,) of -1/+1, the weights of the always-1 bias input
    :param thresholds: (num_features,) LTU thresholds, see :func:`ltu_thresholds`
    :param output_weights: (num_features,) of -1/+1
    :param output_bias: -1 or +1
    """

    input_weights: np.ndarray
    bias_weights: np.ndarray
    thresholds: np.ndarray
    output_weights: np.ndarray
    output_bias: float

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """LTU outputs (0 or 1) for a batch of inputs of shape (n, num_inputs)."""
        summed = inputs @ self.input_weights.T + self.bias_weights
        return (summed > self.thresholds).astype(np.float32)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Target values, shape (n,), for a batch of inputs of shape (n, num_inputs)."""
        return self.features(inputs) @ self.output_weights + self.output_bias


def random_target_network(
    rng: np.random.Generator, num_inputs: int = 20, num_features: int = 100, beta: float = 0.7
) -> TargetNetwork:
    """Draw a target network with every weight -1 or +1 with equal probability.

    :param rng: the random generator to draw from
    :param num_inputs: m, the input bits (the bias input comes on top)
    :param num_features: LTUs in the hidden layer, 100 in the paper
    :param beta: the LTU threshold fraction, 0.7 in the paper
    """
    input_weights = rng.choice([-1.0, 1.0], size=(num_features, num_inputs)).astype(np.float32)
    bias_weights = rng.choice([-1.0, 1.0], size=num_features).astype(np.float32)
    output_weights = rng.choice([-1.0, 1.0], size=num_features).astype(np.float32)
    output_bias = float(rng.choice([-1.0, 1.0]))
    return TargetNetwork(
        input_weights=input_weights,
        bias_weights=bias_weights,
        thresholds=ltu_thresholds(input_weights, bias_weights, beta).astype(np.float32),
        output_weights=output_weights,
        output_bias=output_bias,
    )


class SlowlyChangingRegression:
    """The stream of (input, target) examples of one run; a pure function of the seed.

    The target network, the sequence of flipped bits and the fresh bits come from three
    independent random streams spawned from ``seed``, so two learners given the same seed see
    exactly the same examples, and a shorter run is a prefix of a longer one.

    :param seed: the run's seed
    :param num_inputs: m, 20 in the paper
    :param num_flipping_bits: f, 15 in the paper
    :param flip_period: T, examples between flips, 10,000 in the paper
    :param num_target_features: LTUs of the target network, 100 in the paper
    :param beta: LTU threshold fraction, 0.7 in the paper
    """

    def __init__(
        self,
        seed: int,
        num_inputs: int = 20,
        num_flipping_bits: int = 15,
        flip_period: int = 10_000,
        num_target_features: int = 100,
        beta: float = 0.7,
    ) -> None:
        if not 0 < num_flipping_bits <= num_inputs:
            raise ConfigError("num_flipping_bits", num_flipping_bits, "an int in [1, num_inputs]")
        if flip_period < 1:
            raise ConfigError("flip_period", flip_period, "a positive int")
        self.seed = seed
        self.num_inputs = num_inputs
        self.num_flipping_bits = num_flipping_bits
        self.flip_period = flip_period
        target_seed, self._flip_seed, self._fresh_seed = np.random.SeedSequence(seed).spawn(3)
        self.target = random_target_network(
            np.random.default_rng(target_seed), num_inputs, num_target_features, beta
        )

    def flipping_bits(self, num_periods: int) -> np.ndarray:
        """The flipping bits' values in each of the first ``num_periods`` flip periods.

        Period 0 holds uniformly random bits; each later period is the one before with exactly
        one bit, chosen uniformly, flipped.

        :return: (num_periods, num_flipping_bits) array of 0/1
        """
        rng = np.random.default_rng(self._flip_seed)
        bits = np.empty((num_periods, self.num_flipping_bits), dtype=np.float32)
        bits[0] = rng.integers(0, 2, size=self.num_flipping_bits)
        flipped = rng.integers(0, self.num_flipping_bits, size=num_periods)
        for period in range(1, num_periods):
            bits[period] = bits[period - 1]
            bits[period, flipped[period]] = 1.0 - bits[period, flipped[period]]
        return bits

    def chunks(self, num_examples: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The first ``num_examples`` examples, one flip period per chunk (the last may be short).

        :return: iterator of (inputs (n, num_inputs) float32 of 0/1, targets (n,) float32)
        """
        num_periods = -(-num_examples // self.flip_period)
        flipping = self.flipping_bits(num_periods)
        fresh_rng = np.random.default_rng(self._fresh_seed)
        num_fresh = self.num_inputs - self.num_flipping_bits
        for period in range(num_periods):
            size = min(self.flip_period, num_examples - period * self.flip_period)
            inputs = np.empty((size, self.num_inputs), dtype=np.float32)
            inputs[:, : self.num_flipping_bits] = flipping[period]
            # Drawn per full period, so the stream does not depend on num_examples.
            fresh = fresh_rng.integers(0, 2, size=(self.flip_period, num_fresh))
            inputs[:, self.num_flipping_bits :] = fresh[:size]
            yield inputs, self.target(inputs).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The learners
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Learner:
    """How a learner is built and trained. Defaults: the paper's backprop learner.

    :param num_hidden: ReLU units in the hidden layer; 0 gives a linear learner
    :param step_size: SGD step size, 0.01 in the paper
    :param weight_decay: L2 penalty, as SGD's ``weight_decay`` (each step
        theta <- theta - step_size * (grad + weight_decay * theta)); 0 for plain backprop
    :param shrink: shrink-and-perturb's lambda: after every step theta <- shrink * theta +
        perturb_std * N(0, 1) (``plasticity.snp.ShrinkPerturb`` toward zero); 1 for none
    :param perturb_std: shrink-and-perturb's sigma; 0 for none
    :param replacement_rate: continual backprop's rho; 0 for no CBP
    :param maturity_threshold: continual backprop's maturity threshold, in updates
    :param decay_rate: continual backprop's utility decay rate eta
    """

    num_hidden: int = 5
    step_size: float = 0.01
    weight_decay: float = 0.0
    shrink: float = 1.0
    perturb_std: float = 0.0
    replacement_rate: float = 0.0
    maturity_threshold: int = 100
    decay_rate: float = 0.99


def build_network(num_inputs: int, num_hidden: int, generator: torch.Generator) -> nn.Sequential:
    """The learner's network with LeCun-uniform weights and zero biases.

    :param num_inputs: input bits
    :param num_hidden: ReLU units; 0 gives a single Linear layer (the linear learner)
    :param generator: random source of the initial weights
    """
    if num_hidden == 0:
        net = nn.Sequential(nn.Linear(num_inputs, 1))
    else:
        net = nn.Sequential(nn.Linear(num_inputs, num_hidden), nn.ReLU(), nn.Linear(num_hidden, 1))
    return lecun_uniform_(net, generator)


def online_squared_errors(
    learner: Learner, problem: SlowlyChangingRegression, num_examples: int, seed: int
) -> np.ndarray:
    """Train ``learner`` online on the first ``num_examples`` of ``problem``.

    Every example's squared error is taken before the update on it. Batch size 1, as the paper.

    :param learner: the learner's settings
    :param problem: the example stream
    :param num_examples: how many examples to learn from
    :param seed: the learner's seed (initial weights, CBP's re-draws, the perturbations)
    :return: (num_examples,) float32 squared errors
    """
    net = build_network(problem.num_inputs, learner.num_hidden, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(
        net.parameters(), lr=learner.step_size, weight_decay=learner.weight_decay
    )
    methods: list[CBP | ShrinkPerturb] = []
    if learner.replacement_rate > 0:
        methods.append(
            CBP(
                replacement_rate=learner.replacement_rate,
                maturity_threshold=learner.maturity_threshold,
                decay_rate=learner.decay_rate,
                init="lecun_uniform",
            ).attach(net, optimizer, seed=seed)
        )
    if learner.shrink < 1 or learner.perturb_std > 0:
        methods.append(
            ShrinkPerturb(
                shrink=learner.shrink, noise_std=learner.perturb_std, target="zero"
            ).attach(net, optimizer, seed=seed)
        )
    for param in net.parameters():
        param.grad = torch.zeros_like(param)
    errors = np.empty(num_examples, dtype=np.float32)
    done = 0
    try:
        for inputs, targets in problem.chunks(num_examples):
            x_chunk = torch.from_numpy(inputs)
            y_chunk = torch.from_numpy(targets).unsqueeze(1)
            chunk_errors = torch.empty(len(inputs))
            for i in range(len(inputs)):
                chunk_errors[i] = squared_error_and_gradients_(
                    net, x_chunk[i : i + 1], y_chunk[i : i + 1]
                )
                optimizer.step()
            errors[done : done + len(inputs)] = chunk_errors.numpy()
            done += len(inputs)
    finally:
        for method in methods:
            method.detach()
    return errors


def squared_error_and_gradients_(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    """Squared error of ``net`` on one example; its gradient written into the ``.grad`` fields.

    The same gradient as ``loss.backward()``, by hand: with batch size 1 and 5 hidden units,
    autograd's fixed cost per call made the loop about 1.6x slower on this machine. The forward
    pass runs through the modules with grad enabled, so forward hooks (CBP's) see a training
    forward as usual.

    :param net: ``Sequential(Linear, ReLU, Linear)`` or ``Sequential(Linear)``
    :param x: input, shape (1, num_inputs)
    :param y: target, shape (1, 1)
    :return: the squared error before the update
    """
    if len(net) == 1:
        (output_layer,) = net
        hidden = x
        pre_activation = None
    else:
        input_layer, activation, output_layer = net
        pre_activation = input_layer(x)
        hidden = activation(pre_activation)
    output = output_layer(hidden)
    with torch.no_grad():
        error = output - y
        d_output = 2.0 * error
        torch.mm(d_output.T, hidden, out=output_layer.weight.grad)
        output_layer.bias.grad.copy_(d_output[0])
        if pre_activation is not None:
            # ReLU's derivative: 1 where the unit was active, 0 elsewhere.
            d_pre = (d_output @ output_layer.weight) * (pre_activation > 0)
            torch.mm(d_pre.T, x, out=input_layer.weight.grad)
            input_layer.bias.grad.copy_(d_pre[0])
        return float(error.square())


def bin_means(values: np.ndarray, bin_size: int) -> np.ndarray:
    """Means of consecutive bins of ``bin_size`` values (a last partial bin is dropped)."""
    num_bins = len(values) // bin_size
    return values[: num_bins * bin_size].reshape(num_bins, bin_size).mean(axis=1)


def binned_errors(
    learner: Learner,
    seed: int,
    num_examples: int = 1_000_000,
    bin_size: int = 40_000,
    flip_period: int = 10_000,
) -> np.ndarray:
    """Mean squared online error per bin of ``bin_size`` examples, for one learner and seed.

    The problem's seed and the learner's seed are both ``seed``.

    :param learner: the learner's settings
    :param seed: the run's seed
    :param num_examples: examples in the run, 1M in the paper
    :param bin_size: examples per bin (the paper plots bins of 2 flip periods)
    :param flip_period: examples between flips, 10,000 in the paper
    :return: (num_examples // bin_size,) mean squared errors
    """
    problem = SlowlyChangingRegression(seed, flip_period=flip_period)
    return bin_means(online_squared_errors(learner, problem, num_examples, seed), bin_size)
