"""CBP with instantaneous utility, weight clipping, ReGraMa, UPGD: mechanisms on known cases, and
each trained with PPO, SAC and DQN as a callback (tiny nets, short runs)."""

from __future__ import annotations

import math

import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from torch import nn
from trac_optimizer.trac import is_trac

from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.regrama import ReGraMa
from rl_plasticity.plasticity.trac import TRAC
from rl_plasticity.plasticity.upgd import UPGDOptimizer
from rl_plasticity.plasticity.weight_clipping import WeightClipping
from rl_plasticity.sb3.callbacks import MethodCallback
from rl_plasticity.sb3.networks import network_groups
from rl_plasticity.sb3.policies import method_policy
from rl_plasticity.specs import load_agent_spec

torch.set_num_threads(1)


def test_cbpi_spec_is_cbp_with_instantaneous_utility():
    method = load_agent_spec("ppo-cbpi").method
    assert method["name"] == "cbp" and method["decay_rate"] == 0.0
    assert load_agent_spec("ppo-cbp").method["replacement_rate"] == method["replacement_rate"]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    cbp = CBP(decay_rate=0.0, replacement_rate=0.1, maturity_threshold=0).attach(
        net, torch.optim.Adam(net.parameters())
    )
    contribution = net[2].weight.abs().sum(0)
    first = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    latest = torch.tensor([[3.0, 2.0, 0.0, 1.0]])
    cbp.step([first])
    cbp.step([latest])  # 0.1 * 4 units per step: the third step replaces one
    assert torch.allclose(cbp.units[0].utility, latest[0] * contribution)  # no memory of `first`
    replaced = cbp.step([latest])
    assert replaced[0].tolist() == [2]  # least instantaneous contribution


@pytest.mark.parametrize("optimizer_state", ["zero", "keep"])
def test_cbp_optimizer_state_of_replaced_units(optimizer_state):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    adam = torch.optim.Adam(net.parameters())
    cbp = CBP(replacement_rate=0.25, maturity_threshold=0, optimizer_state=optimizer_state).attach(
        net, None
    )
    cbp.optimizer = adam  # steps driven by hand below
    net(torch.randn(8, 3)).pow(2).sum().backward()
    adam.step()
    before = adam.state[net[0].weight]["exp_avg"].clone()
    unit = int(cbp.step([torch.tensor([[1.0, 1.0, 0.0, 1.0]])])[0][0])
    assert unit == 2
    after = adam.state[net[0].weight]["exp_avg"]
    assert torch.equal(after[[0, 1, 3]], before[[0, 1, 3]])
    if optimizer_state == "zero":
        assert torch.all(after[unit] == 0) and torch.all(
            adam.state[net[2].weight]["exp_avg"][:, unit] == 0
        )
    else:  # the Nature code's RL PPO: the new unit inherits the replaced unit's moments
        assert torch.equal(after[unit], before[unit]) and before[unit].abs().max() > 0


# -- smoke: every method trains with PPO, SAC and DQN as a callback, and acts -------------------

ALGOS = {
    "ppo": (PPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_epochs=2)),
    "sac": (SAC, "Pendulum-v1", dict(batch_size=32, learning_starts=50, buffer_size=1000)),
    "dqn": (
        DQN,
        "CartPole-v1",
        dict(batch_size=32, learning_starts=50, buffer_size=1000, train_freq=1),
    ),
}
STEPS = {"ppo": 256, "sac": 200, "dqn": 300}


def train_with(algo: str, method: dict, steps: int | None = None):
    """A tiny model of ``algo`` trained with ``method`` as a callback; returns (model, callback)."""
    cls, env_id, kwargs = ALGOS[algo]
    policy, extra = method_policy(cls, "MlpPolicy", method)
    model = cls(policy, env_id, policy_kwargs={"net_arch": [16, 16], **extra}, seed=0, **kwargs)
    settings = {k: v for k, v in method.items() if k != "name"}
    callback = MethodCallback(method["name"], **settings)
    model.learn(steps or STEPS[algo], callback=callback)
    return model, callback


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


# -- weight clipping ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["kaiming_uniform", "lecun_uniform"])
def test_weight_clipping_bounds_every_weight_after_a_huge_gradient(init):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    sgd = torch.optim.SGD(net.parameters(), lr=1.0)
    WeightClipping(kappa=2.0, init=init).attach(net, sgd)
    (1e6 * net(torch.randn(4, 5)).sum()).backward()
    sgd.step()
    scale = {"kaiming_uniform": 1.0, "lecun_uniform": math.sqrt(3.0)}[init]
    for linear in linears(net):
        bound = 2.0 * scale / math.sqrt(linear.in_features)
        for param in (linear.weight, linear.bias):
            assert param.abs().max() <= bound + 1e-7
            assert param.abs().max() >= bound - 1e-7  # the huge step hit the bound


@pytest.mark.parametrize("algo", list(ALGOS))
def test_weight_clipping_acts_with_every_algorithm(algo):
    model, callback = train_with(algo, {"name": "weight_clipping", "kappa": 0.5})
    groups = network_groups(model)
    for group in groups:
        for linear in linears(group.module):
            assert linear.weight.abs().max() <= 0.5 / math.sqrt(linear.in_features) + 1e-7
        assert callback.counters[f"{group.name}/at_bound"] > 0


# -- ReGraMa -------------------------------------------------------------------------------------


