"""PlasticityMetrics with PPO, SAC, TD3, DQN: logger keys, one metrics.csv row per measurement."""

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.logger import configure

from rl_plasticity.errors import ConfigError
from rl_plasticity.metrics.callback import PlasticityMetrics


class ContextInfo(gym.Wrapper):
    """Adds ``info["context"]`` as the nonstationary wrapper does; the phase changes at step 300."""

    def __init__(self, env):
        super().__init__(env)
        self.global_step = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.global_step += 1
        phase = int(self.global_step >= 300)
        info["context"] = {
            "phase": phase,
            "global_step": self.global_step,
            "friction": 1.0 if phase == 0 else 0.5,
        }
        return obs, reward, terminated, truncated, info


def _read(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_layer_columns(row, net, layer):
    for metric in (
        "dead",
        "rarely_active",
        "dormant_0.025",
        "dormant_0.1",
        "effective_rank",
        "srank",
        "stable_rank",
        "feature_norm",
        "cloned",
        "weight_mean_abs",
        "weight_rms",
        "weight_change",
        "grad_norm",
    ):
        assert f"plasticity/{net}/{layer}/{metric}" in row


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_ppo_rows_context_and_logger(tmp_path):
    env = ContextInfo(gym.make("CartPole-v1"))
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=128,
        batch_size=64,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [16, 16]},
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    path = tmp_path / "metrics.csv"
    callback = PlasticityMetrics(
        every=256,
        csv_path=path,
        batch_size=64,
        hessian_every=512,
        hessian_steps=5,
        probe_every=512,
        probe_steps=5,
    )
    model.learn(1024, callback=callback)
    rows = _read(path)
    # Rollout ends at 128, 256, ..., 1024: a baseline at 128, then one per multiple of 256.
    assert [int(r["timestep"]) for r in rows] == [128, 256, 512, 768, 1024]
    assert callback.n_measurements == 5
    assert list(rows[0])[:5] == [
        "timestep",
        "phase",
        "global_step",
        "friction",
        "plasticity/policy/mlp_extractor.policy_net.0/dead",
    ]
    assert [r["phase"] for r in rows] == ["0", "0", "1", "1", "1"]
    assert rows[-1]["friction"] == "0.5"
    _check_layer_columns(rows[0], "policy", "mlp_extractor.policy_net.0")
    _check_layer_columns(rows[0], "policy", "mlp_extractor.value_net.2")
    first, second = rows[0], rows[1]
    layer = "plasticity/policy/mlp_extractor.policy_net.0"
    # Before any update there is no gradient and no previous measurement.
    assert first[f"{layer}/weight_change"] == "nan"
    assert first[f"{layer}/grad_norm"] == "nan"
    assert float(second[f"{layer}/weight_change"]) > 0
    assert float(second[f"{layer}/grad_norm"]) > 0
    assert 0 < float(second[f"{layer}/effective_rank"]) <= 16
    # Hessian and probe on their own cadence: at the baseline and at 512, 1024.
    assert [r["plasticity/policy/hessian_erank"] != "" for r in rows] == [
        True,
        False,
        True,
        False,
        True,
    ]
    assert 0 <= float(rows[2]["plasticity/policy/hessian_erank"]) <= 1
    assert float(rows[2]["plasticity/policy/probe_loss_pi"]) > 0
    assert float(rows[0]["plasticity/policy/entropy"]) == pytest.approx(np.log(2), abs=0.01)
    progress = _read(tmp_path / "progress.csv")
    assert "plasticity/pi1/dead" in progress[0]
    assert "plasticity/policy/grad_norm" in progress[0]


@pytest.mark.parametrize("algorithm", [PPO, SAC])
def test_measurement_does_not_change_training(algorithm):
    def train(callback):
        if algorithm is PPO:
            model = PPO(
                "MlpPolicy",
                "CartPole-v1",
                n_steps=64,
                batch_size=32,
                n_epochs=1,
                seed=3,
                policy_kwargs={"net_arch": [8]},
            )
        else:
            model = SAC(
                "MlpPolicy",
                "Pendulum-v1",
                learning_starts=32,
                batch_size=16,
                seed=3,
                policy_kwargs={"net_arch": [8]},
            )
        model.learn(192, callback=callback)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()])

    with_metrics = train(
        PlasticityMetrics(
            every=64,
            batch_size=32,
            probe_every=64,
            probe_steps=2,
            hessian_every=64,
            hessian_steps=2,
        )
    )
    assert torch.equal(train(None), with_metrics)


