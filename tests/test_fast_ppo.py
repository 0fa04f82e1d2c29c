"""FastPPO is SB3's PPO: the same rollout to the bit, the same update within float rounding,
the same saved files, callbacks, logger keys and hooks (small networks, Pendulum, short runs)."""

from __future__ import annotations

import copy
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import DummyVecEnv

from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.fast_ppo import FastPPO
from rl_plasticity.sb3.networks import network_groups
from rl_plasticity.specs import algorithm_class

torch.set_num_threads(1)

BUFFER = ("observations", "actions", "rewards", "episode_starts", "values", "log_probs")
BUFFER += ("advantages", "returns")
#: The paper's PPO settings (agents/ppo.toml) on 32-32 networks and 512-step rollouts.
PAPER = dict(
    learning_rate=1e-4,
    n_steps=512,
    batch_size=64,
    n_epochs=4,
    ent_coef=0.0,
    vf_coef=1.0,
    max_grad_norm=1e9,
    policy_kwargs=dict(
        net_arch=dict(pi=[32, 32], vf=[32, 32]),
        ortho_init=False,
        optimizer_kwargs=dict(eps=1e-8),
    ),
)
#: SB3's other code paths: entropy bonus, value clipping, gradient clipping, KL early stop.
OTHER = dict(
    PAPER, ent_coef=0.01, clip_range_vf=0.2, max_grad_norm=0.5, target_kl=0.002, n_epochs=10
)


class CustomFlatten(FlattenExtractor):
    """A features extractor of the user's: the fast path cannot know what it computes."""


def make_env(n_envs: int = 1) -> DummyVecEnv:
    return DummyVecEnv([lambda: gym.make("Pendulum-v1")] * n_envs)


