"""SB3 callbacks for the plasticity methods: one adapter, many methods.

``model.learn(n, callback=ContinualBackprop(replacement_rate=1e-4, maturity_threshold=10_000))``
works for PPO, A2C, SAC, TD3 and DQN with an MLP policy. At the start of training the callback finds
the networks the algorithm trains (``networks.network_groups``: PPO/A2C's policy, SAC/TD3's actor
and critic, DQN's Q-net, each with its own optimizer) and attaches a torch-core object to each;
at the end it detaches them (hooks are not saved with a model) and keeps their state, so a second
``learn()`` call continues where the first stopped. Target networks are in no optimizer and follow
their own Polyak updates (except under :class:`Reset`, which copies a re-drawn network into its
target, as a freshly built agent would have it).

Environment changes are read from ``self.locals["infos"]``: each info's ``info["context"]["phase"]``
counts the changes applied so far; a method that acts "when the environment changes" acts when the
largest phase seen increases.

``state_dict()`` / ``load_state_dict()`` save and restore everything the method needs to continue
exactly (utilities, ages, accumulators, random generators); ``load_state_dict`` may be called
before ``learn()``: the state is applied when the callback attaches.

Logger keys: ``method/<label>/replaced`` (units replaced since the previous rollout end) and
``method/<label>/replaced_total``, with the layer's short label (``pi1``, ``vf2``: see
:func:`rl_plasticity.metrics.keys.layer_labels`); ``method/resets``; ``method/<net>/events``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.metrics.keys import layer_labels
from rl_plasticity.networks import NetworkGroup, network_groups
from rl_plasticity.plasticity.cbp import CBP
from rl_plasticity.plasticity.core import new_generator
from rl_plasticity.plasticity.init import INITS, check_init, reinit_linear_
from rl_plasticity.plasticity.l2init import L2InitPenalty
from rl_plasticity.plasticity.redo import DormantReset
from rl_plasticity.plasticity.reset import reinit_network_
from rl_plasticity.plasticity.snp import ShrinkPerturb, check_target
from rl_plasticity.validate import check_int, check_number, check_optional_int


def _largest_phase(infos: Any) -> int | None:
    phases = [
        int(info["context"]["phase"])
        for info in infos or ()
        if isinstance(info, Mapping) and "phase" in info.get("context", {})
    ]
    return max(phases) if phases else None


def updates_in_run(model: Any) -> int | None:
    """At most how many optimizer steps each network takes in the ``learn()`` call under way.

    From ``model._total_timesteps`` (set by ``learn()`` before the callbacks start) and the
    algorithm's settings: PPO ``n_epochs * ceil(n_steps * n_envs / batch_size)`` per rollout, A2C
    one per rollout, off-policy ``gradient_steps`` per ``train_freq`` after ``learning_starts``.

    :param model: an SB3 algorithm whose ``learn()`` has set up
    :return: the count, or None where it cannot be told (training frequency in episodes)
    """
    remaining = max(0, int(model._total_timesteps) - int(model.num_timesteps))
    n_envs = model.n_envs
    if hasattr(model, "rollout_buffer") and hasattr(model, "n_steps"):  # on-policy
        rollout = model.n_steps * n_envs
        per_rollout = 1
        if hasattr(model, "n_epochs"):  # PPO
            per_rollout = model.n_epochs * math.ceil(rollout / model.batch_size)
        return math.ceil(remaining / rollout) * per_rollout
    train_freq = getattr(model, "train_freq", None)
    if train_freq is None or getattr(train_freq.unit, "value", "step") != "step":
        return None
    # Rollouts of `collected` steps each until the total; SB3 trains after those that end past
    # learning_starts.
    collected = train_freq.frequency * n_envs
    rollouts = math.ceil(remaining / collected)
    before = max(0, (int(model.learning_starts) - int(model.num_timesteps)) // collected)
    steps = model.gradient_steps if model.gradient_steps >= 0 else collected
    return max(0, rollouts - before) * steps


class PlasticityCallback(BaseCallback):
    """Base of the method callbacks: attach per network group, detach, save, react to env changes.

    Subclasses build one torch-core object per :class:`NetworkGroup` in :meth:`_attach_group`
    (an object with ``detach()``, ``state_dict()``, ``load_state_dict()`` and optionally
    ``replaced_total``), and may override :meth:`_on_env_change`.

    :param seed: seed of the method's generators (group i gets seed + i); ``None`` draws one from
        torch's global generator at the first attach (SB3 seeds it with the model's seed)
    :param verbose: SB3 verbosity
    """

    def __init__(self, seed: int | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.seed = check_optional_int("seed", seed, 0)
        self.cores: dict[str, Any] = {}
        self.groups: list[NetworkGroup] = []
        self.max_phase: int | None = None
        self._pending: dict[str, Any] | None = None
        self._logged: dict[str, int] = {}
        self._replaced: dict[str, int] = {}
        self._warned = False

    # -- to override -------------------------------------------------------------------------

    def _attach_group(self, group: NetworkGroup, seed: int) -> Any:
        """The torch-core object for ``group`` (attached to its module and optimizer), or None."""
        return None

    def _on_env_change(self) -> None:
        """Called when the largest context phase seen increases."""

    def _acts_on_env_change(self) -> bool:
        """Whether the method acts only when the environment changes (then an env that reports
        no context makes it do nothing, which :meth:`_on_step` says)."""
        return False

    def _check_reachable(self, updates: int) -> None:
        """Warn if a setting cannot be reached within ``updates`` optimizer steps."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    # -- SB3 hooks -----------------------------------------------------------------------------

    def _on_training_start(self) -> None:
        if self.cores:
            return
        if self.seed is None:
            self.seed = int(torch.randint(0, 2**31, (1,)))
        self.groups = network_groups(self.model)
        for i, group in enumerate(self.groups):
            core = self._attach_group(group, self.seed + i)
            if core is not None:
                self.cores[group.name] = core
        if self._pending is not None:
            for name, core in self.cores.items():
                core.load_state_dict(self._pending[name])
            self._pending = None
        updates = updates_in_run(self.model)
        if updates is not None:
            self._check_reachable(updates)

    def _on_training_end(self) -> None:
        self._replaced = self.replaced_total
        self._pending = {name: core.state_dict() for name, core in self.cores.items()}
        for core in self.cores.values():
            core.detach()
        self.cores = {}

    def _on_step(self) -> bool:
        phase = _largest_phase(self.locals.get("infos"))
        if phase is None:
            if self.max_phase is None and not self._warned and self._acts_on_env_change():
                self._warned = True
                warnings.warn(
                    f"{type(self).__name__} acts when the environment changes, read from "
                    "info['context']['phase'] (which NonstationaryWrapper adds), and this env's "
                    "infos have none: it will never act. Wrap the env in NonstationaryWrapper "
                    "or report the phase yourself",
                    UserWarning,
                    stacklevel=2,
                )
        elif self.max_phase is None:
            self.max_phase = phase
        elif phase > self.max_phase:
            self.max_phase = phase
            self._on_env_change()
        return True

    def _recorders(self) -> list[Any]:
        return [r for r in (getattr(c, "_recorder", None) for c in self.cores.values()) if r]

    def _on_rollout_start(self) -> None:
        # Activations are read only in training forwards, which follow the rollout.
        for recorder in self._recorders():
            recorder.pause()

    def _on_rollout_end(self) -> None:
        for recorder in self._recorders():
            recorder.resume()
        labels = layer_labels((g.name, layer.name) for g in self.groups for layer in g.layers)
        for net, core in self.cores.items():
            for layer, total in getattr(core, "replaced_total", {}).items():
                key = f"method/{labels[(net, layer)]}/replaced"
                self.logger.record(key, total - self._logged.get(f"{net}/{layer}", 0))
                self.logger.record(f"{key}_total", total)
                self._logged[f"{net}/{layer}"] = total

    # -- state ---------------------------------------------------------------------------------

    @property
    def replaced_total(self) -> dict[str, int]:
        """Units replaced so far, keyed ``<net>/<layer>`` (empty for methods that replace none)."""
        if not self.cores:
            return dict(self._replaced)
        return {
            f"{net}/{layer}": n
            for net, core in self.cores.items()
            for layer, n in getattr(core, "replaced_total", {}).items()
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (``torch.save`` it beside ``model.save``).

        :return: the method's state
        """
        cores = {n: c.state_dict() for n, c in self.cores.items()} if self.cores else self._pending
        return {
            "cores": cores,
            "seed": self.seed,
            "max_phase": self.max_phase,
            "logged": dict(self._logged),
            **self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``; before ``learn()`` it is applied when the callback attaches.

        :param state: from :meth:`state_dict` of the same method on the same architecture
        """
        self.seed = state["seed"]
        self.max_phase = state["max_phase"]
        # Keyed <net>/<layer>; states saved before the short logger keys used the logger key.
        self._logged = {
            k.removeprefix("method/").removesuffix("/replaced"): v
            for k, v in state["logged"].items()
        }
        self._load_extra_state(state)
        if state["cores"] is None:
            return
        if self.cores:
            for name, core in self.cores.items():
                core.load_state_dict(state["cores"][name])
        else:
            self._pending = dict(state["cores"])


class ContinualBackprop(PlasticityCallback):
    """Continual backprop (Dohare et al. 2024) on every trained network of an SB3 algorithm.

    See ``cbp.CBP`` for the algorithm. Defaults are the paper's RL settings.

    :param replacement_rate: rho, fraction of eligible units replaced per optimizer step
    :param maturity_threshold: m, optimizer steps a new unit is protected
    :param decay_rate: eta, decay of the running utility
    :param init: incoming weights' distribution: ``"lecun_uniform"`` (the paper's),
        ``"kaiming_uniform"`` or ``"match"``
    :param mean_correction: fold a replaced unit's mean contribution into the next layer's bias
    :param seed: seed of the re-draws; ``None``: from torch's global generator
    :param verbose: SB3 verbosity
    """

    def __init__(
        self,
        replacement_rate: float = 1e-4,
        maturity_threshold: int = 10_000,
        decay_rate: float = 0.99,
        init: str = "lecun_uniform",
        mean_correction: bool = False,
        seed: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(seed, verbose)
        self.kwargs = dict(
            replacement_rate=replacement_rate,
            maturity_threshold=maturity_threshold,
            decay_rate=decay_rate,
            init=init,
            mean_correction=mean_correction,
        )
        # Validate now, not at the first learn(): build a CBP on a one-layer throwaway network.
        probe = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))
        CBP(probe, torch.optim.SGD(probe.parameters(), lr=0.0), seed=0, **self.kwargs).detach()

    def _attach_group(self, group: NetworkGroup, seed: int) -> CBP:
        return CBP(group.module, group.optimizer, seed=seed, layers=group.layers, **self.kwargs)

    def _check_reachable(self, updates: int) -> None:
        maturity = self.kwargs["maturity_threshold"]
        oldest = max(int(s.age.max()) for core in self.cores.values() for s in core.units)
        if oldest + updates <= maturity:
            warnings.warn(
                f"ContinualBackprop: maturity_threshold={maturity} optimizer steps is beyond "
                f"this run's at most {updates} (oldest unit {oldest}): no unit becomes eligible, "
                "so none will be replaced. Train longer or lower maturity_threshold",
                UserWarning,
                stacklevel=2,
            )