def test_sac_and_td3_measure_actor_and_critic(tmp_path):
    for algorithm in (SAC, TD3):
        env = ContextInfo(gym.make("Pendulum-v1"))
        model = algorithm(
            "MlpPolicy",
            env,
            learning_starts=100,
            batch_size=32,
            seed=0,
            policy_kwargs={"net_arch": [16, 16]},
        )
        path = tmp_path / f"{algorithm.__name__}.csv"
        callback = PlasticityMetrics(
            every=100,
            csv_path=path,
            batch_size=64,
            hessian_every=200,
            hessian_steps=4,
            probe_every=200,
            probe_steps=3,
        )
        model.learn(400, callback=callback)
        rows = _read(path)
        # Measured after learning_starts: at 101 (first due step), 200, 300, 400.
        assert [int(r["timestep"]) for r in rows] == [101, 200, 300, 400]
        assert rows[-1]["phase"] == "1"
        _check_layer_columns(rows[-1], "actor", "latent_pi.0" if algorithm is SAC else "mu.0")
        _check_layer_columns(rows[-1], "critic", "qf0.2")
        _check_layer_columns(rows[-1], "critic", "qf1.0")
        for key in ("actor/hessian_top_eig", "critic/hessian_erank", "critic/probe_loss"):
            assert rows[1][f"plasticity/{key}"] != ""
        if algorithm is SAC:
            assert float(rows[-1]["plasticity/actor/ent_coef"]) > 0
            assert "plasticity/actor/entropy" in rows[-1]


def test_dqn_without_context(tmp_path):
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_starts=200,
        train_freq=4,
        seed=0,
        policy_kwargs={"net_arch": [16, 16]},
    )
    path = tmp_path / "metrics.csv"
    model.learn(
        1000,
        callback=PlasticityMetrics(
            every=250, csv_path=path, batch_size=128, hessian_every=500, hessian_steps=4
        ),
    )
    rows = _read(path)
    assert [int(r["timestep"]) for r in rows] == [201, 250, 500, 750, 1000]
    assert list(rows[0])[:3] == ["timestep", "phase", "plasticity/q_net/q_net.0/dead"]
    assert rows[0]["phase"] == ""
    _check_layer_columns(rows[-1], "q_net", "q_net.2")
    assert float(rows[-1]["plasticity/q_net/hessian_top_eig"]) > 0


def test_existing_file_is_appended_without_a_second_header(tmp_path):
    path = tmp_path / "metrics.csv"
    for _ in range(2):
        model = PPO(
            "MlpPolicy",
            "CartPole-v1",
            n_steps=64,
            batch_size=32,
            n_epochs=1,
            seed=0,
            policy_kwargs={"net_arch": [8]},
        )
        model.learn(64, callback=PlasticityMetrics(every=64, csv_path=path, batch_size=32))
    rows = _read(path)
    assert [r["timestep"] for r in rows] == ["64", "64"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("every", 0),
        ("batch_size", 1),
        ("hessian_every", -5),
        ("hessian_epsilon", 0.0),
        ("probe_steps", 1.5),
        ("cloned_threshold", 1.0),
    ],
)
def test_invalid_settings_raise_config_error(key, value):
    with pytest.raises(ConfigError) as error:
        PlasticityMetrics(**{key: value})
    assert error.value.key == key


@pytest.mark.parametrize("architecture", ["crelu", "fourier"])
def test_metrics_measure_the_features_of_concatenating_activations(tmp_path, architecture):
    from rl_plasticity.sb3.policies import method_policy

    policy, kwargs = method_policy(PPO, "MlpPolicy", {"name": architecture})
    kwargs["net_arch"] = [8, 8]
    model = PPO(
        policy, "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0, policy_kwargs=kwargs
    )
    path = tmp_path / "metrics.csv"
    model.learn(64, callback=PlasticityMetrics(every=64, csv_path=path, batch_size=64))
    row = _read(path)[-1]
    _check_layer_columns(row, "policy", "mlp_extractor.policy_net.2")
    for layer in ("mlp_extractor.policy_net.0", "mlp_extractor.value_net.2"):
        assert 0 < float(row[f"plasticity/policy/{layer}/effective_rank"]) <= 16  # 2 x 8 features


def test_metrics_warn_when_an_existing_csv_lacks_columns(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("timestep,phase\n1,\n")
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    with pytest.warns(UserWarning, match="header lacks .* columns this run measures"):
        model.learn(64, callback=PlasticityMetrics(every=64, csv_path=path, batch_size=64))
    assert list(_read(path)[-1]) == ["timestep", "phase"]
