"""What an SB3 user sees: every callback trains with verbose=1, its logger keys printed whole."""

from __future__ import annotations

import csv

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.logger import KVWriter, configure
from stable_baselines3.common.vec_env import DummyVecEnv

from rl_plasticity.metrics.callback import PlasticityMetrics
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.layer_names import check_logger_keys, layer_labels, stdout_key

torch.set_num_threads(1)


class PhaseEvery(gym.Wrapper):
    """``info["context"]`` with a phase that goes up every ``period`` steps (a fake drift)."""

    def __init__(self, env: gym.Env, period: int) -> None:
        super().__init__(env)
        self.period, self.steps = period, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        info["context"] = {"phase": self.steps // self.period, "global_step": self.steps}
        return obs, reward, terminated, truncated, info


class KeyCollector(KVWriter):
    """Keeps the keys of every dump, as the stdout format receives them."""

    def __init__(self) -> None:
        self.dumps: list[list[str]] = []

    def write(self, key_values, key_excluded, step=0) -> None:
        self.dumps.append(list(key_values))

    def close(self) -> None:
        pass


def _callbacks(csv_path):
    return [
        PlasticityMetrics(every=256, csv_path=csv_path, batch_size=64),
        MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10, seed=0),
        MethodCallback("redo", tau=1.0, every_updates=5, seed=0),
        MethodCallback("snp", noise_std=1e-4, seed=0),
        MethodCallback("l2init", coeff=0.01),
        MethodCallback("reset", init="lecun_uniform", seed=0),
    ]


ALGOS = {
    "ppo": (PPO, "CartPole-v1", dict(n_steps=128, batch_size=32, n_epochs=1), 512),
    "sac": (SAC, "Pendulum-v1", dict(batch_size=32, learning_starts=50, buffer_size=2000), 500),
    "dqn": (
        DQN,
        "CartPole-v1",
        dict(batch_size=32, learning_starts=50, buffer_size=2000, train_freq=1),
        600,
    ),
}


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_callback_trains_with_verbose_1(algo, tmp_path, capsys):
    cls, env_id, kwargs, steps = ALGOS[algo]
    env = DummyVecEnv([lambda: PhaseEvery(gym.make(env_id), 250)])
    model = cls("MlpPolicy", env, verbose=1, seed=0, policy_kwargs={"net_arch": [16, 16]}, **kwargs)
    logger = configure(str(tmp_path), ["stdout", "csv", "tensorboard"])
    collector = KeyCollector()
    logger.output_formats.append(collector)
    model.set_logger(logger)
    callbacks = _callbacks(tmp_path / "metrics.csv")
    model.learn(steps, callback=callbacks, log_interval=1)
    printed = capsys.readouterr().out
    keys = {key for dump in collector.dumps for key in dump}
    for dump in collector.dumps:
        check_logger_keys(dump)
    first = {"ppo": "pi1", "sac": "pi1", "dqn": "q1"}[algo]
    assert f"plasticity/{first}/dead" in keys
    assert f"method/{first}/replaced" in keys
    assert "method/resets" in keys
    # The stdout table shows the short keys whole.
    assert f"   {first}/weight_mean_abs" in printed
    assert callbacks[-1].counters["resets"] >= 1
    # metrics.csv keeps the full names the report reads.
    with (tmp_path / "metrics.csv").open(newline="") as f:
        header = next(csv.reader(f))
    full = {"ppo": "policy/mlp_extractor.policy_net.0", "sac": "actor/latent_pi.0"}
    full["dqn"] = "q_net/q_net.0"
    assert f"plasticity/{full[algo]}/dead" in header


def test_layer_labels_of_sb3_layouts():
    layers = [
        ("policy", "mlp_extractor.policy_net.0"),
        ("policy", "mlp_extractor.policy_net.2"),
        ("policy", "mlp_extractor.value_net.0"),
        ("critic", "qf0.0"),
        ("critic", "qf0.2"),
        ("critic", "qf1.0"),
        ("q_net", "q_net.0"),
    ]
    assert list(layer_labels(layers).values()) == [
        "pi1",
        "pi2",
        "vf1",
        "qf0_1",
        "qf0_2",
        "qf1_1",
        "q1",
    ]


def test_layer_labels_stay_unique_for_any_names():
    layers = [
        ("actor", "body.0"),
        ("critic", "body.0"),
        ("critic", "a_very_long_sequential_name_one.0"),
        ("critic", "a_very_long_sequential_name_two.0"),
        ("x", "0"),
    ]
    labels = layer_labels(layers)
    assert labels[("actor", "body.0")] == "actor_body1"
    assert labels[("critic", "body.0")] == "critic_body1"
    assert labels[("x", "0")] == "h1"
    assert len(set(labels.values())) == len(layers)


def test_check_logger_keys_finds_what_sb3_stdout_refuses():
    long = "plasticity/policy/mlp_extractor.policy_net.0/replaced_total"
    assert stdout_key(long)[1].endswith("...")
    with pytest.raises(ValueError, match="longer"):
        check_logger_keys([long])
    check_logger_keys(["plasticity/pi1/dead", "plasticity/pi1/dormant_0.025", "method/resets"])