class ReDo(PlasticityCallback):
    """ReDo (Sokar et al. 2023): reset tau-dormant units every ``every`` optimizer steps.

    See ``redo.DormantReset``.

    :param tau: dormancy threshold on s_i = E|h_i| / mean_k E|h_k|
    :param every: F, optimizer steps of each network between resets
    :param init: incoming weights' distribution (``"lecun_uniform"``, ``"kaiming_uniform"``,
        ``"match"``)
    :param seed: seed of the re-draws; ``None``: from torch's global generator
    :param verbose: SB3 verbosity
    """

    def __init__(
        self,
        tau: float = 0.025,
        every: int = 1000,
        init: str = "lecun_uniform",
        seed: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(seed, verbose)
        self.kwargs = dict(tau=tau, every=every, init=init)
        probe = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))
        DormantReset(
            probe, torch.optim.SGD(probe.parameters(), lr=0.0), seed=0, **self.kwargs
        ).detach()

    def _attach_group(self, group: NetworkGroup, seed: int) -> DormantReset:
        return DormantReset(
            group.module, group.optimizer, seed=seed, layers=group.layers, **self.kwargs
        )

    def _check_reachable(self, updates: int) -> None:
        every = self.kwargs["every"]
        done = min(core.steps % every for core in self.cores.values())
        if done + updates < every:
            warnings.warn(
                f"ReDo: every={every} optimizer steps is beyond this run's at most {updates}: "
                "no unit will be reset. Train longer or lower every",
                UserWarning,
                stacklevel=2,
            )


