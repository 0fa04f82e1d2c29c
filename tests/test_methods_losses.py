"""Loss-term and gradient methods: effective rank (er), Parseval, spectral, noisy SGD.

Each mechanism on a case with a known answer, then each method trained with PPO, SAC and DQN
as a callback for a few hundred steps, checking that it acted. The ``ppo-<name>`` specs are
trained by tests/test_shipped_specs.py, which covers every agents/*.toml.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.er import EffectiveRankRegularizer, effective_rank
from rl_plasticity.plasticity.noisy_sgd import NoisySGD
from rl_plasticity.plasticity.parseval import Parseval
from rl_plasticity.plasticity.protocol import make_method
from rl_plasticity.plasticity.spectral import SpectralRegularizer
from rl_plasticity.sb3.callbacks import MethodCallback

torch.set_num_threads(1)


def rank_one_net(seed: int = 0) -> tuple[nn.Sequential, torch.Tensor]:
    """A 8-16-1 ReLU net whose hidden weight is rank one with positive output factor, so its
    features on any batch are rank one; and a batch of 64 inputs."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    with torch.no_grad():
        u = torch.rand(16, generator=gen) + 0.1
        v = torch.randn(8, generator=gen)
        net[0].weight.copy_(torch.outer(u, v))
        net[0].bias.zero_()
    return net, torch.randn(64, 8, generator=gen)


def erank_of(net: nn.Sequential, x: torch.Tensor) -> float:
    """Effective rank of the hidden features, computed independently of the method's code."""
    with torch.no_grad():
        s = torch.linalg.svdvals(net[1](net[0](x))).double()
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def test_effective_rank_of_known_spectra():
    assert effective_rank(torch.eye(5)) == pytest.approx(5.0, rel=1e-5)
    assert effective_rank(torch.outer(torch.randn(10), torch.randn(4))) == pytest.approx(1.0, 1e-4)
    # singular values 3 and 1: p = (0.75, 0.25)
    expected = torch.exp(
        -(0.75 * torch.log(torch.tensor(0.75)) + 0.25 * torch.log(torch.tensor(0.25)))
    )
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(
        float(expected), 1e-5
    )


def test_er_gradient_raises_the_effective_rank_of_a_rank_one_batch():
    net, x = rank_one_net()
    assert erank_of(net, x) == pytest.approx(1.0, abs=1e-4)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    method = EffectiveRankRegularizer(coeff=1.0).attach(net, optimizer)
    optimizer.zero_grad()
    (net(x).sum() * 0).backward()  # a task loss with zero gradient: only the term acts
    optimizer.step()
    assert erank_of(net, x) > 1.1
    assert method.last_erank == pytest.approx(1.0, abs=1e-4)  # measured before the step
    assert net[2].weight.grad.abs().max() == 0  # the head does not shape the features


def test_er_separate_step_moves_the_weights_with_its_own_annealed_optimizer():
    net, x = rank_one_net()
    start = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.Adam(net.parameters(), lr=0.0, betas=(0.99, 0.99), weight_decay=1e-4)
    method = EffectiveRankRegularizer(
        er_lr=1e-2, er_lr_final=1e-3, er_anneal_steps=4, every_updates=2
    ).attach(net, optimizer)
    er_group = method.er_optimizer.param_groups[0]
    assert er_group["betas"] == (0.99, 0.99) and er_group["weight_decay"] == 1e-4
    lrs = []
    for _ in range(8):
        optimizer.zero_grad()
        (net(x).sum() * 0).backward()
        optimizer.step()
        lrs.append(er_group["lr"])
    assert method.er_steps == 4  # every second step
    assert lrs[1] == pytest.approx(1e-2) and lrs[3] == pytest.approx(1e-2 * 0.75)
    assert lrs[7] == pytest.approx(1e-2 * 0.25)
    assert not torch.equal(net[0].weight, start[0])  # moved by the ER step alone (main lr 0)
    assert torch.equal(net[2].weight, start[2])  # no ER gradient reaches the head
    assert erank_of(net, x) > 1.01
    state = method.state_dict()
    again = EffectiveRankRegularizer(er_lr=1e-2, er_lr_final=1e-3).attach(net, optimizer)
    again.load_state_dict(state)
    assert again.er_steps == 4


