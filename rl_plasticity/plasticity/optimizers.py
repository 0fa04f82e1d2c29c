"""Optimizer classes for the methods that need only the parameters: shrink-and-perturb, L2-init.

Which form each method has, and why:

* **Optimizer class** (this module): a method that acts on each parameter by itself, knowing
  only its value and gradient, can live inside ``optimizer.step()``. SB3 takes such a class
  directly: ``policy_kwargs=dict(optimizer_class=ShrinkPerturbAdam, optimizer_kwargs=...)``, and
  ``model.save`` / ``load`` carry its state with the optimizer's. Shrink-and-perturb (toward 0 or
  toward a fresh LeCun-uniform draw, whose bound depends only on a weight's fan-in =
  ``shape[1]``) and L2-init (pull toward the values at the first step) are of this kind.
* **Method** (``protocol.Method``, run in SB3 by ``rl_plasticity.sb3.callbacks.MethodCallback``):
  continual backprop and ReDo must know which rows of one Linear and which columns of the next
  belong to a unit, and read activations; Reset and shrink-and-perturb "at shift" must know when
  the environment changes. An optimizer sees only a flat list of parameters, so these are methods
  with hooks. Shrink-and-perturb and L2-init exist in both forms; the method form also works with
  any optimizer (SGD, RMSprop) and with its own initial distributions.

Both classes extend ``torch.optim.Adam`` (same arguments, plus the method's). SB3 adds
``eps=1e-5`` only for exactly ``torch.optim.Adam``, so these keep torch's (and the paper's) 1e-8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from rl_plasticity.plasticity.core import new_generator
from rl_plasticity.plasticity.l2init import pull_toward_init_
from rl_plasticity.plasticity.snp import check_target, shrink_perturb_
from rl_plasticity.validate import check_number


class ShrinkPerturbAdam(torch.optim.Adam):
    """Adam, then shrink-and-perturb every parameter after each step.

    theta <- shrink * theta + (1 - shrink) * theta_fresh + noise_std * N(0, 1), where theta_fresh
    is 0 (``target="zero"``) or, for a matrix, a fresh LeCun-uniform draw U(+-sqrt(3 / shape[1]))
    and, for a vector (bias, log std), 0 (``target="fresh_init"``).

    :param params: parameters or parameter groups
    :param lr: learning rate
    :param betas: Adam's betas
    :param eps: Adam's epsilon
    :param weight_decay: Adam's coupled weight decay
    :param shrink: lambda applied after every step
    :param noise_std: sigma of the noise added after every step
    :param target: ``"fresh_init"`` or ``"zero"``
    :param seed: seed of the noise generator; ``None`` draws one from torch's global generator
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        shrink: float = 1 - 1e-6,
        noise_std: float = 0.0,
        target: str = "fresh_init",
        seed: int | None = None,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.shrink = check_number("shrink", shrink, 0.0, 1.0)
        self.noise_std = check_number("noise_std", noise_std, 0.0, float("inf"))
        self.target = check_target(target)
        self.generator = new_generator(seed)
        # A step hook, not an overridden step(): torch wraps both this class's and Adam's step()
        # with the hook runner, so calling super().step() would run every step hook twice.
        self.register_step_post_hook(self._shrink_perturb)

    def _shrink_perturb(self, *_: object) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                bound = 0.0
                if self.target == "fresh_init" and p.dim() == 2:
                    bound = math.sqrt(3.0 / p.shape[1])
                shrink_perturb_(p, self.shrink, bound, self.noise_std, self.generator)

    def state_dict(self) -> dict:
        """Adam's state plus the noise generator's."""
        state = super().state_dict()
        state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Adam's state plus the noise generator's (if saved)."""
        state_dict = dict(state_dict)
        generator = state_dict.pop("generator", None)
        super().load_state_dict(state_dict)
        if generator is not None:
            self.generator.set_state(generator)


class L2InitAdam(torch.optim.Adam):
    """Adam on the loss plus ``(l2_init / 2) ||theta - theta_0||^2`` (Kumar et al. 2023).

    theta_0 are the parameters at the first ``step()``, not at construction: an initialization
    applied after the optimizer is built (as with SB3, which builds it inside the policy) counts.

    :param params: parameters or parameter groups
    :param lr: learning rate
    :param betas: Adam's betas
    :param eps: Adam's epsilon
    :param weight_decay: Adam's coupled weight decay (toward 0)
    :param l2_init: lambda, the pull toward theta_0
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        l2_init: float = 0.01,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.l2_init = check_number("l2_init", l2_init, 0.0, float("inf"))
        self.initial: list[torch.Tensor] | None = None
        self.register_step_pre_hook(self._pull_toward_init)  # a hook: see ShrinkPerturbAdam

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _pull_toward_init(self, *_: object) -> None:
        params = self._params()
        if self.initial is None:
            self.initial = [p.detach().clone() for p in params]
        pull_toward_init_(params, self.initial, self.l2_init)

    def state_dict(self) -> dict:
        """Adam's state plus theta_0 (None before the first step)."""
        state = super().state_dict()
        state["initial"] = None if self.initial is None else [t.clone() for t in self.initial]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Adam's state plus theta_0."""
        state_dict = dict(state_dict)
        initial = state_dict.pop("initial", None)
        super().load_state_dict(state_dict)
        if initial is not None:
            self.initial = [t.to(p) for t, p in zip(initial, self._params(), strict=True)]


#: The optimizers an agent spec's ``[optimizer] name`` selects, by name.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "snp_adam": ShrinkPerturbAdam,
    "l2init_adam": L2InitAdam,
}
