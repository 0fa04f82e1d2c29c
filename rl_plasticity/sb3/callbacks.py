"""One SB3 callback for every registered plasticity method.

``model.learn(n, callback=method_callback("cbp", replacement_rate=1e-4))`` works for PPO, A2C,
SAC, TD3 and DQN with an MLP policy; so do the per-method classes (``CBPCallback(...)``, made by
:func:`callback_class`, whose signature is the method's settings) and the names kept from before
(``ContinualBackprop``, ``ReDo``, ``ShrinkAndPerturb``, ``L2Init``, ``Reset``). Names: a method
registered as ``"cbp"`` is the torch class ``CBP`` (``rl_plasticity.plasticity.cbp``), the
callback ``CBPCallback`` (here) and ``[method] name = "cbp"`` in an agent spec.

At the start of training the callback finds the networks the algorithm trains
(:func:`rl_plasticity.sb3.networks.network_groups`: PPO/A2C's policy, SAC/TD3's actor and
critic, DQN's Q-net, each with its own optimizer) and attaches one method instance to each, with
seeds ``seed, seed + 1, ...``; at the end it detaches them (hooks are not saved with a model) and
keeps their state, so a second ``learn()`` continues where the first stopped.

Environment changes are read from ``self.locals["infos"]``: each info's ``info["context"]["phase"]``
counts the changes applied so far; when the largest phase seen increases, every instance's
``on_context_change`` runs (then target networks are synced for methods with ``syncs_targets``).

``state_dict()`` / ``load_state_dict()`` save and restore everything needed to continue exactly;
``load_state_dict`` may be called before ``learn()``: the state is applied when the callback
attaches. States written by the callbacks of version 0.1 load (the same layout).

Logger keys: ``method/<label>/replaced`` (units replaced since the previous rollout end) and
``method/<label>/replaced_total`` with the layer's short label (``pi1``, ``vf2``: see
:func:`rl_plasticity.logger_keys.layer_labels`); a method's :meth:`counters` as
``method/<net>/<key>`` (``method/<key>`` for model-wide ones such as ``method/resets``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from rl_plasticity.errors import ConfigError, warn_user
from rl_plasticity.logger_keys import layer_labels
from rl_plasticity.plasticity.protocol import (
    Method,
    make_method,
    method_class,
    method_settings,
    registered_methods,
)
from rl_plasticity.sb3.networks import NetworkGroup, network_groups, sb3_reinit, sync_targets
from rl_plasticity.sb3.policies import changes_policy
from rl_plasticity.validate import check_optional_int


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


class MethodCallback(BaseCallback):
    """Drive a registered plasticity method on every network an SB3 algorithm trains.

    :param method: the method's registered name (``"cbp"``) or class
    :param seed: seed of the instances' generators (network i gets seed + i); ``None`` draws one
        from torch's global generator at the first attach (SB3 seeds it with the model's seed)
    :param verbose: SB3 verbosity
    :param settings: the method's settings (the keyword parameters of its ``__init__``)
    :raises ConfigError: for an unknown method, an unknown setting or a value not allowed
    """

    def __init__(
        self, method: str | type[Method], seed: int | None = None, verbose: int = 0, **settings: Any
    ) -> None:
        super().__init__(verbose)
        self.method_class = method_class(method)
        self.seed = check_optional_int("seed", seed, 0)
        #: an unattached instance: the settings validated now, not at the first learn()
        self.template = make_method(self.method_class, settings)
        self.settings = dict(settings)
        self.methods: dict[str, Method] = {}
        self.groups: list[NetworkGroup] = []
        self.max_phase: int | None = None
        self._counts: dict[str, float] = {}
        self._pending: dict[str, Any] | None = None
        self._logged: dict[str, int] = {}
        self._replaced: dict[str, int] = {}
        self._warned = False

    @property
    def label(self) -> str:
        """The method's class name (``ReDo``), for messages."""
        return self.method_class.__name__

    # -- SB3 hooks -------------------------------------------------------------------------------

    def _on_training_start(self) -> None:
        if self.methods:
            return
        if self.seed is None:
            self.seed = int(torch.randint(0, 2**31, (1,)))
        carried = getattr(self.model.policy, "method_spec", {}).get("name")
        if changes_policy(self.template) and carried != self.method_class.name:
            raise ValueError(
                f"{self.label} changes the architecture or the optimizer, which must be built "
                "with the policy: build the model with the policy and policy_kwargs from "
                f"rl_plasticity.sb3.policies.method_policy(algorithm, 'MlpPolicy', "
                f"{{'name': {self.method_class.name!r}, ...}})"
            )
        self.groups = network_groups(self.model)
        for i, group in enumerate(self.groups):
            method = make_method(self.method_class, self.settings)
            method.attach(
                group.module,
                group.optimizer,
                layers=group.layers,
                seed=self.seed + i,
                reinit=sb3_reinit(self.model, group),
            )
            self.methods[group.name] = method
        if self._pending is not None:
            self._load_cores(self._pending)
            self._pending = None
        updates = updates_in_run(self.model)
        if updates is not None:
            reasons = [m.check_reachable(updates) for m in self.methods.values()]
            if reasons and all(reasons):
                warn_user(f"{self.label}: {reasons[0]}")

    def _on_training_end(self) -> None:
        self._replaced = self.replaced_total
        self._counts = self.counters
        self._pending = {name: method.state_dict() for name, method in self.methods.items()}
        for method in self.methods.values():
            method.detach()
        self.methods = {}

    def _on_step(self) -> bool:
        phase = _largest_phase(self.locals.get("infos"))
        if phase is None:
            if self.max_phase is None and not self._warned and self.template.acts_on_change:
                self._warned = True
                warn_user(
                    f"{self.label} acts when the environment changes, read from "
                    "info['context']['phase'] (which NonstationaryWrapper adds), and this env's "
                    "infos have none: it will never act. Wrap the env in NonstationaryWrapper "
                    "or report the phase yourself"
                )
        elif self.max_phase is None:
            self.max_phase = phase
        elif phase > self.max_phase:
            self.max_phase = phase
            for method in self.methods.values():
                method.on_context_change(phase)
            if self.template.syncs_targets:
                sync_targets(self.model)
        return True

    def _on_rollout_start(self) -> None:
        # Forward hooks are needed only in training forwards, which follow the rollout.
        for method in self.methods.values():
            method.pause()

    def _on_rollout_end(self) -> None:
        for method in self.methods.values():
            method.resume()
        labels = layer_labels((g.name, layer.name) for g in self.groups for layer in g.layers)
        for net, method in self.methods.items():
            for layer, total in method.replaced_total.items():
                key = f"method/{labels[(net, layer)]}/replaced"
                self.logger.record(key, total - self._logged.get(f"{net}/{layer}", 0))
                self.logger.record(f"{key}_total", total)
                self._logged[f"{net}/{layer}"] = total
        for key, value in self.counters.items():
            self.logger.record(f"method/{key}", value)

    # -- state -----------------------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, float]:
        """The methods' counters, keyed ``<net>/<key>`` or, for model-wide ones, ``<key>``."""
        counts: dict[str, float] = {}
        for net, method in self.methods.items():
            for key, value in method.counters().items():
                if key in method.model_counters:
                    counts[key] = value
                else:
                    counts[f"{net}/{key}"] = value
        return counts if self.methods else dict(self._counts)

    @property
    def replaced_total(self) -> dict[str, int]:
        """Units replaced so far, keyed ``<net>/<layer>`` (empty for methods that replace none)."""
        if not self.methods:
            return dict(self._replaced)
        return {
            f"{net}/{layer}": n
            for net, method in self.methods.items()
            for layer, n in method.replaced_total.items()
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (``torch.save`` it beside ``model.save``).

        :return: ``cores`` (each network's method state), ``seed``, ``max_phase``, ``logged``
        """
        if self.methods:
            cores = {name: method.state_dict() for name, method in self.methods.items()}
        else:
            cores = self._pending
        return {
            "method": self.method_class.name,
            "cores": cores,
            "seed": self.seed,
            "max_phase": self.max_phase,
            "logged": dict(self._logged),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``; before ``learn()`` it is applied when the callback attaches.

        :param state: from :meth:`state_dict` of the same method on the same architecture (or of
            the version 0.1 callback of that method)
        :raises ValueError: for the state of another method
        """
        saved = state.get("method", self.method_class.name)
        if saved != self.method_class.name:
            raise ValueError(
                f"{self.label}: the saved state is of method {saved!r}, not "
                f"{self.method_class.name!r}"
            )
        self.seed = state["seed"]
        self.max_phase = state["max_phase"]
        # Keyed <net>/<layer>; states saved before the short logger keys used the logger key.
        self._logged = {
            k.removeprefix("method/").removesuffix("/replaced"): v
            for k, v in state["logged"].items()
        }
        if "resets" in state:  # version 0.1's Reset: one generator and a count, no per-net state
            self._counts = {"resets": int(state["resets"])}
            cores = {"": {"resets": int(state["resets"]), "generator": state["generator"]}}
        elif state["cores"] is None:
            return
        else:
            cores = dict(state["cores"])
        if self.methods:
            self._load_cores(cores)
        else:
            self._pending = cores

    def _load_cores(self, cores: Mapping[str, Any]) -> None:
        """Load each network's state (key ``""``: one state for every network)."""
        for name, method in self.methods.items():
            state = cores.get(name, cores.get(""))
            if state is not None:
                method.load_state_dict(state)


_CLASSES: dict[str, type[MethodCallback]] = {}


def callback_class(name: str) -> type[MethodCallback]:
    """The callback class of the method registered as ``name``, e.g. ``CBPCallback``.

    Its ``__init__`` takes the method's settings (and ``verbose``), so RL Zoo YAML and agent specs
    can build it from keyword arguments.

    :param name: registered name
    :return: a subclass of :class:`MethodCallback`
    """
    if name in _CLASSES:
        return _CLASSES[name]
    cls = method_class(name)
    params = [*method_settings(cls).values()]
    params.append(inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=0))

    def __init__(self: MethodCallback, **kwargs: Any) -> None:
        verbose = kwargs.pop("verbose", 0)
        seed = kwargs.pop("seed", None)
        MethodCallback.__init__(self, name, seed=seed, verbose=verbose, **kwargs)

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params]
    )
    doc = (
        f"SB3 callback of ``{cls.__module__}.{cls.__name__}`` (registered as ``{name!r}``) on "
        f"every network the algorithm trains; settings as the method's.\n\n{cls.__doc__ or ''}"
    )
    namespace: dict[str, Any] = {"__init__": __init__, "__doc__": doc, "__module__": __name__}
    for key in cls.model_counters:  # read as attributes too (version 0.1's ``Reset.resets``)
        namespace[key] = property(lambda self, key=key: self.counters.get(key, 0))
    made = type(f"{cls.__name__}Callback", (MethodCallback,), namespace)
    _CLASSES[name] = made
    return made


def method_callback(name: str, **settings: Any) -> MethodCallback:
    """A callback running the method registered as ``name`` with ``settings``.

    :param name: registered name (``"cbp"``)
    :param settings: the method's settings, ``seed`` and ``verbose``
    :return: the callback
    :raises ConfigError: for an unknown name or setting
    """
    try:
        return callback_class(name)(**settings)
    except TypeError as e:  # a positional argument or a repeated keyword
        raise ConfigError("method", settings, str(e)) from None


def callback_classes() -> dict[str, type[MethodCallback]]:
    """Every registered method's callback class, by registered name (for agent specs)."""
    return {name: callback_class(name) for name in registered_methods()}


CBPCallback = callback_class("cbp")
ReDoCallback = callback_class("redo")
ShrinkPerturbCallback = callback_class("snp")
L2InitCallback = callback_class("l2init")
ResetCallback = callback_class("reset")
