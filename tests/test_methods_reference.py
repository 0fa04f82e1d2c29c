"""One step of ours against a transcription of the authors' published rule, on a small network.

Each ``reference_*`` function below is written here from the authors' code or paper (cited in its
docstring), in their form and parametrization, not with our classes; the test then runs ours with
the settings that are supposed to reproduce it and compares the parameters after the step(s).
"""

from __future__ import annotations

import pytest
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


def _step_with_term_in_loss(net, term, max_norm, step):
    """The references' order: the term in the loss, backward, clip, step (SGD 0.1)."""
    net.zero_grad()
    (loss_of(net, step) + term(net)).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    with torch.no_grad():
        for p in net.parameters():
            p.sub_(0.1 * p.grad)


@pytest.mark.parametrize("name", ["l2init", "parseval"])
@pytest.mark.parametrize("max_norm", [0.05, 1e9])
def test_loss_terms_are_clipped_with_the_loss(name, max_norm):
    """An algorithm that clips before ``optimizer.step()`` (as SB3's PPO does), with the method
    told its ``max_grad_norm``, steps as if the term had been in the clipped loss."""
    from rl_plasticity.plasticity.protocol import make_method

    settings = {"l2init": {"coeff": 0.5}, "parseval": {"coeff": 0.05, "scale": 1.0}}
    ours, theirs = small_net(), small_net()
    with torch.no_grad():  # a different start, so that the penalties' gradients are large
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            noise = 0.3 * torch.randn(a.shape, generator=torch.Generator().manual_seed(a.numel()))
            a.add_(noise)
            b.add_(noise)
    initial = [p.detach().clone() for p in theirs.parameters()]  # L2-init's theta_0: at attach

    def term(net):
        if name == "l2init":  # Kumar et al.'s Eq. 1
            return 0.5 * sum(
                ((p - p0) ** 2).sum() for p, p0 in zip(net.parameters(), initial, strict=True)
            )
        eye = torch.eye(6)  # Chung et al.: lambda sum_l ||W W^T - s I||_F^2, hidden layers
        return 0.05 * sum(((w @ w.T - eye) ** 2).sum() for w in (net[0].weight, net[2].weight))

    optimizer = torch.optim.SGD(ours.parameters(), lr=0.1)
    make_method(name, settings[name]).attach(ours, optimizer, max_grad_norm=max_norm)
    for step in range(3):
        ours.zero_grad()
        loss_of(ours, step).backward()
        norm = torch.nn.utils.clip_grad_norm_(ours.parameters(), max_norm)
        optimizer.step()
        _step_with_term_in_loss(theirs, term, max_norm, step)
        assert max_norm > 1 or norm > max_norm  # the clip acted
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def reference_shrink_perturb(net: nn.Module, p: float, sigma: float, gen: torch.Generator) -> None:
    """Ash & Adams' shrink and perturb as Kumar et al. write it (App. A.3): theta <- p theta +
    sigma eps, eps drawn from the initial distribution (torch's default: U(+-1 / sqrt(fan_in))
    for weights and biases), each Linear's weight then its bias."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                bound = 1 / m.in_features**0.5
                for t in (m.weight, m.bias):
                    eps = torch.empty(t.shape).uniform_(-bound, bound, generator=gen)
                    t.mul_(p).add_(sigma * eps)


def test_shrink_perturb_ash_adams_form_and_soft_form():
    from rl_plasticity.plasticity.snp import ShrinkPerturb

    p, sigma = 1 - 1e-2, 0.1
    for fresh_scale, expected_sigma in ((sigma, sigma), (None, 1 - p)):
        ours, theirs = small_net(), small_net()
        snp = ShrinkPerturb(shrink=p, fresh_scale=fresh_scale, init="kaiming_uniform").attach(
            ours, None, seed=3
        )
        gen = torch.Generator()
        gen.set_state(snp.generator.get_state())
        snp.apply()
        reference_shrink_perturb(theirs, p, expected_sigma, gen)
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b)
        assert not torch.equal(ours[0].weight, small_net()[0].weight)


def reference_gnt_step(net, features, state, rho, maturity, decay=0.99):
    """One generate-and-test step as lop/algos/gnt.py (shibhansh/loss-of-plasticity) runs it with
    ``util_type='contribution'`` and ``accumulate=True``: age, utility (mean |outgoing| times mean
    |h|), bias-corrected ranking of the eligible units, replace int(accumulated) of them (incoming
    row redrawn, incoming bias 0, outgoing column 0, utility and age 0). Returns the replaced
    units of each hidden layer."""
    replaced = []
    with torch.no_grad():
        for i, h in enumerate(features):
            current, following = net[2 * i], net[2 * i + 2]
            st = state.setdefault(
                i, {"util": torch.zeros(h.shape[1]), "age": torch.zeros(h.shape[1]), "acc": 0.0}
            )
            st["age"] += 1
            st["util"] *= decay
            st["util"] += (1 - decay) * following.weight.abs().mean(0) * h.abs().mean(0)
            corrected = st["util"] / (1 - decay ** st["age"])
            eligible = torch.where(st["age"] > maturity)[0]
            if len(eligible) == 0:
                replaced.append(torch.empty(0, dtype=torch.long))
                continue
            st["acc"] += rho * len(eligible)
            count = int(st["acc"])
            st["acc"] -= count
            units = eligible[torch.topk(-corrected[eligible], count)[1]]
            st["util"][units] = 0
            current.bias[units] = 0
            following.weight[:, units] = 0
            st["age"][units] = 0
            replaced.append(units)
    return replaced


def test_cbp_step_is_the_authors_generate_and_test():
    from rl_plasticity.plasticity.cbp import CBP

    ours, theirs = small_net(), small_net()
    cbp = CBP(replacement_rate=0.3, maturity_threshold=2, decay_rate=0.99).attach(
        ours, None, seed=0
    )
    state: dict = {}
    gen = torch.Generator().manual_seed(5)
    for step in range(6):
        x = torch.randn(8, 4, generator=gen)
        with torch.no_grad():
            h1 = torch.relu(theirs[0](x))
            features = [h1, torch.relu(theirs[2](h1))]
        mine = cbp.step([f.clone() for f in features])
        expected = reference_gnt_step(theirs, features, state, rho=0.3, maturity=2)
        for layer, (a, b) in enumerate(zip(mine, expected, strict=True)):
            assert sorted(a.tolist()) == sorted(b.tolist()), (step, layer)
            # utilities: theirs average |outgoing|, ours sum it (a constant factor per layer)
            outgoing = theirs[2 * layer + 2].out_features
            torch.testing.assert_close(cbp.units[layer].utility, outgoing * state[layer]["util"])
            with torch.no_grad():  # the redrawn rows are random in both: take ours for both
                theirs[2 * layer].weight[a] = ours[2 * layer].weight[a]
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    assert sum(cbp.replaced_total.values()) >= 6  # replacement happened (from step 3 on)


def reference_redo(net, features, tau):
    """ReDo's recycling as dopamine labs/redo scores it: s_i = mean|h_i| / (mean_k mean|h_k|
    + 1e-9); units with s_i <= tau get a redrawn incoming row, a zero incoming bias and zero
    outgoing weights. Returns the recycled units of each hidden layer."""
    recycled = []
    with torch.no_grad():
        for i, h in enumerate(features):
            score = h.abs().mean(0)
            score = score / (score.mean() + 1e-9)
            units = torch.where(score <= tau)[0]
            net[2 * i].bias[units] = 0
            net[2 * i + 2].weight[:, units] = 0
            recycled.append(units)
    return recycled


def test_redo_step_is_the_authors_recycling():
    from rl_plasticity.plasticity.redo import ReDo

    ours, theirs = small_net(), small_net()
    with torch.no_grad():  # make some units dormant: large negative biases
        for net in (ours, theirs):
            net[0].bias[:2] = -50.0
            net[2].bias[3] = -50.0
    redo = ReDo(tau=0.1).attach(ours, None, seed=0)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h1 = torch.relu(theirs[0](x))
        features = [h1, torch.relu(theirs[2](h1))]
    mine = redo.reset_dormant([f.clone() for f in features])
    expected = reference_redo(theirs, features, tau=0.1)
    assert {0, 1} <= set(expected[0].tolist()) and 3 in expected[1].tolist()
    for layer, (a, b) in enumerate(zip(mine, expected, strict=True)):
        assert sorted(a.tolist()) == sorted(b.tolist())
        with torch.no_grad():
            theirs[2 * layer].weight[a] = ours[2 * layer].weight[a]
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b)
