"""The torch core of the plasticity methods on tiny networks set by hand (no SB3)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.init import lecun_uniform_
from rl_plasticity.plasticity.l2init import L2Init
from rl_plasticity.plasticity.optimizers import L2InitAdam, ShrinkPerturbAdam
from rl_plasticity.plasticity.redo import ReDo
from rl_plasticity.plasticity.reset import reinit_network_
from rl_plasticity.plasticity.snp import ShrinkPerturb, repeated_event

torch.set_num_threads(1)


def tiny_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def adam_with_state(net: nn.Module) -> torch.optim.Adam:
    """An Adam whose moments are nonzero everywhere (one step on a random loss)."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(8, 3)).pow(2).sum().backward()
    opt.step()
    opt.zero_grad()
    return opt


def test_cbp_replaces_the_eligible_unit_of_least_bias_corrected_utility():
    net = tiny_net()
    opt = adam_with_state(net)
    cbp = CBP(replacement_rate=0.5, maturity_threshold=10, decay_rate=0.9).attach(net, opt, seed=0)
    with torch.no_grad():
        net[2].weight.fill_(1.0)  # sum_k |W_out[k, i]| = 2 for every unit
    state = cbp.units[0]
    state.utility.copy_(torch.tensor([0.0, 1.0, 0.5, 2.0]))
    state.age.copy_(torch.tensor([3, 50, 50, 50]))
    state.recount_young(cbp.maturity_threshold)  # ages were set by hand
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    moments = {name: opt.state[p]["exp_avg"].clone() for name, p in net.named_parameters()}

    # u <- 0.9 u + 0.1 * mean|h| * 2 = [0.2, 1.1, 0.65, 2.0]; unit 0 is the least useful but only
    # 4 steps old (not > 10); of the eligible 1..3, unit 2 has the least u / (1 - 0.9^51).
    replaced = cbp.step([torch.ones(8, 4)])

    assert replaced[0].tolist() == [2]
    assert state.accumulated == pytest.approx(0.5)  # 0.5 * 3 eligible = 1.5: one now, 0.5 kept
    assert state.utility.tolist() == pytest.approx([0.2, 1.1, 0.0, 2.0])
    assert state.age.tolist() == [4, 51, 0, 51]
    w_in, b_in, w_out = net[0].weight, net[0].bias, net[2].weight
    assert not torch.equal(w_in[2], before["0.weight"][2])  # re-drawn
    assert w_in[2].abs().max() <= math.sqrt(3 / 3)  # from LeCun uniform, fan_in 3
    assert torch.equal(w_in[[0, 1, 3]], before["0.weight"][[0, 1, 3]])
    assert b_in[2] == 0 and torch.equal(b_in[[0, 1, 3]], before["0.bias"][[0, 1, 3]])
    assert torch.equal(w_out[:, 2], torch.zeros(2))
    assert torch.equal(w_out[:, [0, 1, 3]], torch.ones(2, 3))
    for name, p in net.named_parameters():
        for key in ("exp_avg", "exp_avg_sq"):
            moment = opt.state[p][key]
            if name == "0.weight" or name == "0.bias":
                assert torch.all(moment[2] == 0)
                keep = [0, 1, 3]
                if key == "exp_avg":
                    assert torch.equal(moment[keep], moments[name][keep])
            elif name == "2.weight":
                assert torch.all(moment[:, 2] == 0)
                if key == "exp_avg":
                    assert torch.equal(moment[:, [0, 1, 3]], moments[name][:, [0, 1, 3]])
            elif key == "exp_avg":  # the output bias is not a unit's parameter
                assert torch.equal(moment, moments[name])


def test_cbp_updates_only_layers_with_features_each_with_its_own_batch_size():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cbp = CBP(replacement_rate=0.0, decay_rate=0.5).attach(net, opt, seed=0)
    with torch.no_grad():
        net[2].weight.fill_(1.0)  # layer 0's units: sum_k |W_out[k, i]| = 4
        net[4].weight.fill_(-2.0)  # layer 1's units: 2
    first, second = cbp.units
    # u <- 0.5 u + 0.5 mean_batch|h| * outgoing; tanh features can be negative: |h| is used
    cbp.step([torch.full((2, 4), 3.0), None])
    assert first.utility.tolist() == [6.0] * 4 and first.age.tolist() == [1] * 4
    assert second.utility.tolist() == [0.0] * 4 and second.age.tolist() == [0] * 4
    cbp.step([torch.ones(6, 4), -torch.ones(3, 4)])
    assert first.utility.tolist() == [5.0] * 4 and first.age.tolist() == [2] * 4
    assert second.utility.tolist() == [1.0] * 4 and second.age.tolist() == [1] * 4


