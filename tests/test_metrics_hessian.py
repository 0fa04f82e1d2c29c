"""The Lanczos Hessian spectrum against the exact Hessian of a small network."""

import pytest
import torch
from torch import nn

from rl_plasticity.metrics.hessian import hessian_spectrum


def _problem():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 2))
    net = net.double()
    x = torch.randn(64, 4, dtype=torch.float64)
    y = torch.randn(64, 2, dtype=torch.float64)
    params = list(net.parameters())

    def loss_fn():
        return nn.functional.mse_loss(net(x), y)

    # The exact Hessian, through a function of the flat parameter vector.
    shapes = [p.shape for p in params]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(flat):
        tensors, i = {}, 0
        for (name, _), shape in zip(net.named_parameters(), shapes, strict=True):
            n = shape.numel()
            tensors[name] = flat[i : i + n].reshape(shape)
            i += n
        return nn.functional.mse_loss(torch.func.functional_call(net, tensors, (x,)), y)

    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat0))
    return loss_fn, params, exact


def test_full_lanczos_matches_exact_eigenvalues():
    torch.set_num_threads(1)
    loss_fn, params, exact = _problem()
    n = exact.numel()
    assert n == 242  # 4*12+12 + 12*12+12 + 12*2+2
    spectrum = hessian_spectrum(loss_fn, params, n_steps=n, n_probes=1)
    top = spectrum.top_eigenvalues(3)
    assert top == pytest.approx(exact.flip(0)[:3].tolist(), rel=1e-6)
    # Every Ritz value is an eigenvalue (Krylov space exhausted exactly).
    distance = (spectrum.nodes[0][:, None] - exact[None, :]).abs().min(dim=1).values
    assert float(distance.max()) < 1e-6 * float(exact.abs().max())


# The quadrature resolves the density only down to about the spacing of its nodes: a threshold
# of 0.005 to 0.05 of the top magnitude (the spectrum spans -0.63..1.89) needs 40 steps, 0.0005
# about 160 of the 242.
@pytest.mark.parametrize(("epsilon", "n_steps"), [(5e-2, 40), (5e-3, 40), (5e-4, 160)])
def test_relative_epsilon_rank_close_to_exact(epsilon, n_steps):
    torch.set_num_threads(1)
    loss_fn, params, exact = _problem()
    true_rank = float((exact.abs() > epsilon * exact.abs().max()).double().mean())
    spectrum = hessian_spectrum(loss_fn, params, n_steps=n_steps, n_probes=8, seed=1)
    assert spectrum.epsilon_rank(epsilon) == pytest.approx(true_rank, abs=0.05)
    assert spectrum.top_eigenvalues(1)[0] == pytest.approx(float(exact.max()), rel=1e-6)


def test_relative_epsilon_rank_is_scale_free_and_absolute_is_not():
    torch.set_num_threads(1)
    loss_fn, params, exact = _problem()

    def scaled() -> torch.Tensor:
        return 1000.0 * loss_fn()

    plain = hessian_spectrum(loss_fn, params, n_steps=40, n_probes=2, seed=1)
    big = hessian_spectrum(scaled, params, n_steps=40, n_probes=2, seed=1)
    # A loss 1000 times larger has a Hessian 1000 times larger: the same relative rank.
    assert big.largest_magnitude() == pytest.approx(1000 * plain.largest_magnitude(), rel=1e-6)
    assert big.epsilon_rank(0.05) == pytest.approx(plain.epsilon_rank(0.05), abs=1e-9)
    # An absolute threshold of 0.1 counts every well-resolved eigenvalue of the large loss.
    true_absolute = float((exact.abs() > 0.1).double().mean())
    assert plain.epsilon_rank(0.1, relative=False) == pytest.approx(true_absolute, abs=0.05)
    assert big.epsilon_rank(0.1, relative=False) > plain.epsilon_rank(0.1, relative=False) + 0.2