class ShrinkAndPerturb(PlasticityCallback):
    """Shrink-and-perturb (Ash & Adams 2020) on every Linear of every trained network.

    theta <- shrink * theta + (1 - shrink) * theta_target + noise_std * N(0, 1), with theta_target a
    fresh draw of the initial distribution (``target="fresh_init"``) or 0 (``target="zero"``):

    * ``when="step"`` (default): after every optimizer step; the "soft" version is the default
      ``shrink = 1 - 1e-6`` toward a fresh init; the continual version is ``target="zero"``,
      ``shrink`` slightly below 1 and ``noise_std`` 1e-5..1e-4;
    * ``when="change"``: once each time the environment changes (default ``shrink = 0.5``).

    :param shrink: lambda; ``None``: 1 - 1e-6 every step, 0.5 at a change
    :param noise_std: sigma of the added noise
    :param target: ``"fresh_init"`` or ``"zero"``
    :param when: ``"step"`` or ``"change"``
    :param init: the fresh draws' distribution: ``"lecun_uniform"`` or ``"kaiming_uniform"``
    :param seed: seed of the draws; ``None``: from torch's global generator
    :param every: with ``when="step"``, act every ``every`` optimizer steps with one event of the
        same mean and variance as ``every`` single events (cheaper draws; 1: exact)
    :param verbose: SB3 verbosity
    """

    def __init__(
        self,
        shrink: float | None = None,
        noise_std: float = 0.0,
        target: str = "fresh_init",
        when: str = "step",
        init: str = "lecun_uniform",
        seed: int | None = None,
        every: int = 1,
        verbose: int = 0,
    ) -> None:
        super().__init__(seed, verbose)
        if when not in ("step", "change"):
            raise ConfigError("when", when, "one of: step, change")
        self.when = when
        if shrink is None:
            shrink = 1 - 1e-6 if when == "step" else 0.5
        self.kwargs = dict(
            shrink=check_number("shrink", shrink, 0.0, 1.0),
            noise_std=check_number("noise_std", noise_std, 0.0, float("inf")),
            target=check_target(target),
            init=check_init(init),
            every=check_int("every", every, 1),
        )

    def _attach_group(self, group: NetworkGroup, seed: int) -> ShrinkPerturb:
        optimizer = group.optimizer if self.when == "step" else None
        return ShrinkPerturb(group.module, optimizer, seed=seed, **self.kwargs)

    def _acts_on_env_change(self) -> bool:
        return self.when == "change"

    def _on_env_change(self) -> None:
        if self.when == "change":
            for core in self.cores.values():
                core.apply()

    def _on_rollout_end(self) -> None:
        super()._on_rollout_end()
        for net, core in self.cores.items():
            self.logger.record(f"method/{net}/events", core.events)