class SpacesEnv(gym.Env):
    """Random observations of a given space, reward the sum of the action, truncated at 20 steps
    (so the time-limit bootstrap runs); the same stream of observations for every instance."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.observation_space.seed(0)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.steps += 1
        return self.observation_space.sample(), float(np.sum(action)), False, self.steps >= 20, {}


#: The observation and action spaces the fast path runs besides Pendulum's vectors.
SPACES = {
    "image": (lambda: spaces.Box(0, 255, (1, 6, 6), np.uint8), lambda: spaces.Box(-1, 1, (2,))),
    "discrete-obs": (lambda: spaces.Discrete(5), lambda: spaces.Box(-1, 1, (2,))),
    "multidiscrete-obs": (lambda: spaces.MultiDiscrete([3, 4]), lambda: spaces.Box(-1, 1, (2,))),
    "multibinary-obs": (lambda: spaces.MultiBinary(4), lambda: spaces.Box(-1, 1, (2,))),
    "matrix-actions": (lambda: spaces.Box(-1, 1, (3,)), lambda: spaces.Box(-1, 1, (2, 2))),
}


def pair(settings: dict, n_envs: int = 1, env=None) -> tuple[PPO, FastPPO]:
    """SB3's PPO and FastPPO built alike, both ready to collect a rollout from the same state.

    :param env: a function making one env (default Pendulum)
    """
    models = []
    for cls in (PPO, FastPPO):
        vec_env = make_env(n_envs) if env is None else DummyVecEnv([env] * n_envs)
        model = cls("MlpPolicy", vec_env, seed=0, device="cpu", **settings)
        model._setup_learn(10**6)
        models.append(model)
    models[1].policy.load_state_dict(models[0].policy.state_dict())
    return models[0], models[1]


def rollout(model: PPO) -> bool:
    callback = CallbackList([])
    callback.init_callback(model)
    return model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def same_rng_state(fn_a, fn_b) -> None:
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    fn_a()
    torch.set_rng_state(torch_state)
    np.random.set_state(numpy_state)
    fn_b()


@pytest.mark.parametrize("n_envs", [1, 3])
def test_rollout_is_sb3s_to_the_bit(n_envs: int) -> None:
    # 512 steps of Pendulum hold two time-limit truncations: the bootstrap with the terminal
    # observation's value is in the rewards.
    sb3, fast = pair(PAPER, n_envs)
    same_rng_state(lambda: rollout(sb3), lambda: rollout(fast))
    for name in BUFFER:
        np.testing.assert_array_equal(
            getattr(fast.rollout_buffer, name), getattr(sb3.rollout_buffer, name), err_msg=name
        )
    assert fast.rollout_buffer.full and fast.rollout_buffer.pos == fast.n_steps
    assert fast.rollout_buffer.episode_starts.sum() == 3 * n_envs  # the first step, 2 resets
    np.testing.assert_array_equal(fast._last_obs, sb3._last_obs)
    assert fast.num_timesteps == sb3.num_timesteps == 512 * n_envs
    assert list(fast.ep_info_buffer) == list(sb3.ep_info_buffer)


@pytest.mark.parametrize("case", SPACES)
def test_other_spaces_give_sb3s_rollout_and_update(case: str) -> None:
    # SB3 preprocesses these observations (images / 255, one-hot) and reshapes these actions;
    # the fast path must do the same, not just run.
    observation_space, action_space = SPACES[case]
    settings = dict(PAPER, n_steps=64, batch_size=32, n_epochs=2)
    sb3, fast = pair(settings, 2, lambda: SpacesEnv(observation_space(), action_space()))
    assert fast.fallback_reason is None
    same_rng_state(lambda: rollout(sb3), lambda: rollout(fast))
    for name in BUFFER:
        np.testing.assert_array_equal(
            getattr(fast.rollout_buffer, name), getattr(sb3.rollout_buffer, name), err_msg=name
        )
    fast.rollout_buffer = copy.deepcopy(sb3.rollout_buffer)
    same_rng_state(sb3.train, fast.train)
    for a, b in zip(sb3.policy.parameters(), fast.policy.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("settings", [PAPER, OTHER], ids=["paper", "clipped-kl-entropy"])
def test_one_train_gives_sb3s_parameters(settings: dict) -> None:
    sb3, fast = pair(settings)
    rollout(sb3)
    fast.rollout_buffer = copy.deepcopy(sb3.rollout_buffer)
    before = {name: p.detach().clone() for name, p in sb3.policy.named_parameters()}
    same_rng_state(sb3.train, fast.train)
    for (name, a), (_, b) in zip(
        sb3.policy.named_parameters(), fast.policy.named_parameters(), strict=True
    ):
        assert not torch.equal(a, before[name]), name
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    states_a = sb3.policy.optimizer.state_dict()["state"]
    states_b = fast.policy.optimizer.state_dict()["state"]
    assert states_a.keys() == states_b.keys()
    for key, state in states_a.items():
        for name, value in state.items():
            torch.testing.assert_close(states_b[key][name], value, rtol=1e-4, atol=1e-7)
    assert fast._n_updates == sb3._n_updates
    logged_a, logged_b = sb3.logger.name_to_value, fast.logger.name_to_value
    assert logged_a.keys() == logged_b.keys()
    for key, value in logged_a.items():
        assert logged_b[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_the_other_settings_exercise_early_stopping_and_clipping() -> None:
    sb3, fast = pair(OTHER)
    rollout(sb3)
    fast.rollout_buffer = copy.deepcopy(sb3.rollout_buffer)
    same_rng_state(sb3.train, fast.train)
    # target_kl stopped both before the 10 epochs, after the same number of updates.
    assert fast._n_updates == sb3._n_updates < OTHER["n_epochs"]


class Recorder(BaseCallback):
    """Records the callback calls and stops after ``stop_at`` steps."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.stop_at = stop_at

    def _on_training_start(self) -> None:
        self.calls.append("training_start")

    def _on_rollout_start(self) -> None:
        self.calls.append("rollout_start")

    def _on_step(self) -> bool:
        self.calls.append("step")
        assert {"infos", "dones", "rewards", "new_obs", "actions"} <= self.locals.keys()
        return self.stop_at is None or self.n_calls < self.stop_at

    def _on_rollout_end(self) -> None:
        self.calls.append("rollout_end")

    def _on_training_end(self) -> None:
        self.calls.append("training_end")


@pytest.mark.parametrize("stop_at", [None, 700])
def test_callbacks_are_called_as_sb3_calls_them(stop_at: int | None) -> None:
    calls = []
    for cls in (PPO, FastPPO):
        model = cls("MlpPolicy", make_env(), seed=0, device="cpu", **PAPER)
        recorder = Recorder(stop_at)
        model.learn(1024, callback=recorder)
        calls.append((recorder.calls, model.num_timesteps))
    assert calls[0] == calls[1]
    assert calls[1][1] == (stop_at or 1024)


