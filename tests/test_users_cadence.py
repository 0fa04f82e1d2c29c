"""PlasticityMetrics' cadence: no silent rounding, and the last step always measured."""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
from stable_baselines3 import PPO, SAC

from rl_plasticity import PlasticityMetrics

torch.set_num_threads(1)


def _ppo():
    return PPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=128,
        batch_size=64,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [8]},
    )


def _steps(path):
    with path.open(newline="") as f:
        return [int(row["timestep"]) for row in csv.DictReader(f)]


def _learn(model, steps, callback):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.learn(steps, callback=callback)
    return [str(w.message) for w in record if "PlasticityMetrics" in str(w.message)]


def test_every_that_is_not_a_multiple_of_the_rollout_is_warned_with_its_spacing(tmp_path):
    path = tmp_path / "metrics.csv"
    messages = _learn(_ppo(), 512, PlasticityMetrics(every=100, csv_path=path, batch_size=32))
    assert messages == [
        "PlasticityMetrics: every=100 is not a multiple of the rollout (128 env steps); each "
        "measurement waits for the first rollout end at or after a multiple of 100, so "
        "measurements come every 128 steps on average, at multiples of 128. Give a multiple of "
        "128 for exact spacing"
    ]
    assert _steps(path) == [128, 256, 384, 512]


def test_a_multiple_of_the_rollout_is_not_warned_and_the_last_step_is_measured(tmp_path):
    path = tmp_path / "metrics.csv"
    assert _learn(_ppo(), 384, PlasticityMetrics(every=256, csv_path=path, batch_size=32)) == []
    # A baseline at the first rollout, 256, and the last step though 384 is not a multiple.
    assert _steps(path) == [128, 256, 384]


def test_the_last_step_is_measured_once(tmp_path):
    path = tmp_path / "metrics.csv"
    callback = PlasticityMetrics(every=128, csv_path=path, batch_size=32)
    _learn(_ppo(), 384, callback)
    assert _steps(path) == [128, 256, 384]
    assert callback.last_measured_step == 384


@pytest.mark.parametrize(("every", "rows"), [(40, [51, 80, 120, 130]), (130, [51, 130])])
def test_off_policy_measures_on_its_cadence_and_at_the_end(tmp_path, every, rows):
    path = tmp_path / "metrics.csv"
    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=50,
        batch_size=16,
        seed=0,
        policy_kwargs={"net_arch": [8]},
    )
    assert _learn(model, 130, PlasticityMetrics(every=every, csv_path=path, batch_size=16)) == []
    assert _steps(path) == rows
