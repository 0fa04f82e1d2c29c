"""Effective-rank regularizer (with L2): He, Guo, Prakash et al. 2025, "Spectral collapse drives
loss of plasticity in deep continual learning", arXiv 2509.22335.

The paper traces loss of plasticity to a collapse of the Hessian's spectrum and, through a
Kronecker-factored view of the Hessian, proposes two regularizers used together: keep each hidden
layer's features at a high effective rank, and L2. For the features ``H_l`` (batch x units) of
hidden layer ``l`` on the step's minibatch, with singular values ``sigma_1 >= ... >= sigma_r``::

    p_i = sigma_i / sum_j sigma_j
    erank(H_l) = exp(-sum_i p_i log(p_i + eps))            (Roy & Vetterli's effective rank)
    loss = task loss - coeff * mean_l erank(H_l)   (+ L2 through the optimizer's weight_decay)

Sources of each setting (the paper's full text could not be read when this was written: only its
abstract, which names the two regularizers; the formula and everything below are from the
authors' code, a public fork of the Nature paper's code by co-author Kevin Guo,
github.com/KevinGuo27/ReAI-loss-of-plasticity, ``lop/algos/er.py`` and ``lop/algos/rl/ppo.py``):

* ``eps`` = 1e-8 inside the log, singular values of the features (``svdvals``), the mean over
  hidden layers, the minus sign (maximized): the authors' code.
* ``coeff`` = 0.01: the ``erank_lambda`` default of the authors' supervised ``er.py`` (where the
  term is in fact applied as a separate step, below); not a tuned RL value. Sweep it.
* L2: the optimizer's ``weight_decay`` (coupled, torch Adam's), 1e-4 in the authors' RL config;
  the ``ppo-er`` spec sets it.

The authors' code does not add the term to the loss: it takes a separate optimizer step on
``-mean_l erank`` alone, with its own optimizer of the main one's class, betas, eps and weight
decay and a small learning rate (RL config ``lop/rl/cfg/sant/l2_er.yml``, SlipperyAnt: ``er_lr``
4e-6, ``er_batch`` 256, one ER step per chunk, Adam betas (0.99, 0.99), weight decay 1e-4; the
annealing is ``ppo.py``'s defaults, which that config does not change: linearly to
``er_lr_final`` 1e-7 over ``er_anneal_steps`` = 15,000 ER steps, ``max(final / lr, 1 - t /
steps)`` times ``er_lr``). Setting ``er_lr`` here does that instead of the loss term (``coeff``
is then unused): after each ``every_updates``-th optimizer step, an Adam step (betas, eps, weight
decay copied from the network's optimizer when it has them) on the effective-rank gradient of
that step's minibatch.
Differences that remain: the authors' PPO takes its ER steps before each update's epochs, on the
rollout in chunks of ``er_batch`` = 256 samples (8 ER steps per 2,048-sample rollout); here they
are taken on the PPO minibatches of the update (``every_updates`` = 20 with 10 epochs x 16
minibatches gives the same 8 per rollout, on 128-sample minibatches), and the gradient is taken
at the parameters before the main step (one step stale; it is computed in the pre-step hook).
The authors keep one ER optimizer for the policy and one for the value network, each on the mean
over its own layers; SB3's PPO trains both with one optimizer, so here one ER Adam takes the mean
over all their hidden layers (half the gradient per network, which Adam's normalization undoes).

Hooks: ``loss_term`` with ``loss_features`` (the features recomputed with gradients); with
``er_lr``, ``loss_term`` computes the effective-rank gradient and ``after_step`` applies it with
the separate optimizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_int, check_number


def effective_rank(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Roy & Vetterli's effective rank of ``features``, differentiable.

    :param features: samples x units
    :param eps: added inside the log (the authors' code: 1e-8)
    :return: ``exp(-sum_i p_i log(p_i + eps))``, ``p`` the normalized singular values
    """
    sv = torch.linalg.svdvals(features)
    p = sv / sv.sum().clamp(min=eps)
    return torch.exp(-(p * torch.log(p + eps)).sum())