class L2Init(PlasticityCallback):
    """L2-init (Kumar et al. 2023): pull every trained parameter toward its value at the start.

    Adds ``coeff * (theta - theta_0)`` to each gradient before each optimizer step (the loss gets
    ``(coeff / 2) ||theta - theta_0||^2``), with any optimizer. theta_0: the parameters when
    training first starts; saved in the state, so a resumed run pulls toward the same point.

    :param coeff: lambda
    :param verbose: SB3 verbosity
    """

    def __init__(self, coeff: float = 0.01, verbose: int = 0) -> None:
        super().__init__(None, verbose)
        self.coeff = check_number("coeff", coeff, 0.0, float("inf"))

    def _attach_group(self, group: NetworkGroup, seed: int) -> L2InitPenalty:
        return L2InitPenalty(group.optimizer, self.coeff)


#: What ``Reset(init=...)`` accepts: SB3's own initialization, or one of ``init.INITS``.
RESET_INITS = ("sb3", *INITS)


def _sb3_reinit_(model: Any, group: NetworkGroup, generator: torch.Generator) -> None:
    """Re-draw ``group`` as SB3 initializes it (orthogonal for PPO/A2C, torch default else)."""
    policy = model.policy
    ortho = group.name == "policy" and getattr(policy, "ortho_init", False)
    if not ortho:
        for sub in group.module.modules():
            if isinstance(sub, nn.Linear):
                reinit_linear_(sub, "kaiming_uniform", generator)
        return
    gains = {policy.mlp_extractor: 2**0.5, policy.action_net: 0.01, policy.value_net: 1.0}
    with torch.no_grad():
        for module, gain in gains.items():
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.orthogonal_(sub.weight, gain=gain, generator=generator)
                    if sub.bias is not None:
                        sub.bias.zero_()


