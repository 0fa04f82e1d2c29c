"""Architecture and reset methods: LayerNorm, CReLU, deep Fourier features, plasticity injection,
Normalize-and-Project, periodic resets of the last layers (mechanism on known answers, then a
few hundred steps of PPO, SAC and DQN each)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.build import build_model
from rl_plasticity.plasticity.crelu import CReLU, CReLUActivation
from rl_plasticity.plasticity.fourier import DeepFourierFeatures, FourierActivation
from rl_plasticity.plasticity.injection import InjectedFeatures, InjectedLinear, Injection
from rl_plasticity.plasticity.injection import sites as injection_sites
from rl_plasticity.plasticity.layer_reset import LayerReset
from rl_plasticity.plasticity.layernorm import LayerNorm
from rl_plasticity.plasticity.layers import find_hidden_layers
from rl_plasticity.plasticity.nap import NormalizeAndProject
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.fast_ppo import FastPPO
from rl_plasticity.sb3.networks import network_groups
from rl_plasticity.sb3.policies import method_policy
from rl_plasticity.specs import load_agent_spec
from tests.test_plasticity_sb3 import PhaseEveryNSteps

torch.set_num_threads(1)

ALGOS = {
    "ppo": (PPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_epochs=2), 256),
    "sac": (SAC, "Pendulum-v1", dict(batch_size=32, learning_starts=50, buffer_size=1000), 150),
    "dqn": (
        DQN,
        "CartPole-v1",
        dict(batch_size=32, learning_starts=50, buffer_size=1000, train_freq=1),
        250,
    ),
}


def build(algo: str, method: dict | None = None, period: int = 10**9, cls=None):
    """A tiny model of ``algo`` whose policy carries ``method``'s architecture hooks."""
    base, env_id, kwargs, _ = ALGOS[algo]
    cls = cls or base
    policy, extra = method_policy(cls, "MlpPolicy", method) if method else ("MlpPolicy", {})
    env = DummyVecEnv([lambda: PhaseEveryNSteps(gym.make(env_id), period)])
    return cls(policy, env, policy_kwargs={"net_arch": [16, 16], **extra}, seed=0, **kwargs)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def trained_params(group) -> set[int]:
    return {id(p) for g in group.optimizer.param_groups for p in g["params"]}


# -- LayerNorm -------------------------------------------------------------------------------


def test_layernorm_normalizes_each_hidden_layer_and_leaves_the_output_alone():
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    LayerNorm(elementwise_affine=False).build_network(net)
    assert [type(m) for m in net] == [
        nn.Linear, nn.LayerNorm, nn.ReLU, nn.Linear, nn.LayerNorm, nn.Tanh, nn.Linear
    ]  # fmt: skip
    z = net[1](net[0](torch.randn(64, 3) * 5 + 3))
    assert torch.allclose(z.mean(-1), torch.zeros(64), atol=1e-5)
    assert torch.allclose(z.var(-1, unbiased=False), torch.ones(64), atol=1e-3)
    layers = find_hidden_layers(net)
    assert [layer.layer_norm for layer in layers] == [net[1], net[4]]
    # An output Linear -> Tanh with no head reading it (TD3's actor) gets no LayerNorm.
    actor = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2), nn.Tanh())
    LayerNorm().build_network(actor)
    assert sum(isinstance(m, nn.LayerNorm) for m in actor) == 1


@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
def test_layernorm_trains_with_each_algorithm(algo):
    model = build(algo, {"name": "layernorm"})
    for group in network_groups(model):
        assert group.layers and all(layer.layer_norm is not None for layer in group.layers)
        assert all(id(layer.layer_norm.weight) in trained_params(group) for layer in group.layers)
    norms = [m for m in model.policy.modules() if isinstance(m, nn.LayerNorm)]
    model.learn(ALGOS[algo][3])
    assert any(not torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("cbp", {"replacement_rate": 0.05, "maturity_threshold": 4}),
        ("redo", {"tau": 0.5, "every_updates": 2}),
    ],
)
def test_unit_methods_replace_units_of_a_layernorm_network(name, settings):
    model = build("ppo", {"name": "layernorm"})
    unit = MethodCallback(name, seed=0, **settings)
    model.learn(256, callback=unit)
    assert sum(unit.replaced_total.values()) > 0
    layer = network_groups(model)[0].layers[0]
    assert layer.layer_norm is not None and layer.layer_norm.weight.grad is not None


