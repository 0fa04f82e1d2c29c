"""One step of ours against a transcription of the authors' published rule, on a small network.

Each ``reference_*`` function below is written here from the authors' code or paper (cited in its
docstring), in their form and parametrization, not with our classes; the test then runs ours with
the settings that are supposed to reproduce it and compares the parameters after the step(s).
"""

from __future__ import annotations

import torch
from torch import nn

from rl_plasticity.plasticity.upgd import UPGD, UPGDOptimizer
from rl_plasticity.specs import load_agent_spec

torch.set_num_threads(1)


def small_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))


def loss_of(net: nn.Module, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + step)
    x = torch.randn(16, 4, generator=gen)
    y = torch.randn(16, 2, generator=gen)
    return ((net(x) - y) ** 2).mean()


def reference_adaptive_upgd_step(
    params: list[torch.Tensor],
    state: dict,
    lr: float,
    weight_decay: float,
    beta_utility: float = 0.999,
    sigma: float = 0.001,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-5,
) -> None:
    """AdaptiveUPGD as github mohmdelsayed/upgd, core/run/rl/adaupgd.py, steps: utility and
    moments per parameter, the global maximum of the uncorrected utility, then
    p <- p (1 - lr wd) - 2 lr [m^ (1 - s) / (sqrt(v^) + eps) + noise (1 - s)]."""
    beta1, beta2 = betas
    global_max = torch.tensor(-torch.inf)
    with torch.no_grad():
        for p in params:
            st = state.setdefault(
                id(p),
                {
                    "step": 0,
                    "u": torch.zeros_like(p),
                    "m": torch.zeros_like(p),
                    "v": torch.zeros_like(p),
                },
            )
            st["step"] += 1
            st["u"].mul_(beta_utility).add_(-p.grad * p, alpha=1 - beta_utility)
            st["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
            st["v"].mul_(beta2).add_(p.grad**2, alpha=1 - beta2)
            global_max = torch.maximum(global_max, st["u"].max())
        for p in params:
            st = state[id(p)]
            m_hat = st["m"] / (1 - beta1 ** st["step"])
            v_hat = st["v"] / (1 - beta2 ** st["step"])
            noise = torch.randn_like(p.grad) * sigma
            gate = torch.sigmoid((st["u"] / (1 - beta_utility ** st["step"])) / global_max)
            update = m_hat * (1 - gate) / (v_hat.sqrt() + eps) + noise * (1 - gate)
            p.mul_(1 - lr * weight_decay).add_(update, alpha=-2.0 * lr)


def test_upgd_at_twice_the_rate_and_half_the_decay_is_the_authors_adaptive_upgd():
    theirs, ours = small_net(), small_net()
    lr, wd = 1e-2, 1e-1  # large, so that a factor of 2 anywhere shows
    optimizer = UPGDOptimizer(ours.parameters(), lr=2 * lr, weight_decay=wd / 2, adaptive=True)
    state: dict = {}
    for step in range(5):
        for net in (theirs, ours):
            net.zero_grad()
            loss_of(net, step).backward()
        torch.manual_seed(step)
        reference_adaptive_upgd_step(list(theirs.parameters()), state, lr, wd)
        torch.manual_seed(step)
        optimizer.step()
    moved = sum(
        (a - b).abs().sum()
        for a, b in zip(ours.parameters(), small_net().parameters(), strict=True)
    )
    assert moved > 0.1
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_ppo_upgd_spec_is_the_authors_optimizer_at_the_base_rate():
    """The spec's optimizer is AdaptiveUPGD(lr=1e-4 (the ppo base's), wd=1e-3, eps=1e-5)."""
    spec, base = load_agent_spec("ppo-upgd"), load_agent_spec("ppo")
    method = spec.method
    lr = spec.hyperparameters["learning_rate"]
    assert lr == 2 * base.hyperparameters["learning_rate"]
    assert lr * method["weight_decay"] == base.hyperparameters["learning_rate"] * 1e-3
    net = small_net()
    adam = torch.optim.Adam(net.parameters(), lr=lr, eps=spec.optimizer["eps"])
    settings = {k: v for k, v in method.items() if k != "name"}
    upgd = UPGD(**settings).wrap_optimizer(adam)
    group = upgd.param_groups[0]
    assert (group["lr"], group["eps"], group["adaptive"]) == (2e-4, 1e-5, True)
    assert (
        UPGD(adaptive=True)
        .wrap_optimizer(torch.optim.SGD(net.parameters(), lr=0.1))
        .param_groups[0]["eps"]
        == 1e-5
    )


def test_nap_projection_keeps_the_function_only_with_zero_biases():
    from rl_plasticity.plasticity.nap import NormalizeAndProject

    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    changes = []
    for bias in (0.0, 0.5):
        net = small_net()
        nap = NormalizeAndProject(eps=1e-12)  # LayerNorm eps aside
        nap.build_network(net)
        nap.attach(net, None)
        with torch.no_grad():
            for layer in nap.layers:
                # a bias common to all units is cancelled by LayerNorm's mean: vary it
                layer.incoming.bias.copy_(bias * torch.linspace(-1, 1, len(layer.incoming.bias)))
                layer.incoming.weight.mul_(3.0)  # the growth the projection undoes
            before = net(x)
            nap.project()
            changes.append(float((net(x) - before).abs().max()))
    assert changes[0] < 1e-5 < 1e-3 < changes[1]
