"""Noisy SGD, to escape frozen and cloned units: Joudaki et al. 2025, "Barriers for learning in
an evolving world", arXiv 2510.00304.

The paper (appendix, "Noisy SGD optimizer") adds Gaussian noise to each gradient ``g_t`` before
the update, scaled by the gradient's norm and decaying geometrically::

    g_t <- g_t + eps_t,   eps_t ~ N(0, sigma_t^2 ||g_t||^2 I),   sigma_t = sigma_0 * lambda^t

The authors' code (github ajoudaki/loss-of-plasticity, ``src/utils/noisy_optimizer.py``, an SGD
subclass) takes ``||g_t||`` per parameter tensor, adds the noise before weight decay and
momentum, and counts ``t`` in optimizer steps from the optimizer's creation (for their cloning
experiments, the moment the network is cloned). Their Hydra config
(``conf/optimizer/noisysgd.yaml``): ``noise_scale`` sigma_0 = 0.01, ``noise_decay`` lambda = 0.99;
the paper's cloning figures use sigma 0.01 with lambda 0.999 and sweep lambda over 0.9, 0.99,
0.999 (and sigma over 0.01, 0.02, 0.05). The paper notes that a single step of noise at 0.01 of
the gradient norm suffices to start escaping a cloned-unit manifold in its MLPs.

Here the noise is added to ``.grad`` before any optimizer's step (Adam included), after the
algorithm's gradient clipping and after any loss term; ``t`` counts this network's optimizer
steps since the method was attached (``restart_on_change``: since the latest environment
change, so each change gets a fresh burst of noise). ``per_tensor`` = True takes the norm per
parameter tensor (the authors' code); False takes the norm of the whole gradient (one reading of
the paper's ``||g_t||``). With Adam the noise passes through its normalization, unlike the
paper's plain SGD.

No targeted perturbation exists: neither the paper nor the authors' code perturbs the units
that the metrics flag as cloned or frozen. The paper names noisy SGD, dropout and CBP as
perturbations that can break the symmetry; its "targeted perturbations" (abstract) are these.

Hooks: ``before_step`` (adds the noise to the finished gradient); ``on_context_change`` only with
``restart_on_change``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_bool, check_number


@register_method("noisy_sgd")
class NoisySGD(Method):
    """Gaussian gradient noise of norm-relative scale ``sigma_0 * lambda^t``.

    :param noise_scale: sigma_0 (the authors' config: 0.01)
    :param noise_decay: lambda per optimizer step (the authors' config: 0.99; 1 = no decay)
    :param per_tensor: scale by each parameter tensor's gradient norm (the authors' code), else
        by the whole gradient's norm
    :param restart_on_change: restart ``t`` at 0 at each environment change
    """

    random = True

    def __init__(
        self,
        *,
        noise_scale: float = 0.01,
        noise_decay: float = 0.99,
        per_tensor: bool = True,
        restart_on_change: bool = False,
    ) -> None:
        self.noise_scale = check_number("noise_scale", noise_scale, 0.0)
        self.noise_decay = check_number("noise_decay", noise_decay, 0.0, 1.0)
        self.per_tensor = check_bool("per_tensor", per_tensor)
        self.restart_on_change = check_bool("restart_on_change", restart_on_change)
        #: the step count at which t was last 0
        self.origin = 0
        #: optimizer steps that received noise
        self.noisy_steps = 0
        super().__init__()

    @property
    def acts_on_change(self) -> bool:  # type: ignore[override]
        """Only ``restart_on_change`` reads the environment's changes."""
        return self.restart_on_change

    def current_scale(self) -> float:
        """sigma_t for the coming step: ``noise_scale * noise_decay ** t``."""
        return self.noise_scale * self.noise_decay ** (self.steps - self.origin)

    def before_step(self) -> None:
        assert self.optimizer is not None
        scale = self.current_scale()
        if scale == 0:
            return
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"]]
        grads = [g for g in grads if g is not None]
        if not grads:
            return
        with torch.no_grad():
            total = (
                None
                if self.per_tensor
                else torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads])
                )
            )
            for grad in grads:
                norm = torch.linalg.vector_norm(grad) if total is None else total
                noise = torch.randn(grad.shape, generator=self.generator, dtype=grad.dtype).to(
                    grad.device
                )
                grad.add_(noise * (norm * scale))
        self.noisy_steps += 1

    def on_context_change(self, phase: int) -> None:
        if self.restart_on_change:
            self.origin = self.steps

    def counters(self) -> dict[str, float]:
        """sigma_t of the coming step and the steps that received noise."""
        return {"noise_scale": self.current_scale(), "noisy_steps": float(self.noisy_steps)}

    def state_dict(self) -> dict:
        """Where t restarted last."""
        return {**super().state_dict(), "origin": self.origin, "noisy_steps": self.noisy_steps}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the decay where it stopped."""
        super().load_state_dict(state)
        self.origin = int(state.get("origin", 0))
        self.noisy_steps = int(state.get("noisy_steps", 0))