def test_er_refuses_a_final_rate_above_the_start():
    with pytest.raises(ConfigError, match="er_lr_final"):
        make_method("er", {"er_lr": 1e-6, "er_lr_final": 1e-5})


def hidden_net(width: int = 16, inputs: int = 24) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, 3))


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_parseval_penalty_and_gradient_vanish_for_a_scaled_orthogonal_matrix(scale):
    net = hidden_net()
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(24, 16, generator=torch.Generator().manual_seed(1)))
        net[0].weight.copy_(scale**0.5 * q.T)  # 16 orthogonal rows of squared norm s
    method = Parseval(coeff=1e-3, scale=scale).attach(net, None)
    term = method.loss_term(None)
    assert float(term.detach()) == pytest.approx(0.0, abs=1e-9)
    (grad,) = torch.autograd.grad(term, net[0].weight)
    assert grad.abs().max() < 1e-8
    # the output layer is not regularized: a huge head changes nothing
    with torch.no_grad():
        net[2].weight.mul_(100)
    assert float(method.loss_term(None).detach()) == pytest.approx(0.0, abs=1e-9)


def test_parseval_gradient_is_the_analytic_one_and_pulls_toward_orthogonality():
    net = hidden_net()
    weight = net[0].weight
    method = Parseval(coeff=0.5, scale=2.0, reference_width=32).attach(net, None)
    term = method.loss_term(None)
    (grad,) = torch.autograd.grad(term, weight)
    w = weight.detach()
    factor = (32 / 16) ** 2
    expected = 4 * 0.5 * factor * (w @ w.T - 2.0 * torch.eye(16)) @ w
    assert torch.allclose(grad, expected, atol=1e-5)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    method.attach(net, optimizer)
    before = float(method.penalty().detach())
    for _ in range(20):
        optimizer.zero_grad()
        (net(torch.randn(4, 24)).sum() * 0).backward()
        optimizer.step()
    assert float(method.penalty().detach()) < 0.9 * before