@register_method("er")
class EffectiveRankRegularizer(Method):
    """Maximize the mean effective rank of the hidden layers' features on each minibatch.

    :param coeff: weight of ``-mean_l erank(H_l)`` in the loss (unused when ``er_lr`` is set)
    :param er_lr: None: the loss term (the paper's form). A number: the authors' code's form, a
        separate Adam step of this learning rate on ``-mean_l erank`` (their RL config: 4e-6)
    :param er_lr_final: the separate step's learning rate after annealing (theirs: 1e-7)
    :param er_anneal_steps: ER steps over which it anneals linearly (theirs: 15,000)
    :param every_updates: take the separate step after every ``every_updates``-th optimizer step
    :param eps: inside the entropy's log
    """

    needs_layers = True
    loss_features = True

    def __init__(
        self,
        *,
        coeff: float = 0.01,
        er_lr: float | None = None,
        er_lr_final: float = 1e-7,
        er_anneal_steps: int = 15_000,
        every_updates: int = 1,
        eps: float = 1e-8,
    ) -> None:
        self.coeff = check_number("coeff", coeff, 0.0)
        self.er_lr = None if er_lr is None else check_number("er_lr", er_lr, 0.0, low_open=True)
        self.er_lr_final = check_number("er_lr_final", er_lr_final, 0.0)
        if self.er_lr is not None and self.er_lr_final > self.er_lr:
            raise ConfigError("er_lr_final", er_lr_final, f"at most er_lr ({er_lr})")
        self.er_anneal_steps = check_int("er_anneal_steps", er_anneal_steps, 1)
        self.every_updates = check_int("every_updates", every_updates, 1)
        self.eps = check_number("eps", eps, 0.0, low_open=True)
        self.er_optimizer: torch.optim.Optimizer | None = None
        #: separate ER steps taken so far
        self.er_steps = 0
        #: mean effective rank of the latest minibatch (before the step)
        self.last_erank = float("nan")
        #: optimizer steps on which the effective rank was computed (with ``er_lr``: the ER steps)
        self.terms = 0
        self._params: list[torch.Tensor] = []
        self._pending: list[torch.Tensor | None] | None = None
        super().__init__()

    def setup(self) -> None:
        groups = self.optimizer.param_groups if self.optimizer is not None else []
        self._params = [p for g in groups for p in g["params"] if p.requires_grad]
        if self.er_lr is None or not self._params:
            return
        main = groups[0]
        kwargs: dict[str, Any] = {"lr": self.current_er_lr()}
        for key in ("betas", "eps", "weight_decay"):
            if key in main:
                kwargs[key] = main[key]
        self.er_optimizer = torch.optim.Adam(self._params, **kwargs)

    def current_er_lr(self) -> float:
        """The separate step's learning rate now (the authors' linear annealing)."""
        assert self.er_lr is not None
        fraction = max(self.er_lr_final / self.er_lr, 1.0 - self.er_steps / self.er_anneal_steps)
        return self.er_lr * fraction

    def mean_erank(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``mean_l erank(H_l)`` over the given features (differentiable).

        :param features: each hidden layer's features (samples x units)
        :return: a scalar
        """
        return torch.stack([effective_rank(h, self.eps) for h in features]).mean()

    def loss_term_due(self) -> bool:
        return self.er_lr is None or (self.steps + 1) % self.every_updates == 0

    def loss_term(self, features: list[torch.Tensor] | None) -> torch.Tensor | None:
        separate = self.er_lr is not None
        if not features or not self.loss_term_due():
            return None
        erank = self.mean_erank(features)
        self.last_erank = float(erank.detach())
        self.terms += 1
        if not separate:
            return None if self.coeff == 0 else -self.coeff * erank
        grads = torch.autograd.grad(-erank, self._params, allow_unused=True)
        self._pending = [None if g is None else g.detach() for g in grads]
        return None

    def after_step(self) -> None:
        if self._pending is None or self.er_optimizer is None:
            return
        saved = [p.grad for p in self._params]
        for param, grad in zip(self._params, self._pending, strict=True):
            param.grad = grad
        for group in self.er_optimizer.param_groups:
            group["lr"] = self.current_er_lr()
        self.er_optimizer.step()
        for param, grad in zip(self._params, saved, strict=True):
            param.grad = grad
        self._pending = None
        self.er_steps += 1

    def counters(self) -> dict[str, float]:
        """The latest minibatch's mean effective rank, the steps it was computed on, and the
        separate steps taken."""
        out = {"erank": self.last_erank, "terms": float(self.terms)}
        if self.er_lr is not None:
            out["er_steps"] = float(self.er_steps)
        return out

    def state_dict(self) -> dict:
        """The separate optimizer's state and step count (when ``er_lr`` is set)."""
        state = super().state_dict()
        if self.er_optimizer is not None:
            state["er_optimizer"] = self.er_optimizer.state_dict()
            state["er_steps"] = self.er_steps
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the separate optimizer and its annealing where they stopped."""
        super().load_state_dict(state)
        if self.er_optimizer is not None and "er_optimizer" in state:
            self.er_optimizer.load_state_dict(state["er_optimizer"])
            self.er_steps = int(state["er_steps"])
