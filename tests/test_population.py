"""Population networks and the population regression learner: members are single networks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.problems.population.network import PopulationMLP
from rl_plasticity.problems.population.regression import (
    population_binned_errors,
    population_online_squared_errors,
    train_regression_population,
)
from rl_plasticity.problems.slowly_changing import (
    Learner,
    SlowlyChangingRegression,
    bin_means,
    build_network,
    online_squared_errors,
    squared_error_and_gradients_,
)

#: Short flip period, so that a test-length run sees several flips.
FLIP_PERIOD = 1_000
NUM_EXAMPLES = 5_000
SEEDS = [3, 0]
#: The forward products of a population are batched (baddbmm), a single network's are addmm: the
#: sums of 20 and 5 products may round differently, and SGD carries the difference on, so errors
#: agree to about 1e-5 after 5,000 examples, not bit for bit.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


def single_errors(learner: Learner, seed: int) -> np.ndarray:
    problem = SlowlyChangingRegression(seed, flip_period=FLIP_PERIOD)
    return online_squared_errors(learner, problem, NUM_EXAMPLES, seed)


def test_member_parameters_are_views_of_the_stacks() -> None:
    population = PopulationMLP(3, (4, 6, 2))
    torch.manual_seed(0)
    member = population.member(1)
    # Taking a member draws nothing from torch's global generator.
    assert torch.rand(1) == torch.rand(1, generator=torch.Generator().manual_seed(0))
    assert [type(m) for m in member] == [nn.Linear, nn.ReLU, nn.Linear]
    with torch.no_grad():
        population.linears[0].weight[1, 2, 3] = 5.0
        member[2].bias[1] = -7.0
    assert member[0].weight[2, 3] == 5.0
    assert population.linears[1].bias[1, 1] == -7.0
    # Other members are untouched.
    assert population.linears[0].weight[0].abs().sum() == 0
    assert population.linears[1].bias[2].abs().sum() == 0


def test_member_state_dict_loads_into_a_plain_network_with_the_same_outputs() -> None:
    generator = torch.Generator().manual_seed(0)
    nets = [
        nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
        for _ in range(3)
    ]
    for net in nets:
        for param in net.parameters():
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator))
    population = PopulationMLP.from_members(nets)
    x = torch.randn(3, 5, 4, generator=generator)
    outputs = population(x)
    for k, net in enumerate(nets):
        torch.testing.assert_close(outputs[k], net(x[k]))
        buffer = io.BytesIO()
        state = {key: value.clone() for key, value in population.member(k).state_dict().items()}
        torch.save(state, buffer)
        buffer.seek(0)
        plain = nn.Sequential(
            nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2)
        )
        plain.load_state_dict(torch.load(buffer))
        torch.testing.assert_close(plain(x[k]), net(x[k]))
        torch.testing.assert_close(plain(x[k]), population.member(k)(x[k]))
    # A member's network differs from another's: the stacking kept each member apart.
    assert not torch.allclose(outputs[0], nets[1](x[0]))


def test_from_members_refuses_mixed_architectures() -> None:
    with pytest.raises(ConfigError, match="members\\[1\\]"):
        PopulationMLP.from_members(
            [build_network(20, 5, torch.Generator()), nn.Sequential(nn.Linear(20, 1))]
        )
    with pytest.raises(ConfigError, match="members"):
        PopulationMLP.from_members([nn.Sequential(nn.Linear(20, 5), nn.Tanh(), nn.Linear(5, 1))])
    with pytest.raises(ConfigError, match="member: got 2"):
        PopulationMLP(2, (3, 1)).member(2)


LEARNERS = {
    "backprop": Learner(),
    "linear": Learner(num_hidden=0),
    "l2": Learner(weight_decay=1e-2),
    "shrink-perturb": Learner(shrink=1 - 1e-4, perturb_std=1e-3),
    # rho * 5 eligible units = 0.05 units per step: a replacement every 20 steps per member.
    "cbp": Learner(replacement_rate=1e-2, maturity_threshold=20),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_members_equal_single_learners_of_their_seeds(name: str) -> None:
    learner = LEARNERS[name]
    run = train_regression_population(learner, SEEDS, NUM_EXAMPLES, flip_period=FLIP_PERIOD)
    singles = [single_errors(learner, seed) for seed in SEEDS]
    for k in range(len(SEEDS)):
        np.testing.assert_allclose(run.errors[k], singles[k], **TOLERANCE)
    # The comparison tells seeds apart: member 0 is not the single learner of the other seed.
    assert not np.allclose(run.errors[0], singles[1], **TOLERANCE)
    if run.cbp is not None:
        totals = [method.replaced_total["0"] for method in run.cbp]  # per member, layer 0
        assert min(totals) >= 100, totals
        # The replacements matter: without them the errors are those of plain backprop.
        assert not np.allclose(run.errors[0], single_errors(Learner(), SEEDS[0]), **TOLERANCE)


def test_shrink_perturb_noise_is_each_members_own() -> None:
    # Seed 3 alone, and seed 3 as member 1 beside seed 5: the same noise either way.
    learner = LEARNERS["shrink-perturb"]
    alone = population_online_squared_errors(learner, [3], 2_000, flip_period=FLIP_PERIOD)
    beside = population_online_squared_errors(learner, [5, 3], 2_000, flip_period=FLIP_PERIOD)
    np.testing.assert_array_equal(beside[1], alone[0])
    without_noise = Learner(shrink=learner.shrink)
    quiet = population_online_squared_errors(without_noise, [3], 2_000, flip_period=FLIP_PERIOD)
    assert not np.allclose(quiet[0], alone[0], **TOLERANCE)


def test_trained_member_is_the_single_learners_network() -> None:
    # After training, member k's network makes the same predictions as a plain network
    # loaded from its state (what a saved member is).
    run = train_regression_population(LEARNERS["cbp"], SEEDS, 500, flip_period=FLIP_PERIOD)
    x = torch.from_numpy(next(SlowlyChangingRegression(0).chunks(10))[0])
    plain = build_network(20, 5, torch.Generator())
    plain.load_state_dict(run.network.member(1).state_dict())
    torch.testing.assert_close(plain(x), run.network(x.expand(2, -1, -1))[1])


def test_members_cbp_state_is_the_single_learners_and_saves_like_it() -> None:
    learner = LEARNERS["cbp"]
    run = train_regression_population(learner, SEEDS, 500, flip_period=FLIP_PERIOD)
    seed = SEEDS[1]
    net = build_network(20, 5, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(net.parameters(), lr=learner.step_size)
    single = CBP(replacement_rate=1e-2, maturity_threshold=20).attach(net, optimizer, seed=seed)
    for param in net.parameters():
        param.grad = torch.zeros_like(param)
    inputs, targets = next(SlowlyChangingRegression(seed, flip_period=FLIP_PERIOD).chunks(500))
    for x, y in zip(torch.from_numpy(inputs), torch.from_numpy(targets), strict=True):
        squared_error_and_gradients_(net, x[None], y.view(1, 1))
        optimizer.step()
    ours, theirs = run.cbp[1].state_dict(), single.state_dict()
    assert ours["steps"] == theirs["steps"] == 500
    assert torch.equal(ours["generator"], theirs["generator"])  # the same draws were taken
    mine, reference = ours["layers"]["0"], theirs["layers"]["0"]
    # The owed count is a float, equal to the single run's bit for bit (float64 arithmetic).
    assert isinstance(mine["accumulated"], float)
    assert mine["accumulated"] == reference["accumulated"]
    assert mine["replaced_total"] == reference["replaced_total"] > 0
    assert torch.equal(mine["age"], reference["age"])
    torch.testing.assert_close(mine["utility"], reference["utility"], **TOLERANCE)
    # A member's saved state continues as a single run's.
    resumed = CBP(replacement_rate=1e-2, maturity_threshold=20).attach(
        build_network(20, 5, torch.Generator()), seed=0
    )
    resumed.load_state_dict(ours)
    assert resumed.state_dict()["layers"]["0"]["accumulated"] == mine["accumulated"]


def test_binned_errors_are_bin_means_per_seed() -> None:
    learner = Learner()
    errors = population_online_squared_errors(learner, SEEDS, 1_000, flip_period=FLIP_PERIOD)
    binned = population_binned_errors(learner, SEEDS, 1_000, bin_size=250, flip_period=FLIP_PERIOD)
    assert binned.shape == (2, 4)
    np.testing.assert_allclose(binned[1], bin_means(errors[1], 250))


def test_bad_settings_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        population_online_squared_errors(Learner(), [], 10)
    with pytest.raises(ConfigError, match="seeds"):
        population_online_squared_errors(Learner(), [-1], 10)
    with pytest.raises(ConfigError, match="num_examples"):
        population_online_squared_errors(Learner(), [0], 0)
    with pytest.raises(ConfigError, match="num_hidden"):
        population_online_squared_errors(Learner(num_hidden=0, replacement_rate=1e-4), [0], 10)
    with pytest.raises(ConfigError, match="shrink"):
        population_online_squared_errors(Learner(shrink=1.5), [0], 10)


def test_digits_population_members_equal_single_learners_and_refuse_methods() -> None:
    from rl_plasticity.problems.continual import ContinualLearner, online_task_errors
    from rl_plasticity.problems.permuted_digits import PermutedDigits
    from rl_plasticity.problems.population.continual import population_task_errors

    learner = ContinualLearner(hidden=(32, 32), step_size=0.1, batch_size=16, weight_decay=1e-3)
    seeds = [0, 3, 7]

    def streams():
        return [PermutedDigits(seed, examples_per_task=320).tasks(4) for seed in seeds]

    population = population_task_errors(learner, streams(), 64, 10, seeds)
    singles = [
        online_task_errors(learner, stream, 64, 10, seed)
        for seed, stream in zip(seeds, streams(), strict=True)
    ]
    assert population.shape == (3, 4)
    # Within float rounding: at most one of a task's 320 images may be classified differently.
    np.testing.assert_allclose(population, singles, atol=1.5 / 320)
    assert not np.allclose(population[0], population[1])  # members are their own seeds
    with pytest.raises(ConfigError, match="only backprop and L2"):
        population_task_errors(ContinualLearner(method="cbp"), streams(), 64, 10, seeds)
    with pytest.raises(ConfigError, match="only SGD"):
        population_task_errors(ContinualLearner(optimizer="adam"), streams(), 64, 10, seeds)
