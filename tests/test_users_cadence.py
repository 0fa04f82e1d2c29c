"""PlasticityMetrics' cadence: no silent rounding, and the last step always measured."""

from __future__ import annotations

import csv
import inspect
import warnings

import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.metrics.callback import PlasticityMetrics

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


def _rows(path):
    with path.open(newline="") as f:
        return {row["timestep"]: row for row in csv.DictReader(f)}


def test_the_last_step_measurement_leaves_later_measurements_as_they_were(tmp_path):
    whole, split = tmp_path / "whole.csv", tmp_path / "split.csv"
    _learn(_ppo(), 768, PlasticityMetrics(every=256, csv_path=whole, batch_size=32))
    model, callback = _ppo(), PlasticityMetrics(every=256, csv_path=split, batch_size=32)
    _learn(model, 384, callback)
    model.learn(384, callback=callback, reset_num_timesteps=False)
    assert _steps(split) == [128, 256, 384, 512, 768]
    assert _steps(whole) == [128, 256, 512, 768]
    for step in ("512", "768"):  # same batches, same weight_change reference
        assert _rows(split)[step] == _rows(whole)[step]


class StopAt(BaseCallback):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.num_timesteps < self.step


def test_a_run_stopped_early_is_not_measured_at_its_last_step(tmp_path):
    # A stop (SB3: a callback returning False; rlp train: a signal) keeps the cadence, so that
    # the resumed run's metrics.csv is the uninterrupted one's.
    path = tmp_path / "metrics.csv"
    callback = PlasticityMetrics(every=40, csv_path=path, batch_size=16)
    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=50,
        batch_size=16,
        seed=0,
        policy_kwargs={"net_arch": [8]},
    )
    model.learn(200, callback=[StopAt(100), callback])
    assert model.num_timesteps == 100
    assert _steps(path) == [51, 80]


def test_the_warning_points_at_the_users_line_not_at_sb3(tmp_path):
    # SB3 calls the callback from its callbacks.py; a warning attributed there (stacklevel=2) is
    # one a user cannot find in their code, nor filter by module.
    model = _ppo()
    callback = PlasticityMetrics(every=100, csv_path=tmp_path / "m.csv")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        model.learn(128, callback=callback)
    (warning,) = [w for w in record if "PlasticityMetrics" in str(w.message)]
    assert (warning.filename, warning.lineno) == (__file__, line)
