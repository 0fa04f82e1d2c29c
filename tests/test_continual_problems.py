"""Permuted digits and the plain-PyTorch runner of any registered method on supervised tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_plasticity.errors import ConfigError
from rl_plasticity.problems.continual import (
    ContinualLearner,
    build_learner,
    online_task_errors,
)
from rl_plasticity.problems.permuted_digits import NUM_CLASSES, NUM_PIXELS, PermutedDigits, digits
from rl_plasticity.problems.slowly_changing import (
    Learner,
    SlowlyChangingRegression,
    online_squared_errors,
)


def test_each_task_is_every_image_once_with_one_pixel_permutation() -> None:
    images, labels = digits()
    assert images.shape == (1797, NUM_PIXELS) and images.min() == 0.0 and images.max() == 1.0
    first, second = PermutedDigits(3).tasks(2)
    for inputs, targets in (first, second):
        # One permutation of the columns: the column sums are the data's, permuted...
        np.testing.assert_allclose(np.sort(inputs.sum(axis=0)), np.sort(images.sum(axis=0)))

        # ...and every image appears once: its sorted pixel values with its label.
        def rows(x: np.ndarray, y: np.ndarray) -> list:
            return sorted(map(tuple, np.column_stack([np.sort(x, axis=1), y])))

        assert rows(inputs, targets) == rows(images, labels)
    assert not np.array_equal(first[0].sum(axis=0), second[0].sum(axis=0))
    assert not np.array_equal(first[1], second[1])  # a new order of the images


def test_the_stream_is_a_function_of_the_seed_and_a_prefix_of_longer_runs() -> None:
    short = list(PermutedDigits(7).tasks(2))
    long = list(PermutedDigits(7).tasks(3))
    other = next(PermutedDigits(8).tasks(1))
    for (x1, y1), (x2, y2) in zip(short, long, strict=False):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(short[0][0], other[0])
    unpermuted, _ = next(PermutedDigits(7, permute_first=False).tasks(1))
    images, _ = digits()
    assert any(np.array_equal(unpermuted[0], row) for row in images[:1797])


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="examples_per_task"):
        PermutedDigits(0, examples_per_task=5000)
    with pytest.raises(ConfigError, match="optimizer"):
        ContinualLearner(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="loss"):
        online_task_errors(ContinualLearner(), [], NUM_PIXELS, NUM_CLASSES, 0, loss="hinge")


def test_backprop_learns_permuted_digits_within_a_few_tasks() -> None:
    tasks = PermutedDigits(0, examples_per_task=600).tasks(4)
    errors = online_task_errors(ContinualLearner(step_size=0.1), tasks, NUM_PIXELS, 10, seed=0)
    assert errors.shape == (4,)
    assert np.all((errors >= 0) & (errors <= 1))
    assert errors[-1] < 0.5  # chance is 0.9


def test_a_registered_method_is_built_wrapped_attached_and_acts_at_task_changes() -> None:
    learner = ContinualLearner(hidden=(8,), method="upgd", settings={"sigma": 1e-3})
    net, optimizer, method = build_learner(learner, NUM_PIXELS, NUM_CLASSES, seed=0)
    assert method is not None and method.module is net and method.optimizer is optimizer
    assert type(optimizer).__name__ != "SGD"  # UPGD's wrap_optimizer replaced it
    # The reset method: a fresh network at every task after the first.
    learner = ContinualLearner(hidden=(8,), method="reset", settings={"init": "lecun_uniform"})
    tasks = list(PermutedDigits(0, examples_per_task=64).tasks(3))
    errors = online_task_errors(learner, tasks, NUM_PIXELS, NUM_CLASSES, seed=0)
    backprop = online_task_errors(
        ContinualLearner(hidden=(8,)), tasks, NUM_PIXELS, NUM_CLASSES, seed=0
    )
    assert errors[0] == backprop[0] and not np.array_equal(errors[1:], backprop[1:])


def test_the_runner_equals_the_hand_written_regression_loop() -> None:
    # Batch 1, SGD 0.01, 5 ReLU units, squared error: the same numbers as the paper learner of
    # problems.slowly_changing (hand-written gradient), so every registered method can run on
    # the slowly-changing regression through the generic runner.
    problem = SlowlyChangingRegression(seed=2, flip_period=300)
    expected = online_squared_errors(Learner(), problem, 900, seed=2)
    learner = ContinualLearner(hidden=(5,), step_size=0.01, batch_size=1)
    per_task = online_task_errors(learner, problem.chunks(900), 20, 1, seed=2, loss="squared")
    np.testing.assert_allclose(per_task, expected.reshape(3, 300).mean(axis=1), rtol=1e-4)


def test_cbp_replaces_units_through_the_optimizer_hooks() -> None:
    learner = ContinualLearner(
        hidden=(16, 16),
        method="cbp",
        settings={"replacement_rate": 0.05, "maturity_threshold": 5},
    )
    net, optimizer, method = build_learner(learner, NUM_PIXELS, NUM_CLASSES, seed=1)
    x, y = next(PermutedDigits(1, examples_per_task=192).tasks(1))
    for start in range(0, 192, 16):
        loss = torch.nn.functional.cross_entropy(
            net(torch.from_numpy(x[start : start + 16])), torch.from_numpy(y[start : start + 16])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert method.steps == 12
    assert sum(method.replaced_total.values()) > 0
