"""Shrink-and-perturb (Ash & Adams 2020, arXiv 1910.08475) on the Linear layers of a network.

One event moves every Linear weight and bias theta to

    theta <- lambda * theta + rho * theta_fresh + sigma * noise,   noise ~ N(0, 1)

where theta_fresh is a fresh draw from the initial distribution (``target="fresh_init"``) or 0
(``target="zero"``: plain shrinking, i.e. weight decay), and rho (``fresh_scale``) is
1 - lambda by default. Two forms of the fresh draw's weight:

* the soft, interpolating form (``fresh_scale=None``, default): rho = 1 - lambda, theta moves
  1 - lambda of the way toward a fresh network, as Plasticine does every step (p = 1 - 1e-6);
* Ash & Adams' form: theta <- lambda theta + rho eps with eps drawn from the initial
  distribution and rho an independent noise scale ("sigma" in Kumar et al.'s App. A.3 reading
  of Ash & Adams, who suggest drawing eps from the initialization so that the noise scales with
  each layer's width): ``fresh_scale=rho``. Kumar et al.'s best settings on their problems
  (Tables 3-4): lambda = 1 - 1e-4 (or 1 - 1e-3) and rho = 1e-2, after every step.

Uses in the literature: continual, after every step (Ash & Adams' form, or ``target="zero"`` with
Gaussian ``noise_std`` about 1e-5..1e-4); "soft", after every step, lambda = 1 - 1e-6 toward a
fresh random init; "at shift", lambda = 0.5 toward a fresh init when the task (the environment)
changes (Ash & Adams' warm-starting experiments shrink and perturb once, at the new data).

This module knows nothing of SB3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.init import bias_bound, check_init, uniform, weight_bound
from rl_plasticity.plasticity.protocol import Method, register_method
from rl_plasticity.validate import check_int, check_number

TARGETS = ("fresh_init", "zero")


def shrink_perturb_(
    param: torch.Tensor,
    shrink: float,
    fresh_bound: float,
    noise_std: float,
    generator: torch.Generator | None,
    fresh_scale: float | None = None,
) -> None:
    """theta <- shrink theta + fresh_scale U(-fresh_bound, fresh_bound) + noise_std N(0, 1).

    :param param: the parameter, changed in place
    :param shrink: lambda
    :param fresh_bound: half-width of the fresh initial draw (0: shrink toward zero)
    :param noise_std: sigma of the added Gaussian noise
    :param generator: random source (CPU)
    :param fresh_scale: weight of the fresh draw; None: 1 - shrink
    """
    fresh_scale = 1 - shrink if fresh_scale is None else fresh_scale
    with torch.no_grad():
        if shrink != 1.0:
            param.mul_(shrink)
        if fresh_bound > 0 and fresh_scale != 0:
            param.add_(uniform(param.shape, fresh_bound, generator, param), alpha=fresh_scale)
        if noise_std > 0:
            noise = torch.empty(param.shape, dtype=param.dtype).normal_(generator=generator)
            param.add_(noise.to(param.device), alpha=noise_std)


def repeated_event(shrink: float, every: int) -> tuple[float, float]:
    """Shrink factor and draw scale of one event standing for ``every`` consecutive events.

    ``every`` events theta <- l theta + X_j (X_j independent, zero mean) give
    l^every theta + sum_j l^j X_j, whose added part has variance S Var(X), S = sum_{j<every} l^(2j).
    One event l^every theta + sqrt(S) X has the same mean and variance.

    :param shrink: lambda of one event
    :param every: number of events it stands for
    :return: (lambda^every, sqrt(S))
    """
    if shrink == 1.0:
        return 1.0, math.sqrt(every)
    total = (1 - shrink ** (2 * every)) / (1 - shrink**2)
    return shrink**every, math.sqrt(total)


def check_target(target: str) -> str:
    """``target`` if it is one of :data:`TARGETS`, else ConfigError."""
    if target not in TARGETS:
        raise ConfigError("target", target, "one of: " + ", ".join(TARGETS))
    return target


#: When shrink-and-perturb acts: after optimizer steps, or when the environment changes.
WHENS = ("step", "change")


@register_method("snp")
class ShrinkPerturb(Method):
    """Shrink-and-perturb on every Linear of a network, after optimizer steps or at changes
    (attached without an optimizer, call :meth:`apply` yourself).

    :param shrink: lambda; ``None``: 1 - 1e-6 (the soft version, every step) with
        ``when="step"``, 0.5 with ``when="change"``
    :param noise_std: sigma of the Gaussian noise added (0: none)
    :param fresh_scale: rho, the weight of the fresh draw from the initial distribution; None:
        1 - lambda (the soft form, moving toward a fresh network); a number: Ash & Adams'
        independent noise scale on init-distribution noise (needs ``target="fresh_init"``)
    :param target: ``"fresh_init"`` (shrink toward a fresh draw of the initial distribution) or
        ``"zero"``
    :param when: ``"step"`` (after optimizer steps) or ``"change"`` (once each time the
        environment changes)
    :param init: the initial distribution of the fresh draws: ``"lecun_uniform"`` or
        ``"kaiming_uniform"``
    :param every_updates: with ``when="step"``, act once every ``every_updates`` optimizer steps
        with one event of the same mean and variance as ``every_updates`` single-step events (see
        :func:`repeated_event`): the random draws, which dominate the cost, are made
        ``every_updates`` times less often. 1: exact.
    """

    random = True

    def __init__(
        self,
        *,
        shrink: float | None = None,
        noise_std: float = 0.0,
        fresh_scale: float | None = None,
        target: str = "fresh_init",
        when: str = "step",
        init: str = "lecun_uniform",
        every_updates: int = 1,
    ) -> None:
        if when not in WHENS:
            raise ConfigError("when", when, "one of: " + ", ".join(WHENS))
        self.when = when
        if shrink is None:
            shrink = 1 - 1e-6 if when == "step" else 0.5
        self.shrink = check_number("shrink", shrink, 0.0, 1.0)
        self.every_updates = check_int("every_updates", every_updates, 1)
        self.noise_std = check_number("noise_std", noise_std, 0.0, float("inf"))
        self.target = check_target(target)
        if fresh_scale is not None:
            fresh_scale = check_number("fresh_scale", fresh_scale, 0.0, float("inf"))
            if self.target != "fresh_init":
                raise ConfigError("fresh_scale", fresh_scale, "None with target 'zero'")
        self.fresh_scale = fresh_scale
        self.init = check_init(init)
        self.events = 0
        self._params: list[tuple[torch.Tensor, float]] = []
        super().__init__()

    @property
    def acts_on_change(self) -> bool:  # type: ignore[override]
        """Whether it acts only at environment changes (``when="change"``)."""
        return self.when == "change"

    def setup(self) -> None:
        fresh = self.target == "fresh_init"
        self._params = []
        for sub in self.module.modules():
            if isinstance(sub, nn.Linear):
                self._params.append((sub.weight, weight_bound(sub, self.init) if fresh else 0.0))
                if sub.bias is not None:
                    self._params.append((sub.bias, bias_bound(sub, self.init) if fresh else 0.0))

    def after_step(self) -> None:
        if self.when == "step" and self.steps % self.every_updates == 0:
            self.apply(repeats=self.every_updates)

    def on_context_change(self, phase: int) -> None:
        if self.when == "change":
            self.apply()

    def apply(self, shrink: float | None = None, repeats: int = 1) -> None:
        """One shrink-and-perturb event on every Linear weight and bias.

        :param shrink: lambda for this event; None uses the constructor's
        :param repeats: stand for this many consecutive events (see :func:`repeated_event`)
        """
        lam, scale = repeated_event(self.shrink if shrink is None else shrink, repeats)
        single = self.shrink if shrink is None else shrink
        fresh = 1 - single if self.fresh_scale is None else self.fresh_scale
        for param, bound in self._params:
            shrink_perturb_(
                param, lam, bound, scale * self.noise_std, self.generator, scale * fresh
            )
        self.events += repeats

    def counters(self) -> dict[str, float]:
        return {"events": self.events}

    def state_dict(self) -> dict:
        """The generator's state, the step count and the number of events so far."""
        return {**super().state_dict(), "events": self.events}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from :meth:`state_dict`'s output."""
        super().load_state_dict(state)
        self.events = int(state["events"])