def test_fast_ppo_runs_sb3_code_for_a_layernorm_policy():
    model = build("ppo", {"name": "layernorm"}, cls=FastPPO)
    assert "MethodActorCritic" in model.fallback_reason
    model.learn(128)
    assert model.num_timesteps == 128


# -- CReLU and deep Fourier features -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "activation", "halves"),
    [
        (CReLU, CReLUActivation, (torch.relu, lambda z: torch.relu(-z))),
        (DeepFourierFeatures, FourierActivation, (torch.sin, torch.cos)),
    ],
)
def test_concatenating_activation_doubles_the_features(method, activation, halves):
    z = torch.randn(5, 7)
    features = activation()(z)
    assert features.shape == (5, 14)
    assert torch.equal(features[:, :7], halves[0](z)) and torch.equal(features[:, 7:], halves[1](z))
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    method().build_network(net)
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)] == [
        (3, 8), (16, 6), (12, 2)
    ]  # fmt: skip
    assert isinstance(net[1], activation) and isinstance(net[3], activation)
    assert net(torch.randn(4, 3)).shape == (4, 2)
    halved = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    method(width="halve_units").build_network(halved)
    assert [(m.in_features, m.out_features) for m in halved if isinstance(m, nn.Linear)] == [
        (3, 4), (8, 3), (6, 2)
    ]  # fmt: skip