def test_activation_hooks_see_exactly_the_training_forwards() -> None:
    model = FastPPO("MlpPolicy", make_env(), seed=0, device="cpu", **PAPER)
    seen: list[tuple[bool, int]] = []
    for layer in network_groups(model)[0].layers:
        layer.activation.register_forward_hook(
            lambda m, i, out: seen.append((torch.is_grad_enabled(), out.shape[0]))
        )
    model.learn(512)
    minibatches = PAPER["n_epochs"] * PAPER["n_steps"] // PAPER["batch_size"]
    # 4 hidden layers (2 policy, 2 value), each seen once per minibatch, with gradients.
    assert seen == [(True, PAPER["batch_size"])] * (4 * minibatches)


def test_continual_backprop_runs_on_it_as_on_sb3() -> None:
    replaced = []
    for cls in (PPO, FastPPO):
        model = cls("MlpPolicy", make_env(), seed=0, device="cpu", **PAPER)
        cbp = MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=4, seed=0)
        model.learn(1024, callback=cbp)
        replaced.append(cbp.replaced_total)
    assert replaced[0] == replaced[1]
    assert all(n > 0 for n in replaced[1].values())


def test_files_load_both_ways(tmp_path) -> None:
    fast = FastPPO("MlpPolicy", make_env(), seed=0, device="cpu", **PAPER)
    fast.learn(512)
    fast.save(tmp_path / "fast.zip")
    obs = fast.env.reset()
    expected = fast.predict(obs, deterministic=True)[0]
    for cls in (PPO, FastPPO):
        loaded = cls.load(tmp_path / "fast.zip", env=make_env(), device="cpu")
        assert type(loaded) is cls
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
        for a, b in zip(loaded.policy.parameters(), fast.policy.parameters(), strict=True):
            assert torch.equal(a, b)
        loaded.learn(512, reset_num_timesteps=False)
        assert loaded.num_timesteps == 1024
    sb3 = PPO("MlpPolicy", make_env(), seed=0, device="cpu", **PAPER)
    sb3.save(tmp_path / "sb3.zip")
    assert FastPPO.load(tmp_path / "sb3.zip", device="cpu").fallback_reason is None


@pytest.mark.parametrize(
    ("make", "kwargs", "reason"),
    [
        (lambda: gym.make("CartPole-v1"), {}, "action space Discrete"),
        (lambda: gym.make("Pendulum-v1"), {"use_sde": True}, "gSDE"),
        (
            lambda: SpacesEnv(spaces.Dict({"a": spaces.Box(-1, 1, (2,))}), spaces.Box(-1, 1, (1,))),
            {"policy": "MultiInputPolicy"},
            "policy class MultiInputActorCriticPolicy",
        ),
        (
            lambda: gym.make("Pendulum-v1"),
            {"policy_kwargs": {"features_extractor_class": CustomFlatten}},
            "features extractor",
        ),
    ],
    ids=["discrete-actions", "sde", "dict-obs", "extractor"],
)
def test_what_it_cannot_run_fast_runs_sb3s_code_with_a_note(make, kwargs, reason, capsys) -> None:
    # A model that falls back is SB3's PPO, correct: no warning (SB3's own tests run warning-free
    # code under "error"), a note at verbose >= 1 as SB3 prints its own.
    kwargs = {"policy": "MlpPolicy", **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = FastPPO(env=DummyVecEnv([make]), n_steps=64, batch_size=32, n_epochs=1, **kwargs)
    assert reason in quiet.fallback_reason
    assert "FastPPO" not in capsys.readouterr().out
    FastPPO(env=DummyVecEnv([make]), n_steps=64, batch_size=32, verbose=1, **kwargs)
    note = [line for line in capsys.readouterr().out.splitlines() if "FastPPO" in line]
    assert note == [f"FastPPO runs SB3's PPO code paths: {quiet.fallback_reason}"]
    quiet.learn(128)
    assert quiet.num_timesteps == 128
    assert FastPPO("MlpPolicy", make_env(), **PAPER).fallback_reason is None


def test_an_agent_spec_names_it() -> None:
    assert algorithm_class("FastPPO") is FastPPO
    assert issubclass(algorithm_class("FastPPO"), PPO)
