"""L2-init, regenerative regularization (Kumar et al. 2023, arXiv 2308.11958).

The loss gets ``coeff * ||theta - theta_0||^2`` over every parameter the optimizer trains, theta_0
being the parameters when the method is attached: Kumar et al.'s Eq. 1,
L_train(theta) + lambda ||theta - theta_0||^2, with ``coeff`` their lambda. Each step's gradient
gets ``2 coeff (theta - theta_0)``, the coupled form of torch's ``weight_decay`` (which is L2
toward 0) at weight decay 2 coeff. The default ``coeff`` = 0.01 is the single lambda Kumar et al.
find best across problems (App. A.2.5, Fig. 12; Tables 3-4 with Adam). Before issue 22, ``coeff``
was the gradient's coefficient ((coeff / 2) ||theta - theta_0||^2), half their lambda at equal
value. (``optimizers.L2InitAdam``'s ``l2_init`` keeps that older gradient-coefficient form.)

Hooks: ``before_step``: the penalty's gradient ``2 coeff (theta - theta_0)`` is added to each
parameter's ``.grad`` before each optimizer step, in closed form. That is what the protocol's
``loss_term`` would add through autograd, at the same point of the step (after the algorithm's
``backward()``; with a finite ``max_grad_norm`` it is clipped with the algorithm's gradient, as a
term of the loss: see ``protocol``), without building a graph over every parameter (which cost a
third of FastPPO's speed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.plasticity.stacked import MemberStacks, shared_stack
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


@register_method("l2init")
class L2Init(Method):
    """L2-init on every parameter the optimizer trains.

    :param coeff: lambda of the loss term ``lambda ||theta - theta_0||^2`` (Kumar et al.'s Eq. 1;
        their best, 0.01)
    """

    before_step_is_loss = True
    population_form = True

    def __init__(
        self,
        *,
        coeff: float = 0.01,
    ) -> None:
        self.coeff = check_number("coeff", coeff, 0.0, float("inf"))
        self.params: list[torch.Tensor] = []
        self.initial: list[torch.Tensor] = []
        super().__init__()

    def setup(self) -> None:
        groups = self.optimizer.param_groups if self.optimizer is not None else []
        self.params = [p for group in groups for p in group["params"]]
        self.initial = [p.detach().clone() for p in self.params]

    def before_step(self) -> None:
        if self.coeff == 0:
            return
        for param in self.params:
            if param.grad is None and param.requires_grad:
                param.grad = torch.zeros_like(param)
        pull_toward_init_(self.params, self.initial, 2 * self.coeff)

    @classmethod
    def stacked_before_step(cls, methods: Sequence[L2Init], stacks: MemberStacks) -> None:
        """The pull toward theta_0 for P members at once: theta_0 kept as slices of stacks (each
        member's ``initial`` are views of them), one multi-tensor add for all members.

        :param methods: member k's L2Init (equal ``coeff``) at index k
        :param stacks: the members' parameters and gradients as stacks
        """
        first = methods[0]
        if first.coeff == 0:
            return
        params, initial = [], []
        for j, param in enumerate(first.params):
            stack, views = shared_stack([m.initial[j] for m in methods])
            if views is not None:
                for method, view in zip(methods, views, strict=True):
                    method.initial[j] = view
            params.append(stacks.stack(param))
            initial.append(stack)
        for param in params:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        pull_toward_init_(params, initial, 2 * first.coeff)

    def state_dict(self) -> dict:
        """theta_0, in the optimizer's parameter order."""
        return {**super().state_dict(), "initial": [t.clone() for t in self.initial]}

    def load_state_dict(self, state: Mapping) -> None:
        """Use the saved theta_0 (a resumed run keeps pulling toward the first run's start)."""
        super().load_state_dict(state)
        for mine, saved in zip(self.initial, state["initial"], strict=True):
            mine.copy_(saved)
