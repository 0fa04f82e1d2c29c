"""UPGD: utility-based perturbed gradient descent (Elsayed & Mahmood, *Addressing loss of
plasticity and catastrophic forgetting in continual learning*, ICLR 2024, arXiv 2404.00781).

Each weight w with gradient g gets a utility, the first-order estimate of how much the loss would
rise if w were set to zero, averaged over time with bias correction:

    u_t = -g w,    U_t = beta_u U_{t-1} + (1 - beta_u) u_t,    U~_t = U_t / (1 - beta_u^t)

scaled by the largest utility of the whole network (the paper's *global* UPGD) into (0, 1):

    s = sigmoid(U~ / eta),    eta = max over every weight of U (before bias correction)

Useful weights (s near 1) are protected; the others are updated and perturbed:

    w <- (1 - alpha lambda) w - alpha (d + xi) (1 - s),    xi ~ N(0, sigma^2)

with d = g (UPGD), or Adam's d = m^ / (sqrt(v^) + eps) (``adaptive=True``: the authors' PPO
optimizer ``AdaptiveUPGD``, ``core/run/rl/adaupgd.py`` in github mohmdelsayed/upgd). A weight of
(corrected) utility eta gets (1 - sigmoid(1)) = 0.27 of its update; utility 0 gets half; a weight
whose utility is far below zero relative to eta gets all of it. eta is the largest *uncorrected*
average, as in the authors' code (both optimizers), where the maximum is taken before the
correction: U~ / eta = (U / eta) / (1 - beta_u^t) is scaled up early on (1000x at t = 1 with
beta_u = 0.999; 1.6x at t = 1000), so the gate starts nearly binary. When no weight has positive
utility (eta <= 0), eta is taken as the smallest positive float: every weight of non-positive
utility is then fully updated (the code would divide by a non-positive number and flip the
protection).

Defaults and where they come from (the authors' code: README's ``UPGD`` and the PPO script
``core/run/rl/ppo_continuous_action_upgd.py``, which agree): ``weight_decay`` lambda = 0.001,
``beta_utility`` = 0.999, ``sigma`` = 0.001; the learning rate alpha is the algorithm's.

Step size: this class steps by alpha, as the paper's update is written; the authors' code steps
by 2 alpha and decays by (1 - alpha lambda) (``adaupgd.py``: ``mul_(1 - lr * weight_decay)``, then
``add_(..., alpha=-2.0 * lr)``). Their optimizer at (alpha, lambda) is exactly this one at
(2 alpha, lambda / 2): the ``ppo-upgd`` spec does that (learning rate 2e-4, weight decay 5e-4 for
the authors' form at the PPO base's 1e-4 and their 1e-3), so that a weight of zero utility (gate
0.5) moves as far as under the base's Adam. Checked step for step against a transcription of
``AdaptiveUPGD`` in ``tests/test_methods_reference.py``.

``adaptive`` takes Adam's betas and eps from the optimizer it replaces, else (0.9, 0.999) and 1e-5,
the authors' (``AdaptiveUPGD``'s default and their PPO script's ``eps=1e-5``; the ``ppo-upgd``
spec sets its Adam eps to 1e-5 for that). The noise is drawn from torch's global generator.

Plain PyTorch: ``optimizer = UPGDOptimizer(net.parameters(), lr=1e-3)`` (``adaptive=True`` for
the Adam-normalised form); the training loop is unchanged.

Hook: :meth:`Method.wrap_optimizer`: the optimizer built for each network is replaced by
:class:`UPGDOptimizer` over the same parameter groups and learning rates (SB3: the policy classes
of ``rl_plasticity.sb3.policies`` build it, and its state is saved with the model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_bool, check_number


class UPGDOptimizer(torch.optim.Optimizer):
    """Utility-based perturbed gradient descent (global utility scaling), plain or adaptive.

    :param params: parameters or parameter groups
    :param lr: alpha, the step size
    :param weight_decay: lambda: each step first multiplies the weights by 1 - alpha lambda
    :param beta_utility: decay of the utility's running average
    :param sigma: standard deviation of the Gaussian perturbation
    :param adaptive: use Adam's normalised direction instead of the gradient
    :param betas: Adam's decays (only with ``adaptive``)
    :param eps: Adam's epsilon (only with ``adaptive``; the authors': 1e-5)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        weight_decay: float = 0.001,
        beta_utility: float = 0.999,
        sigma: float = 0.001,
        adaptive: bool = False,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-5,
    ) -> None:
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            beta_utility=beta_utility,
            sigma=sigma,
            adaptive=adaptive,
            betas=tuple(betas),
            eps=eps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One UPGD step on every parameter that has a gradient.

        :param closure: re-evaluates the loss (optional)
        :return: the closure's loss, or None
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        entries = []
        maxima = []
        for group in self.param_groups:
            beta_u = group["beta_utility"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["avg_utility"] = torch.zeros_like(p)
                    if group["adaptive"]:
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                state["avg_utility"].mul_(beta_u).addcmul_(p.grad, p, value=-(1 - beta_u))
                utility = state["avg_utility"] / (1 - beta_u ** state["step"])
                entries.append((group, p, utility))
                maxima.append(state["avg_utility"].max())
        if not entries:
            return loss
        eta = torch.stack(maxima).max().clamp_min(torch.finfo(maxima[0].dtype).tiny)
        for group, p, utility in entries:
            keep = 1 - torch.sigmoid(utility / eta)
            direction = self._direction(group, p)
            noise = torch.randn_like(p).mul_(group["sigma"])
            p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_((direction + noise) * keep, alpha=-group["lr"])
        return loss

    def _direction(self, group: Mapping[str, Any], p: torch.Tensor) -> torch.Tensor:
        """The gradient, or with ``adaptive`` Adam's bias-corrected m^ / (sqrt(v^) + eps)."""
        if not group["adaptive"]:
            return p.grad
        state = self.state[p]
        beta1, beta2 = group["betas"]
        state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        step = state["step"]
        m_hat = state["exp_avg"] / (1 - beta1**step)
        v_hat = state["exp_avg_sq"] / (1 - beta2**step)
        return m_hat / (v_hat.sqrt() + group["eps"])


@register_method("upgd")
class UPGD(Method):
    """Train each network with :class:`UPGDOptimizer` at the learning rates it was built with.

    :param weight_decay: lambda (the authors' code: 0.001)
    :param beta_utility: decay of the utility average (the authors' code: 0.999)
    :param sigma: perturbation standard deviation (the authors' code: 0.001)
    :param adaptive: Adam-normalised direction (the authors' PPO optimizer ``AdaptiveUPGD``)
    """

    def __init__(
        self,
        *,
        weight_decay: float = 0.001,
        beta_utility: float = 0.999,
        sigma: float = 0.001,
        adaptive: bool = False,
    ) -> None:
        self.weight_decay = check_number("weight_decay", weight_decay, 0.0)
        self.beta_utility = check_number("beta_utility", beta_utility, 0.0, 1.0, high_open=True)
        self.sigma = check_number("sigma", sigma, 0.0)
        self.adaptive = check_bool("adaptive", adaptive)
        super().__init__()

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """:class:`UPGDOptimizer` over ``optimizer``'s parameter groups and learning rates.

        :return: the UPGD optimizer
        """
        groups = [{"params": g["params"], "lr": g["lr"]} for g in optimizer.param_groups]
        first = optimizer.param_groups[0]
        return UPGDOptimizer(
            groups,
            weight_decay=self.weight_decay,
            beta_utility=self.beta_utility,
            sigma=self.sigma,
            adaptive=self.adaptive,
            betas=tuple(first.get("betas", (0.9, 0.999))),
            eps=float(first.get("eps", 1e-5)),
        )
