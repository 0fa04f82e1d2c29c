"""The plasticity callbacks on PPO, A2C, SAC, TD3 and DQN (tiny networks, short runs)."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from rl_plasticity.errors import ConfigError
from rl_plasticity.metrics.callback import PlasticityMetrics
from rl_plasticity.plasticity.optimizers import OPTIMIZERS, ShrinkPerturbAdam
from rl_plasticity.plasticity.registry import registered_methods
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.networks import network_groups
from tests.conftest import assert_same_nested

torch.set_num_threads(1)


class PhaseEveryNSteps(gym.Wrapper):
    """Adds ``info["context"]`` with a phase that goes up every ``period`` steps (a fake drift)."""

    def __init__(self, env: gym.Env, period: int) -> None:
        super().__init__(env)
        self.period = period
        self.steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        info["context"] = {"phase": self.steps // self.period, "global_step": self.steps}
        return obs, reward, terminated, truncated, info


def make_env(env_id: str, period: int = 10**9) -> DummyVecEnv:
    return DummyVecEnv([lambda: PhaseEveryNSteps(gym.make(env_id), period)])


TINY = dict(net_arch=[16, 16])
ALGOS = {
    "ppo": (PPO, "CartPole-v1", dict(n_steps=128, batch_size=32, n_epochs=2)),
    "a2c": (A2C, "CartPole-v1", dict(n_steps=8)),
    "sac": (SAC, "Pendulum-v1", dict(batch_size=32, learning_starts=50, buffer_size=2000)),
    "td3": (TD3, "Pendulum-v1", dict(batch_size=32, learning_starts=50, buffer_size=2000)),
    "dqn": (
        DQN,
        "CartPole-v1",
        dict(batch_size=32, learning_starts=50, buffer_size=2000, train_freq=1),
    ),
}
STEPS = {"ppo": 1024, "a2c": 1024, "sac": 400, "td3": 400, "dqn": 1000}


def build(algo: str, period: int = 10**9, seed: int = 0, **extra):
    cls, env_id, kwargs = ALGOS[algo]
    return cls(
        "MlpPolicy",
        make_env(env_id, period),
        policy_kwargs=dict(TINY),
        seed=seed,
        **kwargs,
        **extra,
    )


def count_steps(model) -> dict[str, list[int]]:
    counts = {}
    for group in network_groups(model):
        counts[group.name] = [0]
        group.optimizer.register_step_post_hook(
            lambda *_, c=counts[group.name]: c.__setitem__(0, c[0] + 1)
        )
    return counts


def no_hooks_left(model, counters: int = 0) -> bool:
    for group in network_groups(model):
        if len(group.optimizer._optimizer_step_post_hooks) != counters:
            return False
        if group.optimizer._optimizer_step_pre_hooks:
            return False
        if any(layer.activation._forward_hooks for layer in group.layers):
            return False
    return True


@pytest.mark.parametrize("algo", list(ALGOS))
def test_cbp_replaces_units_in_every_network(algo):
    model = build(algo)
    cbp = MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10, seed=0)
    model.learn(STEPS[algo], callback=cbp)
    replaced = cbp.state_dict()["cores"]
    nets = {g.name for g in network_groups(model)}
    assert set(replaced) == nets
    for net, state in replaced.items():
        for layer, layer_state in state["layers"].items():
            assert layer_state["replaced_total"] > 0, (net, layer)
    assert no_hooks_left(model)


class HookSpy(BaseCallback):
    """Counts the env steps at which an activation module carries a forward hook."""

    def __init__(self) -> None:
        super().__init__()
        self.hooked_steps = 0

    def _on_step(self) -> bool:
        layers = [layer for g in network_groups(self.model) for layer in g.layers]
        self.hooked_steps += any(layer.activation._forward_hooks for layer in layers)
        return True


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_activation_hooks_are_off_while_collecting_rollouts(algo):
    model = build(algo)
    cbp = MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10, seed=0)
    spy = HookSpy()
    model.learn(STEPS[algo], callback=[cbp, spy])
    assert spy.hooked_steps == 0  # rollouts run without the hooks (a slower call path)
    replaced = cbp.state_dict()["cores"]
    assert all(s["replaced_total"] > 0 for c in replaced.values() for s in c["layers"].values())


@pytest.mark.parametrize("algo", list(ALGOS))
def test_redo_snp_l2init_train_on_every_algorithm(algo):
    model = build(algo)
    steps = count_steps(model)
    redo = MethodCallback(
        "redo", tau=1.0, every_updates=5, seed=0
    )  # tau = 1: at least one unit per layer is <= the mean
    snp = MethodCallback("snp", noise_std=1e-4, seed=0)
    l2init = MethodCallback("l2init", coeff=0.01)
    model.learn(STEPS[algo], callback=[redo, snp, l2init])
    redo_state, snp_state = redo.state_dict()["cores"], snp.state_dict()["cores"]
    for net, counted in steps.items():
        assert counted[0] > 5
        assert all(n > 0 for n in redo_state[net]["replaced"]), net
        assert snp_state[net]["events"] == counted[0]  # one event after each optimizer step
    assert set(l2init.state_dict()["cores"]) == set(steps)
    assert no_hooks_left(model, counters=1)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3", "dqn"])
def test_reset_when_the_phase_goes_up(algo):
    model = build(algo, period=150)
    reset = MethodCallback("reset", init="lecun_uniform", seed=0)
    model.learn(STEPS[algo] // 2 + 100, callback=reset)
    assert reset.counters["resets"] == (STEPS[algo] // 2 + 100) // 150


def test_reset_redraws_networks_targets_and_optimizer_state():
    model = build("sac")
    model.learn(200)
    reset = MethodCallback("reset", init="lecun_uniform", seed=0)
    reset.init_callback(model)
    reset.on_training_start({}, {})
    before = model.policy.critic.qf0[0].weight.detach().clone()
    for phase in (0, 0, 1):
        reset.update_locals({"infos": [{"context": {"phase": phase}}]})
        reset.on_step()
    assert reset.counters["resets"] == 1
    critic = model.policy.critic
    assert not torch.equal(critic.qf0[0].weight, before)
    assert torch.all(critic.qf0[0].bias == 0)
    assert len(critic.optimizer.state) == 0 and len(model.policy.actor.optimizer.state) == 0
    for a, b in zip(critic.parameters(), model.policy.critic_target.parameters(), strict=True):
        assert torch.equal(a, b)


def test_shrink_perturb_at_change_acts_once_per_change():
    model = build("ppo", period=300)
    snp = MethodCallback("snp", when="change", seed=0)
    model.learn(1024, callback=snp)
    assert snp.state_dict()["cores"]["policy"]["events"] == 3
    assert snp.max_phase == 3


def test_reset_sb3_init_matches_ppo_orthogonal_gains():
    model = build("ppo")
    reset = MethodCallback("reset", seed=0)
    reset.init_callback(model)
    reset.on_training_start({}, {})
    reset.update_locals({"infos": [{"context": {"phase": 0}}]})
    reset.on_step()
    reset.update_locals({"infos": [{"context": {"phase": 2}}]})
    reset.on_step()
    w = model.policy.action_net.weight  # orthogonal with gain 0.01: rows of norm 0.01
    assert torch.allclose(w.norm(dim=1), torch.full((w.shape[0],), 0.01), atol=1e-5)


def test_save_load_continue_equals_uninterrupted(tmp_path):
    def first_half():
        model = build("ppo")
        cbp = MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10)
        model.learn(512, callback=cbp)
        return model, cbp

    def second_half(model, cbp):
        model.set_random_seed(1)  # the resumed run re-seeds; so does the uninterrupted one here
        model._last_obs = None  # both start the second half with a fresh env reset
        model.learn(512, callback=cbp, reset_num_timesteps=False)
        return {k: v.clone() for k, v in model.policy.state_dict().items()}, cbp.replaced_total

    model, cbp = first_half()
    model.save(tmp_path / "model.zip")
    torch.save(cbp.state_dict(), tmp_path / "method.pt")
    uninterrupted, replaced = second_half(model, cbp)

    loaded = PPO.load(tmp_path / "model.zip", env=make_env("CartPole-v1"))
    resumed_cbp = MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10)
    resumed_cbp.load_state_dict(torch.load(tmp_path / "method.pt"))
    resumed, resumed_replaced = second_half(loaded, resumed_cbp)

    assert resumed_replaced == replaced and sum(replaced.values()) > 0
    for key, value in uninterrupted.items():
        assert torch.equal(value, resumed[key]), key


class StatesAtStart(BaseCallback):
    """Records the other callbacks' states once they have attached (after them in the list)."""

    def __init__(self, *callbacks) -> None:
        super().__init__()
        self.callbacks, self.states = callbacks, []

    def _on_training_start(self) -> None:
        self.states = [c.state_dict() for c in self.callbacks]

    def _on_step(self) -> bool:
        return True