class Reset(PlasticityCallback):
    """Re-draw every trained network and forget its optimizer state when the environment changes.

    The from-scratch reference: after each change the agent starts from a fresh initialization
    (replay buffers, learning-rate schedules and entropy coefficients are kept). Target networks
    are set equal to their re-drawn networks, as in a freshly built agent. A state-independent
    ``log_std`` goes back to the policy's ``log_std_init``.

    :param init: ``"sb3"`` (as SB3 builds the policy: orthogonal with its gains for PPO/A2C when
        ``ortho_init``, torch's default otherwise), ``"lecun_uniform"`` (the paper's) or
        ``"kaiming_uniform"``; use the agent's own initialization
    :param seed: seed of the draws; ``None``: from torch's global generator
    :param verbose: SB3 verbosity
    """

    def __init__(self, init: str = "sb3", seed: int | None = None, verbose: int = 0) -> None:
        super().__init__(seed, verbose)
        self.init = check_init(init, allowed=RESET_INITS)
        self.resets = 0
        self.generator: torch.Generator | None = None
        self._generator_state: torch.Tensor | None = None

    def _on_training_start(self) -> None:
        super()._on_training_start()
        if self.generator is None:
            self.generator = new_generator(self.seed)
            if self._generator_state is not None:
                self.generator.set_state(self._generator_state)

    def _acts_on_env_change(self) -> bool:
        return True

    def _on_env_change(self) -> None:
        policy = self.model.policy
        for group in self.groups:
            if self.init == "sb3":
                _sb3_reinit_(self.model, group, self.generator)
                for param in group.module.parameters():
                    group.optimizer.state.pop(param, None)
            else:
                reinit_network_(group.module, group.optimizer, self.init, self.generator)
        log_std = getattr(policy, "log_std", None)
        if isinstance(log_std, nn.Parameter):
            with torch.no_grad():
                log_std.fill_(getattr(policy, "log_std_init", 0.0))
        for online, target in (("critic", "critic_target"), ("actor", "actor_target")):
            if hasattr(policy, online) and hasattr(policy, target):
                getattr(policy, target).load_state_dict(getattr(policy, online).state_dict())
        if hasattr(policy, "q_net_target"):
            policy.q_net_target.load_state_dict(policy.q_net.state_dict())
        self.resets += 1

    def _on_rollout_end(self) -> None:
        super()._on_rollout_end()
        self.logger.record("method/resets", self.resets)

    def _extra_state(self) -> dict[str, Any]:
        generator = self._generator_state
        if self.generator is not None:
            generator = self.generator.get_state()
        return {"resets": self.resets, "generator": generator}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.resets = int(state["resets"])
        self._generator_state = state["generator"]
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])
