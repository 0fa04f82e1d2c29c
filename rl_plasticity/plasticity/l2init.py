"""L2-init, regenerative regularization (Kumar et al. 2023, arXiv 2308.11958).

The loss gets ``(coeff / 2) * ||theta - theta_0||^2``: before each optimizer step the gradient of
every parameter gets ``coeff * (theta - theta_0)`` added, the same coupled form as torch's
``weight_decay`` (which is L2 toward 0). theta_0 are the parameters when the method is attached.

This module knows nothing of SB3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from rl_plasticity.validate import check_number


def pull_toward_init_(
    params: Iterable[torch.Tensor], initial: Iterable[torch.Tensor], coeff: float
) -> None:
    """Add ``coeff * (theta - theta_0)`` to each parameter's gradient (skips those without one).

    :param params: the parameters theta
    :param initial: their initial values theta_0, in the same order
    :param coeff: lambda
    """
    with torch.no_grad():
        for param, start in zip(params, initial, strict=True):
            if param.grad is not None:
                param.grad.add_(param - start, alpha=coeff)


class L2InitPenalty:
    """L2-init on every parameter ``optimizer`` updates, applied just before each of its steps.

    :param optimizer: the optimizer; its parameters now are theta_0
    :param coeff: lambda (about 0.01 in Kumar et al.)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, coeff: float = 0.01) -> None:
        self.coeff = check_number("coeff", coeff, 0.0, float("inf"))
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.initial = [p.detach().clone() for p in self.params]
        self._hook = optimizer.register_step_pre_hook(
            lambda *_: pull_toward_init_(self.params, self.initial, self.coeff)
        )

    def detach(self) -> None:
        """Stop adding the penalty's gradient."""
        self._hook.remove()

    def state_dict(self) -> dict:
        """theta_0, in the optimizer's parameter order."""
        return {"initial": [t.clone() for t in self.initial]}

    def load_state_dict(self, state: Mapping) -> None:
        """Use the saved theta_0 (a resumed run keeps pulling toward the first run's start)."""
        for mine, saved in zip(self.initial, state["initial"], strict=True):
            mine.copy_(saved)
