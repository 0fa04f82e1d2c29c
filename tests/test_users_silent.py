"""Methods that cannot act say so: no hidden layers, no env context, a setting out of reach."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.redo import ReDo
from rl_plasticity.sb3.callbacks import MethodCallback, updates_in_run
from rl_plasticity.sb3.networks import network_groups

torch.set_num_threads(1)


class AttributeMLP(nn.Module):
    """An MLP as many people write it: layers as attributes, the activation as a function."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("core", [CBP, ReDo])
def test_core_on_a_network_without_sequential_layers_raises(core):
    net = AttributeMLP()
    with pytest.raises(ValueError, match=r"no hidden layer in AttributeMLP \(Linears: fc1, fc2\)"):
        core().attach(net, torch.optim.SGD(net.parameters(), lr=0.1))


@pytest.mark.parametrize("architecture", ["crelu", "fourier"])
@pytest.mark.parametrize("unit_method", ["cbp", "regrama"])
def test_unit_method_on_a_concatenating_activation_says_why(architecture, unit_method):
    from rl_plasticity.plasticity.protocol import make_method

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    net = make_method(architecture, {}).build_network(net)
    with pytest.raises(ValueError, match=r"concatenate two features per unit.*cannot act"):
        make_method(unit_method, {}).attach(net, torch.optim.SGD(net.parameters(), lr=0.1))


def test_callback_on_a_policy_without_hidden_layers_raises():
    model = PPO(
        "MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, policy_kwargs={"net_arch": []}
    )
    with pytest.raises(ValueError, match="CBP found no hidden layer in ActorCriticPolicy"):
        model.learn(64, callback=MethodCallback("cbp"))


def _ppo(env="CartPole-v1"):
    return PPO(
        "MlpPolicy",
        env,
        n_steps=128,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [8]},
    )


@pytest.mark.parametrize(
    "callback",
    [lambda: MethodCallback("reset", seed=0), lambda: MethodCallback("snp", when="change", seed=0)],
)
def test_at_change_methods_warn_when_the_env_has_no_context(callback):
    callback = callback()
    with pytest.warns(UserWarning, match="infos have none: it will never act") as record:
        _ppo().learn(256, callback=callback)
    assert sum("never act" in str(w.message) for w in record) == 1  # once, not every step


class Phase(gym.Wrapper):
    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["context"] = {"phase": 0}
        return obs, reward, terminated, truncated, info


def _caught(callback, env="CartPole-v1", steps=256):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _ppo(env).learn(steps, callback=callback)
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def test_no_warning_when_the_env_reports_a_phase_or_the_method_acts_every_step():
    env = DummyVecEnv([lambda: Phase(gym.make("CartPole-v1"))])
    assert not [m for m in _caught(MethodCallback("reset", seed=0), env) if "never act" in m]
    assert not [m for m in _caught(MethodCallback("snp", seed=0)) if "never act" in m]


def test_cbp_maturity_beyond_the_run_warns_at_training_start():
    # 256 steps of 128-step rollouts, 4 minibatches each, 1 epoch: 8 optimizer steps.
    messages = _caught(MethodCallback("cbp", maturity_threshold=8))
    assert any(
        "maturity_threshold=8 optimizer steps is beyond this run's at most 8" in m for m in messages
    )
    assert not [m for m in _caught(MethodCallback("cbp", maturity_threshold=7)) if "maturity" in m]


def test_redo_every_beyond_the_run_warns():
    messages = _caught(MethodCallback("redo", every_updates=9))
    assert any(
        "ReDo: every_updates=9 optimizer steps is beyond this run's at most 8" in m
        for m in messages
    )
    assert not [m for m in _caught(MethodCallback("redo", every_updates=8)) if "ReDo" in m]


class CountUpdates(BaseCallback):
    """The estimate at training start and the optimizer steps each network really took."""

    def _on_training_start(self) -> None:
        self.estimate = updates_in_run(self.model)
        self.counts = {}
        for group in network_groups(self.model):
            self.counts[group.name] = 0
            group.optimizer.register_step_post_hook(
                lambda *_, name=group.name: self.counts.__setitem__(name, self.counts[name] + 1)
            )

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("algo", "steps"),
    [
        (lambda: _ppo(), 300),
        (
            lambda: SAC(
                "MlpPolicy", "Pendulum-v1", learning_starts=50, policy_kwargs={"net_arch": [8]}
            ),
            120,
        ),
        (
            lambda: DQN(
                "MlpPolicy",
                "CartPole-v1",
                learning_starts=50,
                train_freq=4,
                gradient_steps=2,
                policy_kwargs={"net_arch": [8]},
            ),
            150,
        ),
    ],
)
def test_updates_in_run_bounds_the_optimizer_steps(algo, steps):
    counter = CountUpdates()
    algo().learn(steps, callback=counter)
    assert max(counter.counts.values()) <= counter.estimate
    assert max(counter.counts.values()) >= counter.estimate - 2  # a bound, not a guess


# -- plain PyTorch: the README's CBP line in a loop too short for its maturity threshold ----------


def _train(method, steps: int, **attach) -> list[str]:
    """``steps`` optimizer steps of a small MLP with ``method`` attached, then detached; the
    warnings given."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        method.attach(net, optimizer, seed=0, **attach)
        for _ in range(steps):
            x = torch.randn(32, 4)
            loss = net(x).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        method.detach()
    # only the method's own warnings: an earlier test's unclosed file may be collected here
    # and give a ResourceWarning (not a UserWarning)
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def test_plain_pytorch_cbp_that_never_acted_warns_once_at_detach():
    messages = _train(CBP(replacement_rate=1e-4), 20)
    assert messages == [
        "CBP: no unit became older than maturity_threshold=10000 optimizer steps in the 20 it "
        "took (oldest unit 20), so none was replaced. Train longer or lower maturity_threshold"
    ]
    # Mature units and a rate that replaces one every few steps: it acted, nothing to say.
    assert _train(CBP(replacement_rate=0.5, maturity_threshold=5), 20) == []


def test_plain_pytorch_expected_updates_warns_at_attach_and_only_once():
    messages = _train(CBP(), 20, expected_updates=2000)
    assert len(messages) == 1
    assert messages[0].startswith("CBP: maturity_threshold=10000 optimizer steps is beyond")
    assert _train(CBP(maturity_threshold=10), 20, expected_updates=2000) == []


def test_plain_pytorch_redo_that_never_checked_warns():
    assert _train(ReDo(every_updates=100), 20) == [
        "ReDo: every_updates=100 optimizer steps is more than the 20 it took: no unit was "
        "checked or reset. Train longer or lower every_updates"
    ]
    assert _train(ReDo(every_updates=10), 20) == []