@pytest.mark.parametrize("method", [CReLU, DeepFourierFeatures])
def test_parameter_matched_width_is_kumar_et_al_s(method):
    """Kumar et al. 2023 (App. A.1.3) remove 9% of the units of their 784-100-100-10 MLP so that
    Concat ReLU keeps at least the parameter count; the PPO-shaped network (two towers and heads
    outside them) keeps its count too."""
    net = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU())
    net.append(nn.Linear(100, 10))
    count = sum(p.numel() for p in net.parameters())
    method(width="match_parameters").build_network(net)
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [91, 91, 10]
    assert count <= sum(p.numel() for p in net.parameters()) < 1.01 * count
    assert net(torch.randn(2, 784)).shape == (2, 10)

    class Towers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pi = nn.Sequential(nn.Linear(17, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
            self.vf = nn.Sequential(nn.Linear(17, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
            self.action, self.value = nn.Linear(64, 6), nn.Linear(64, 1)

    towers = Towers()
    count = sum(p.numel() for p in towers.parameters())
    method(width="match_parameters").build_network(towers)
    after = sum(p.numel() for p in towers.parameters())
    assert count <= after < 1.03 * count and towers.action.in_features == towers.value.in_features
    x = torch.randn(2, 17)
    assert towers.action(towers.pi(x)).shape == (2, 6) and towers.value(towers.vf(x)).shape == (
        2,
        1,
    )


@pytest.mark.parametrize("name", ["crelu", "fourier"])
@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
def test_concatenating_activation_trains_with_each_algorithm(algo, name):
    model = build(algo, {"name": name})
    before = snapshot(model)
    for group in network_groups(model):
        doubled = [
            m for m in group.module.modules() if isinstance(m, nn.Linear) and m.in_features == 32
        ]
        assert doubled, group.name  # every reader of a 16-unit layer reads 32 features
        assert all(id(m.weight) in trained_params(group) for m in doubled)
    model.learn(ALGOS[algo][3])
    after = model.policy.state_dict()
    moved = [k for k, v in after.items() if v.shape[-1:] == (32,) and not torch.equal(v, before[k])]
    assert moved


def test_crelu_model_saves_and_loads(tmp_path):
    model = build("sac", {"name": "crelu"})
    model.learn(100)
    model.save(tmp_path / "m.zip")
    loaded = SAC.load(tmp_path / "m.zip")
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, loaded.policy.state_dict()[key]), key
    obs = torch.randn(3, 3)
    with torch.no_grad():
        assert torch.equal(model.policy.actor(obs, True), loaded.policy.actor(obs, True))


def test_unknown_width_is_a_config_error():
    with pytest.raises(ConfigError, match=r"width.*double_fan_in, halve_units, match_parameters"):
        CReLU(width="double")


def test_no_warning_from_a_plain_layernorm_ppo():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("ppo", {"name": "layernorm"}).learn(64)


# -- Normalize-and-Project ---------------------------------------------------------------------


def test_nap_keeps_each_normalized_layer_at_its_initial_norm():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    nap = NormalizeAndProject()
    nap.build_network(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    nap.attach(net, optimizer)
    hidden = [net[0].weight, net[3].weight]
    start = [float(w.detach().norm()) for w in hidden]
    output_start = float(net[6].weight.detach().norm())
    x, y = torch.randn(64, 4), torch.randn(64, 1) * 10
    for _ in range(50):
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
    assert [float(w.detach().norm()) for w in hidden] == pytest.approx(start, rel=1e-5)
    # the output layer is not projected
    assert float(net[6].weight.detach().norm()) != pytest.approx(output_start, rel=1e-2)
    assert nap.steps == 50
    nap.detach()  # without the projection the same training moves the norms
    for _ in range(50):
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
    assert [float(w.detach().norm()) for w in hidden] != pytest.approx(start, rel=1e-3)


@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
def test_nap_trains_with_each_algorithm(algo):
    model = build(algo, {"name": "nap"})
    nap = MethodCallback("nap", seed=0)
    model.learn(ALGOS[algo][3], callback=nap)
    for group in network_groups(model):
        norms = nap.state_dict()["cores"][group.name]["norms"]
        weights = [layer.incoming.weight for layer in group.layers]
        assert [float(w.detach().norm()) for w in weights] == pytest.approx(norms, rel=1e-5)
        assert nap.state_dict()["cores"][group.name]["steps"] > 0


# -- periodic resets of the last layers ---------------------------------------------------------


def test_layer_reset_redraws_the_last_layers_only_and_drops_their_adam_state():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    reset = LayerReset(n_layers=2, every_updates=5, init="lecun_uniform").attach(
        net, optimizer, seed=0
    )
    assert reset.reset_modules == [net[4], net[2]]
    x, y = torch.randn(32, 4), torch.randn(32, 2)

    def step() -> None:
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()

    for _ in range(4):
        step()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    step()  # the 5th step: step, then reset
    after = net.state_dict()
    assert reset.resets == 1
    assert not torch.equal(after["0.weight"], before["0.weight"])  # the step itself moved it
    for name in ("2.weight", "4.weight"):
        assert (after[name] - before[name]).abs().max() > 0.05  # re-drawn, not a small step
    assert torch.equal(after["4.bias"], torch.zeros(2))  # lecun_uniform: zero biases
    assert net[0].weight in optimizer.state and optimizer.state[net[0].weight]["step"] == 5
    for param in (*net[2].parameters(), *net[4].parameters()):
        assert param not in optimizer.state
    drawn = net[4].weight.detach().clone()
    step()
    assert not torch.equal(net[4].weight, drawn)  # it trains after the reset
    assert optimizer.state[net[4].weight]["step"] == 1


@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
def test_layer_reset_at_each_change_with_each_algorithm(algo):
    model = build(algo, period=60)
    cb = MethodCallback("layer_reset", every_updates=0, at_change=True, seed=0)
    model.learn(ALGOS[algo][3], callback=cb)
    assert cb.counters["layer_resets"] == ALGOS[algo][3] // 60


# -- plasticity injection -----------------------------------------------------------------------


def test_injection_keeps_the_output_freezes_the_old_head_and_trains_the_new_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    method = Injection(at_change=True, init="lecun_uniform")
    method.build_network(net)
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, InjectedFeatures, InjectedLinear]
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    method.attach(net, optimizer, seed=0)
    x, y = torch.randn(32, 4), torch.randn(32, 2)

    def step() -> None:
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    with torch.no_grad():
        before = net(x)
    old = [net[2].linears[0].weight, net[3].linears[0].weight]
    new = [net[2].linears[1].weight, net[3].linears[1].weight]
    new0 = [net[2].linears[2].weight, net[3].linears[2].weight]
    assert method.inject()
    with torch.no_grad():
        assert torch.equal(net(x), before)  # unchanged at the moment of injection
    assert all(torch.equal(a, b) for a, b in zip(new, new0, strict=True))
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(w) in in_optimizer for w in new)
    assert all(not w.requires_grad for w in old + new0) and all(w.requires_grad for w in new)
    assert all(w not in optimizer.state for w in old + new)  # state dropped / fresh
    frozen = [w.detach().clone() for w in old + new0]
    drawn = [w.detach().clone() for w in new]
    step()
    assert all(torch.equal(w, f) for w, f in zip(old + new0, frozen, strict=True))
    assert all(not torch.equal(w, d) for w, d in zip(new, drawn, strict=True))
    assert optimizer.state[new[0]]["step"] == 1
    assert not method.inject()  # max_injections = 1


@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
def test_injection_at_a_change_with_each_algorithm(algo, tmp_path):
    model = build(algo, {"name": "injection"}, period=90)
    cb = MethodCallback("injection", seed=0)
    model.learn(ALGOS[algo][3], callback=cb)
    assert cb.counters["injections"] == 1
    for group in network_groups(model):
        for site in injection_sites(group.module):
            new, new0 = site.linears[1], site.linears[2]
            assert site.count.value == 1 and new.weight.requires_grad
            assert not torch.equal(new.weight, new0.weight)  # theta' trained after injection
    if algo == "sac":  # the target computes the injected heads too
        assert all(s.count.value == 1 for s in injection_sites(model.policy.critic_target))
        model.save(tmp_path / "m.zip")
        loaded = SAC.load(tmp_path / "m.zip")
        obs = torch.randn(5, 3)
        with torch.no_grad():
            assert torch.equal(model.policy.actor(obs, True), loaded.policy.actor(obs, True))
        flags = [p.requires_grad for p in loaded.policy.actor.parameters()]
        assert flags == [p.requires_grad for p in model.policy.actor.parameters()]
        assert all(s.count.value == 1 for s in injection_sites(loaded.policy.critic_target))


def test_injection_settings_must_match_the_built_heads():
    model = build("dqn", {"name": "injection"})
    with pytest.raises(ValueError, match=r"room for 1 injections.*max_injections=2"):
        model.learn(64, callback=MethodCallback("injection", max_injections=2))


def test_periodic_injection_reaches_the_target_network():
    model = build("dqn", {"name": "injection", "at_change": False, "every_updates": 40})
    cb = MethodCallback("injection", at_change=False, every_updates=40, seed=0)
    model.learn(200, callback=cb)
    assert cb.counters["injections"] == 1  # max_injections = 1
    assert all(s.count.value == 1 for s in injection_sites(model.policy.q_net_target))
    state = model.policy.q_net_target.state_dict()
    assert all(int(v) == 1 for k, v in state.items() if k.endswith("injected"))


def test_nap_options_project_the_output_layer_and_the_layernorm_jointly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    nap = NormalizeAndProject(project_output=True, project_affine=True)
    nap.build_network(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    nap.attach(net, optimizer)
    norm = net[1]

    def norms() -> list[float]:
        affine = torch.cat([norm.weight, norm.bias]).detach()
        return [float(net[3].weight.detach().norm()), float(affine.norm())]

    start = norms()
    assert start[1] == pytest.approx(4.0)  # ||(1, ..., 1, 0, ..., 0)|| = sqrt(16)
    x, y = torch.randn(64, 4), torch.randn(64, 1) * 10
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
    assert norms() == pytest.approx(start, rel=1e-5)
    assert not torch.equal(norm.bias, torch.zeros(16))  # it trained, on the sphere


@pytest.mark.parametrize("spec", ["ppo-layernorm", "ppo-crelu", "ppo-fourier", "ppo-nap"])
def test_fast_ppo_specs_with_an_architecture_build_sb3s_policy_and_say_why(spec):
    agent = load_agent_spec(spec)
    assert agent.algorithm == "FastPPO"
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    model = build_model(agent, env, 0, "cpu")
    assert isinstance(model, FastPPO) and model.fallback_reason
    changed = (nn.LayerNorm, CReLUActivation, FourierActivation)
    assert any(isinstance(m, changed) for m in model.policy.mlp_extractor.modules())
