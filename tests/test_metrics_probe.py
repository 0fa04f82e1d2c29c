"""The plasticity probe: normalized (1 at the start), scale-free, and 1 for a network that cannot
learn."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rl_plasticity.metrics.probe import probe_loss


def _net_and_inputs() -> tuple[nn.Sequential, torch.Tensor]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    return net, torch.randn(512, 8)


def _scaled_output(net: nn.Sequential, factor: float = 1.0, shift: float = 0.0) -> nn.Sequential:
    out = copy.deepcopy(net)
    with torch.no_grad():
        out[4].weight.mul_(factor)
        out[4].bias.mul_(factor).add_(shift)
    return out


def test_the_probe_starts_at_one_and_learns() -> None:
    net, x = _net_and_inputs()
    assert probe_loss(net, x, steps=0) == pytest.approx(1.0, abs=1e-6)
    assert probe_loss(net, x, steps=100) < 0.2


def test_a_constant_output_shift_does_not_change_the_probe() -> None:
    # A value head whose outputs sit at 1000: the old probe read about 1 + 1000^2.
    net, x = _net_and_inputs()
    assert probe_loss(_scaled_output(net, shift=1000.0), x) == pytest.approx(
        probe_loss(net, x), rel=0.05
    )


def test_output_scale_moves_the_probe_far_less_than_the_scale() -> None:
    net, x = _net_and_inputs()
    base = probe_loss(net, x)
    for factor in (100.0, 0.01):
        scaled = probe_loss(_scaled_output(net, factor), x)
        # Scale x100 or /100 of the outputs: the probe stays within a factor of 20 (it is no
        # longer proportional to the output's square, a factor of 10^4).
        assert base / 20 < scaled < min(1.0, base * 20)


def test_a_network_whose_units_are_all_dead_cannot_learn() -> None:
    net, x = _net_and_inputs()
    dead = copy.deepcopy(net)
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)  # every first-layer ReLU off on every input
    assert probe_loss(dead, x) == pytest.approx(1.0, abs=0.01)
    assert probe_loss(net, x) < 0.5


def test_the_network_is_not_modified_and_the_probe_is_reproducible() -> None:
    net, x = _net_and_inputs()
    before = [p.detach().clone() for p in net.parameters()]
    assert probe_loss(net, x, seed=3) == probe_loss(net, x, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