def test_cbp_count_is_rho_times_eligible_accumulated_without_bursts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    # rho * 8 eligible = 1/8 unit per step, exact in binary: one unit every 8th step
    cbp = CBP(replacement_rate=1 / 64, maturity_threshold=0).attach(net, opt, seed=0)
    counts = [len(cbp.step([torch.rand(5, 8)])[0]) for _ in range(1000)]
    assert sum(counts) == 125
    assert [t for t, n in enumerate(counts) if n] == list(range(7, 1000, 8))
    assert cbp.replaced_total == {"0": 125}


def test_cbp_mean_correction_keeps_the_output_on_constant_input():
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cbp = CBP(replacement_rate=0.2, maturity_threshold=5, mean_correction=True).attach(
        net, opt, seed=1
    )
    x = torch.randn(1, 3).repeat(6, 1)
    before = net(x).detach()
    total = 0
    for _ in range(20):
        loss = net(x).sum()
        loss.backward()
        opt.step()
        total = sum(cbp.replaced_total.values())
    assert total > 0
    assert torch.allclose(net(x).detach(), before, atol=1e-5)


def test_plain_pytorch_two_lines():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    cbp = CBP(replacement_rate=1e-2, maturity_threshold=100).attach(net, optimizer)
    for _ in range(300):
        x = torch.randn(32, 4)
        with torch.no_grad():  # an evaluation forward is not recorded
            net(torch.randn(1000, 4))
        loss = (net(x) - x.sum(1, keepdim=True)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # ages pass 100 after 100 steps; then 16 * 1e-2 units per step: floor(200 * 0.16) = 32 or
    # fewer (replaced units are young again)
    replaced = cbp.replaced_total
    assert set(replaced) == {"0", "2"}
    assert 10 <= replaced["0"] <= 32 and 10 <= replaced["2"] <= 32
    cbp.detach()
    net(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    assert cbp.replaced_total == replaced


def test_cbp_state_dict_continues_identically():
    def run(split: bool) -> dict:
        torch.manual_seed(3)
        net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        cbp = CBP(replacement_rate=0.05, maturity_threshold=3).attach(net, opt, seed=7)
        data = torch.randn(60, 16, 2)
        for t in range(60):
            if split and t == 30:
                state, net_state, opt_state = cbp.state_dict(), net.state_dict(), opt.state_dict()
                cbp.detach()
                net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
                net.load_state_dict(net_state)
                opt = torch.optim.Adam(net.parameters(), lr=1e-2)
                opt.load_state_dict(opt_state)
                cbp = CBP(replacement_rate=0.05, maturity_threshold=3).attach(net, opt, seed=999)
                cbp.load_state_dict(state)
            loss = net(data[t]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"params": net.state_dict(), "replaced": cbp.replaced_total}

    a, b = run(False), run(True)
    assert a["replaced"] == b["replaced"] and a["replaced"]["0"] > 0
    for key in a["params"]:
        assert torch.equal(a["params"][key], b["params"][key])


def test_config_errors_name_the_key():
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="replacement_rate"):
        CBP(replacement_rate=-1).attach(net, opt)
    with pytest.raises(ConfigError, match="maturity_threshold"):
        CBP(maturity_threshold=1.5).attach(net, opt)
    with pytest.raises(ConfigError, match="decay_rate"):
        CBP(decay_rate=1.0).attach(net, opt)
    with pytest.raises(ConfigError, match="init"):
        CBP(init="xavier").attach(net, opt)
    with pytest.raises(ConfigError, match="tau"):
        ReDo(tau=-0.1).attach(net, opt)
    with pytest.raises(ConfigError, match="target"):
        ShrinkPerturb(target="ones").attach(net)


def test_redo_resets_a_dead_unit_every_f_steps():
    net = tiny_net()
    with torch.no_grad():
        net[0].weight[1] = 0.0
        net[0].bias[1] = -1.0  # unit 1 is never active: tau-dormant
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    redo = ReDo(tau=0.025, every_updates=3).attach(net, opt, seed=0)
    for step in range(1, 7):
        net(torch.randn(16, 3)).sum().backward()
        opt.step()
        if step < 3:
            assert redo.replaced_total == {"0": 0}
    assert redo.replaced_total["0"] >= 1
    assert net[0].weight[1].abs().sum() > 0 and net[0].bias[1] == 0


def test_shrink_perturb_toward_zero_and_toward_fresh_init():
    net = tiny_net()
    before = [p.detach().clone() for p in net.parameters()]
    ShrinkPerturb(shrink=0.5, target="zero").attach(net, seed=0).apply()
    for p, b in zip(net.parameters(), before, strict=True):
        assert torch.allclose(p, 0.5 * b)
    ShrinkPerturb(shrink=0.0, target="fresh_init").attach(net, seed=0).apply()  # all fresh
    assert net[0].weight.abs().max() <= math.sqrt(3 / 3) and torch.all(net[0].bias == 0)
    assert net[2].weight.abs().max() <= math.sqrt(3 / 4)


def test_shrink_perturb_every_step_with_noise():
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    snp = ShrinkPerturb(shrink=1.0, noise_std=1e-2, target="zero").attach(net, opt, seed=0)
    before = net[0].weight.detach().clone()
    for _ in range(4):
        net(torch.randn(2, 3)).sum().backward()
        opt.step()
    assert snp.events == 4
    assert 0 < (net[0].weight - before).abs().max() < 0.1


def test_l2_init_pulls_toward_the_initial_parameters():
    net = tiny_net()
    start = net[0].weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    L2Init(coeff=0.25).attach(net, opt).initial[0].copy_(start)  # theta_0 = start
    net[0].weight.grad = torch.zeros_like(start)
    opt.step()  # 0.25 ||theta - theta_0||^2: theta - 1.0 * 2 * 0.25 * (theta - theta_0)
    assert torch.allclose(net[0].weight, start + 0.5)


def test_optimizer_classes():
    net = tiny_net()
    lecun_uniform_(net)
    assert torch.all(net[0].bias == 0) and net[0].weight.abs().max() <= 1.0
    opt = ShrinkPerturbAdam(net.parameters(), lr=0.0, shrink=0.5, target="zero")
    calls = []
    opt.register_step_post_hook(lambda *_: calls.append(1))
    before = net[2].weight.detach().clone()
    net(torch.randn(2, 3)).sum().backward()
    opt.step()
    assert len(calls) == 1  # each step hook runs once (no double wrapping of step())
    assert torch.allclose(net[2].weight, 0.5 * before)

    net = tiny_net()
    opt = L2InitAdam(net.parameters(), lr=0.1, l2_init=1.0)
    start = [p.detach().clone() for p in net.parameters()]
    for _ in range(3):
        net(torch.randn(2, 3)).sum().backward()
        opt.step()
        opt.zero_grad()
    state = opt.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(state["initial"], start, strict=True))
    fresh = L2InitAdam(tiny_net().parameters(), lr=0.1)
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.initial, start, strict=True))


def test_reinit_network_draws_afresh_and_forgets_optimizer_state():
    net = tiny_net()
    opt = adam_with_state(net)
    before = net[0].weight.detach().clone()
    reinit_network_(net, opt, "lecun_uniform", torch.Generator().manual_seed(0))
    assert not torch.equal(net[0].weight, before) and torch.all(net[2].bias == 0)
    assert len(opt.state) == 0
    net(torch.randn(2, 3)).sum().backward()
    opt.step()  # Adam starts over
    assert int(opt.state[net[0].weight]["step"]) == 1


def test_shrink_perturb_every_k_steps_matches_k_events_in_mean_and_variance():
    assert repeated_event(0.5, 2) == pytest.approx((0.25, math.sqrt(1 + 0.25)))
    assert repeated_event(1.0, 4) == pytest.approx((1.0, 2.0))
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    snp = ShrinkPerturb(shrink=0.5, target="zero", every_updates=4).attach(net, opt, seed=0)
    before = net[0].weight.detach().clone()
    for _ in range(8):
        net(torch.randn(2, 3)).sum().backward()
        opt.step()
    assert snp.events == 8
    assert torch.allclose(net[0].weight, before * 0.5**8)