def test_sb3_save_and_load_carry_the_method_and_metrics_state(tmp_path):
    """SB3's own save and load (what CheckpointCallback uses), no state saved by hand: CBP's and
    PlasticityMetrics' state after the load equal what was saved, and training continues from it
    (CBP replaces the units it replaces without the reload)."""

    def callbacks():
        return (
            MethodCallback("cbp", replacement_rate=0.05, maturity_threshold=10),
            PlasticityMetrics(every=128, batch_size=32),
        )

    def second_half(model, cbp, metrics, *more):
        model.set_random_seed(1)
        model._last_obs = None  # both start the second half with a fresh env reset
        model.learn(512, callback=[cbp, metrics, *more], reset_num_timesteps=False)
        params = {k: v.clone() for k, v in model.policy.state_dict().items()}
        return params, cbp.replaced_total, metrics.n_measurements

    model = build("ppo")
    cbp, metrics = callbacks()
    model.learn(512, callback=[cbp, metrics])
    model.save(tmp_path / "model.zip")
    saved = [cbp.state_dict(), metrics.state_dict()]
    first_half = sum(cbp.replaced_total.values())
    assert first_half > 0 and metrics.n_measurements > 0
    uninterrupted = second_half(model, cbp, metrics)

    loaded = PPO.load(tmp_path / "model.zip", env=make_env("CartPole-v1"))
    fresh_cbp, fresh_metrics = callbacks()
    probe = StatesAtStart(fresh_cbp, fresh_metrics)
    resumed = second_half(loaded, fresh_cbp, fresh_metrics, probe)

    assert_same_nested(probe.states, saved)
    assert resumed[1] == uninterrupted[1] and resumed[2] == uninterrupted[2]
    assert sum(resumed[1].values()) > first_half  # it went on replacing units
    for key, value in uninterrupted[0].items():
        assert torch.equal(value, resumed[0][key]), key


def test_registry_and_config_errors():
    assert set(registered_methods()) >= {"cbp", "snp", "reset", "l2init", "redo"}
    assert OPTIMIZERS["adam"] is torch.optim.Adam
    assert OPTIMIZERS["snp_adam"] is ShrinkPerturbAdam
    with pytest.raises(ConfigError, match="replacement_rate"):
        MethodCallback("cbp", replacement_rate=2.0)
    with pytest.raises(ConfigError, match="when"):
        MethodCallback("snp", when="sometimes")
    with pytest.raises(ConfigError, match="init"):
        MethodCallback("reset", init="zeros")


def test_snp_optimizer_class_through_policy_kwargs():
    model = PPO(
        "MlpPolicy",
        make_env("CartPole-v1"),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs=dict(
            net_arch=[8],
            optimizer_class=ShrinkPerturbAdam,
            optimizer_kwargs=dict(shrink=0.9, target="zero"),
        ),
    )
    before = model.policy.value_net.weight.detach().clone()
    model.learn(64)
    assert isinstance(model.policy.optimizer, ShrinkPerturbAdam)
    # two optimizer steps, each shrinking by 0.9 after a small Adam update
    assert model.policy.value_net.weight.norm() < 0.85 * before.norm()
