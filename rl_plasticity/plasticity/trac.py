"""TRAC: a parameter-free optimizer for lifelong RL (Muppidi, Zhang & Yang, *Fast TRAC: a
parameter-free optimizer for lifelong reinforcement learning*, NeurIPS 2024, arXiv 2405.16642).

TRAC wraps a base optimizer (here the one the algorithm built, e.g. Adam) and keeps the weights
on a ray from their values at the start, theta_ref, scaled by a tuned scalar S_t:

    theta_t = theta_ref + S_t * Delta_t

where Delta_t accumulates the base optimizer's updates. With h_t = <Delta_t, g_t> (the gradient
along the ray) and, for each beta in B = {0.9, 0.99, ..., 0.999999}:

    v_beta <- beta^2 v_beta + h_t^2,      sigma_beta <- beta sigma_beta - h_t,
    s_beta = s_init / erfi(1/sqrt 2) * erfi(sigma_beta / (sqrt(2 v_beta) + eps)),
    S_t = max(sum_beta s_beta, 0)

S starts at about s_init = 1e-8 (the weights barely leave theta_ref) and grows only while the
gradient keeps pointing along the ray; after a shift it can shrink the network back toward
theta_ref. Defaults (B, s_init = 1e-8, eps = 1e-8) are the authors' package's, which the paper
uses; the base optimizer's own settings are the algorithm's.

Implementation: the authors' package ``trac-optimizer`` (PyPI, version 0.0.2, pure Python, no
dependency beyond torch; ``start_trac(log_file, Base)`` returns a subclass of ``Base``). Two
adaptations, no change to its math:

* its state lives in ``optimizer.state["_trac"]``, keyed by the parameter tensors themselves, so a
  state saved and loaded (SB3's ``save``/``load``, a resumed run) no longer finds its parameters
  and the next step raises ``KeyError``. :func:`trac_class` adds ``state_dict`` /
  ``load_state_dict`` that store the references in parameter order and re-key them on load;
* it appends a line to a log file at every step: the file here is ``os.devnull``.

Plain PyTorch: ``optimizer = trac_class(torch.optim.Adam)(net.parameters(), lr=1e-3)``.

Hook: :meth:`Method.wrap_optimizer` (SB3: the policy classes of ``rl_plasticity.sb3.policies``
build it, and its state is saved with the model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from trac_optimizer import start_trac

from rl_plasticity.plasticity.protocol import Method, register_method

#: The key of TRAC's own state in ``optimizer.state`` (the package's).
TRAC_KEY = "_trac"


def trac_class(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """The package's TRAC class over ``base``, with a state that survives save and load.

    :param base: the base optimizer class (``torch.optim.Adam``, ...)
    :return: a subclass of ``base``
    """
    package_class = start_trac(os.devnull, base)

    class SaveableTRAC(package_class):  # type: ignore[misc, valid-type]
        """TRAC over the base optimizer; its references are saved in parameter order."""

        def _params(self) -> list[torch.Tensor]:
            return [p for group in self.param_groups for p in group["params"]]

        def state_dict(self) -> dict[str, Any]:
            packed = super().state_dict()
            trac = packed["state"].get(TRAC_KEY)
            if trac is None:
                return packed
            kept = {k: v for k, v in trac.items() if not torch.is_tensor(k)}
            kept["refs"] = [trac[p]["ref"] for p in self._params()]
            return {**packed, "state": {**packed["state"], TRAC_KEY: kept}}

        def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
            states = dict(state_dict["state"])
            trac = states.pop(TRAC_KEY, None)
            super().load_state_dict({**state_dict, "state": states})
            if trac is None:
                return
            trac = dict(trac)
            refs = trac.pop("refs")
            for param, ref in zip(self._params(), refs, strict=True):
                trac[param] = {"ref": ref.to(param.device, param.dtype).clone()}
            self.state[TRAC_KEY] = trac

    SaveableTRAC.__name__ = SaveableTRAC.__qualname__ = f"TRAC{base.__name__}"
    return SaveableTRAC


@register_method("trac")
class TRAC(Method):
    """Train each network with TRAC over the optimizer it was built with.

    :param module: the network; None: :meth:`attach` later
    :param optimizer: the optimizer training it (already TRAC when the SB3 policy classes built it)
    :param seed: unused (TRAC draws nothing)
    :param layers: unused
    :param heads: unused
    """

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """TRAC over ``optimizer``'s class, parameter groups and settings.

        :param optimizer: the optimizer as built
        :return: the TRAC optimizer (a subclass of ``optimizer``'s class)
        """
        groups = [dict(group) for group in optimizer.param_groups]
        return trac_class(type(optimizer))(groups, **optimizer.defaults)
