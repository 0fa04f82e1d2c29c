"""CBP with instantaneous utility, weight clipping, ReGraMa, UPGD: mechanisms on known cases, and
each trained with PPO, SAC and DQN as a callback (tiny nets, short runs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.specs import load_agent_spec

torch.set_num_threads(1)


def test_cbpi_spec_is_cbp_with_instantaneous_utility():
    method = load_agent_spec("ppo-cbpi").method
    assert method["name"] == "cbp" and method["decay_rate"] == 0.0
    assert load_agent_spec("ppo-cbp").method["replacement_rate"] == method["replacement_rate"]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    cbp = CBP(
        net,
        torch.optim.Adam(net.parameters()),
        decay_rate=0.0,
        replacement_rate=0.1,
        maturity_threshold=0,
    )
    contribution = net[2].weight.abs().sum(0)
    first = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    latest = torch.tensor([[3.0, 2.0, 0.0, 1.0]])
    cbp.step([first])
    cbp.step([latest])  # 0.1 * 4 units per step: the third step replaces one
    assert torch.allclose(cbp.units[0].utility, latest[0] * contribution)  # no memory of `first`
    replaced = cbp.step([latest])
    assert replaced[0].tolist() == [2]  # least instantaneous contribution