def with_singular_values(values: list[float], shape: tuple[int, int]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    left, _ = torch.linalg.qr(torch.randn(shape[0], shape[0], generator=gen))
    right, _ = torch.linalg.qr(torch.randn(shape[1], shape[1], generator=gen))
    middle = torch.zeros(shape)
    middle[range(len(values)), range(len(values))] = torch.tensor(values)
    return left @ middle @ right.T


def test_spectral_penalty_and_gradient_vanish_when_sigma_max_is_one():
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight.copy_(with_singular_values([1.0, 0.6, 0.3], (8, 12)))
        net[2].weight.copy_(with_singular_values([1.0, 0.5], (3, 8)))
        net[0].bias.zero_()
        net[2].bias.zero_()
    method = SpectralRegularizer(coeff=1.0, power_iterations=50).attach(net, None, seed=0)
    term = method.loss_term(None)
    assert float(term.detach()) == pytest.approx(0.0, abs=1e-8)
    grads = torch.autograd.grad(term, [p for p in net.parameters()])
    assert max(float(g.abs().max()) for g in grads) < 1e-5
    assert method.counters()["sigma_max"] == pytest.approx(1.0, abs=1e-5)


def test_spectral_power_iteration_tracks_sigma_max_and_the_penalty_pulls_it_to_one():
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight.copy_(with_singular_values([3.0, 1.0, 0.5], (8, 12)))
    optimizer = torch.optim.SGD(net[0].parameters(), lr=1e-3)
    method = SpectralRegularizer(coeff=1.0, k=2.0).attach(net, optimizer, seed=0)
    assert method.linears == [net[0]]  # only the Linears the optimizer trains
    x = torch.randn(4, 12)
    for _ in range(40):  # one power iteration per step, carried over
        optimizer.zero_grad()
        (net(x).sum() * 0).backward()
        optimizer.step()
    sigma = float(torch.linalg.svdvals(net[0].weight.detach())[0])
    assert 1.0 < sigma < 2.0  # pulled from 3 toward 1
    assert method.sigmas[0] == pytest.approx(sigma, rel=0.05)
    assert method.terms == 40


class SetGrad(torch.optim.Optimizer):
    """An optimizer that changes nothing and keeps the gradient each step saw (after the
    pre-step hooks)."""

    def __init__(self, params) -> None:
        super().__init__(params, {})
        self.seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append([p.grad.clone() for g in self.param_groups for p in g["params"]])


@pytest.mark.parametrize("per_tensor", [True, False])
def test_noisy_sgd_noise_has_the_configured_relative_scale_and_decays(per_tensor):
    big = nn.Parameter(torch.zeros(200, 100))
    small = nn.Parameter(torch.zeros(50_000))
    optimizer = SetGrad([big, small])
    method = NoisySGD(noise_scale=0.1, noise_decay=0.5, per_tensor=per_tensor).attach(
        nn.Module(), optimizer, seed=0
    )
    grads = [torch.full((200, 100), 3.0), torch.full((50_000,), 0.01)]
    for _ in range(3):
        big.grad, small.grad = (g.clone() for g in grads)
        optimizer.step()
    assert method.noisy_steps == 3
    whole = float(torch.sqrt(sum(g.square().sum() for g in grads)))
    for t, seen in enumerate(optimizer.seen):
        for grad, noisy in zip(grads, seen, strict=True):
            noise = noisy - grad
            norm = float(grad.norm()) if per_tensor else whole
            expected_std = 0.1 * 0.5**t * norm
            assert float(noise.mean()) == pytest.approx(0.0, abs=0.05 * expected_std)
            assert float(noise.std()) == pytest.approx(expected_std, rel=0.05)
    assert method.counters()["noise_scale"] == pytest.approx(0.1 * 0.5**3)


def test_noisy_sgd_restarts_its_decay_at_a_change_and_is_reproducible():
    def run(seed: int) -> tuple[NoisySGD, SetGrad]:
        param = nn.Parameter(torch.zeros(1000))
        optimizer = SetGrad([param])
        method = NoisySGD(noise_decay=0.5, restart_on_change=True).attach(
            nn.Module(), optimizer, seed=seed
        )
        for step in range(4):
            if step == 2:
                method.on_context_change(1)
            param.grad = torch.ones(1000)
            optimizer.step()
        return method, optimizer

    method, optimizer = run(0)
    assert method.acts_on_change
    stds = [float((seen[0] - 1).std()) for seen in optimizer.seen]
    expected = [0.01 * 0.5**t * 1000**0.5 for t in (0, 1, 0, 1)]
    assert stds == pytest.approx(expected, rel=0.1)
    _, again = run(0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(optimizer.seen, again.seen, strict=True))


# -- every method with PPO, SAC and DQN, as a callback -------------------------------------------

TINY = dict(net_arch=[16, 16])
ALGOS = {
    "ppo": lambda: PPO(
        "MlpPolicy",
        gym.make("Pendulum-v1"),
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        policy_kwargs=dict(TINY),
        seed=0,
    ),
    "sac": lambda: SAC(
        "MlpPolicy",
        gym.make("Pendulum-v1"),
        batch_size=32,
        learning_starts=50,
        buffer_size=1000,
        policy_kwargs=dict(TINY),
        seed=0,
    ),
    "dqn": lambda: DQN(
        "MlpPolicy",
        gym.make("CartPole-v1"),
        batch_size=32,
        learning_starts=50,
        buffer_size=1000,
        train_freq=1,
        policy_kwargs=dict(TINY),
        seed=0,
    ),
}
STEPS = {"ppo": 256, "sac": 200, "dqn": 250}

#: case -> (method, settings, the counter that must be positive for every network: it acted)
METHODS = {
    "er": ("er", {"coeff": 0.1}, "terms"),
    "er_separate": ("er", {"er_lr": 1e-4}, "er_steps"),
    "parseval": ("parseval", {}, "terms"),
    "spectral": ("spectral", {}, "terms"),
    "noisy_sgd": ("noisy_sgd", {}, "noisy_steps"),
}


@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_trains_with_each_algorithm_and_acts(method, algo):
    name, settings, counter = METHODS[method]
    model = ALGOS[algo]()
    callback = MethodCallback(name, seed=0, **settings)
    model.learn(STEPS[algo], callback=callback)
    acted = {k: v for k, v in callback.counters.items() if k.endswith("/" + counter)}
    assert acted and all(v > 0 for v in acted.values()), callback.counters


@pytest.mark.parametrize(
    ("name", "key"),
    [("cbp", "mean_correction"), ("noisy_sgd", "per_tensor"), ("noisy_sgd", "restart_on_change")],
)
def test_a_switch_takes_true_or_false_only(name, key):
    with pytest.raises(ConfigError, match=key):
        make_method(name, {key: "no"})