def test_regrama_resets_a_unit_with_zero_gradient_and_keeps_active_ones():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].bias.copy_(torch.tensor([5.0, -100.0, 5.0, 5.0]))  # unit 1 never fires: no
        # gradient reaches its incoming weights; the others always do
    sgd = torch.optim.SGD(net.parameters(), lr=0.0)  # the step itself changes nothing
    regrama = ReGraMa(tau=0.0, every_updates=1).attach(net, sgd, seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.randn(16, 3)).pow(2).sum().backward()
    grad = net[0].weight.grad.abs().amax(1)
    assert grad[1] == 0 and torch.all(grad[[0, 2, 3]] > 0)
    sgd.step()
    assert regrama.replaced_total == {"0": 1}
    assert not torch.equal(net[0].weight[1], before[0][1])  # re-drawn
    assert net[0].bias[1] == 0 and torch.all(net[2].weight[:, 1] == 0)
    active = [0, 2, 3]
    assert torch.equal(net[0].weight[active], before[0][active])
    assert torch.equal(net[2].weight[:, active], before[2][:, active])


@pytest.mark.parametrize("algo", list(ALGOS))
def test_regrama_resets_units_with_every_algorithm(algo):
    _, callback = train_with(algo, {"name": "regrama", "tau": 0.5, "every_updates": 5})
    assert sum(callback.replaced_total.values()) > 0


# -- UPGD ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sigma", "beta_utility"), [(0.0, 0.0), (1.0, 0.0), (0.0, 0.5)])
def test_upgd_protects_by_utility(sigma, beta_utility):
    w = nn.Parameter(torch.ones(4))
    w.grad = torch.tensor([-2.0, 0.0, 1.0, 50.0])
    utility = torch.tensor([2.0, 0.0, -1.0, -50.0])  # -g w; 2 is the largest
    upgd = UPGDOptimizer([w], lr=0.1, weight_decay=0.0, beta_utility=beta_utility, sigma=sigma)
    torch.manual_seed(0)
    noise = torch.randn(4) * sigma
    torch.manual_seed(0)
    upgd.step()
    # step 1: the average is (1 - beta) u, corrected back to u; eta is the uncorrected maximum
    keep = 1 - torch.sigmoid(utility / ((1 - beta_utility) * 2.0))
    assert torch.allclose(w.detach(), 1 - 0.1 * (w.grad + noise) * keep)
    assert keep[3] > 0.999 and keep[0] <= 1 - torch.sigmoid(torch.tensor(1.0)) + 1e-6


def test_upgd_adaptive_is_adam_when_nothing_is_protected():
    w = nn.Parameter(torch.ones(3))
    w.grad = torch.tensor([1.0, 2.0, 3.0])  # utilities all negative: nothing protected
    upgd = UPGDOptimizer([w], lr=0.1, weight_decay=0.0, sigma=0.0, adaptive=True, eps=0.0)
    upgd.step()
    assert torch.allclose(w.detach(), torch.full((3,), 0.9))  # Adam's first step: lr * sign(g)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_upgd_trains_every_algorithm_and_is_saved(algo, tmp_path):
    model, _ = train_with(algo, {"name": "upgd", "adaptive": True})
    groups = network_groups(model)
    assert all(isinstance(g.optimizer, UPGDOptimizer) for g in groups)
    state = groups[0].optimizer.state_dict()
    assert state["state"] and all("avg_utility" in s for s in state["state"].values())
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip")
    again = network_groups(loaded)[0].optimizer
    assert isinstance(again, UPGDOptimizer) and again.param_groups[0]["adaptive"]
    first = next(iter(state["state"]))
    saved = again.state_dict()["state"][first]["avg_utility"]
    assert torch.equal(saved, state["state"][first]["avg_utility"])


# -- TRAC ----------------------------------------------------------------------------------------


def test_trac_starts_at_the_reference_and_adam_alone_does_not():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    start = [p.detach().clone() for p in net.parameters()]
    adam = torch.optim.Adam(net.parameters(), lr=0.1)
    trac = TRAC().wrap_optimizer(adam)
    assert isinstance(trac, torch.optim.Adam)
    net(torch.randn(8, 4)).pow(2).sum().backward()
    trac.step()  # the scale S starts at s_init = 1e-8: the weights stay at theta_ref
    for p, p0 in zip(net.parameters(), start, strict=True):
        assert (p - p0).abs().max() < 1e-6
    plain = nn.Linear(4, 2)
    plain.load_state_dict(dict(zip(["weight", "bias"], start, strict=True)))
    adam_alone = torch.optim.Adam(plain.parameters(), lr=0.1)
    plain(torch.randn(8, 4)).pow(2).sum().backward()
    adam_alone.step()
    assert (plain.weight - start[0]).abs().max() > 0.05


@pytest.mark.parametrize("algo", list(ALGOS))
def test_trac_trains_every_algorithm_and_resumes_after_load(algo, tmp_path):
    model, _ = train_with(algo, {"name": "trac"})
    groups = network_groups(model)
    assert all(is_trac(g.optimizer) for g in groups)
    refs = groups[0].optimizer.state_dict()["state"]["_trac"]["refs"]
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip", env=model.get_env())
    optimizer = network_groups(loaded)[0].optimizer
    assert is_trac(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    saved = zip(params, refs, strict=True)
    assert all(torch.equal(optimizer.state["_trac"][p]["ref"], r) for p, r in saved)
    loaded.learn(64, callback=MethodCallback("trac"))  # the package alone: KeyError here
    assert optimizer.state["_trac"]["iter_count"] > 0
