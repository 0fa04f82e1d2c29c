"""The SB3 callback for every registered plasticity method: ``MethodCallback``.

``model.learn(n, callback=MethodCallback("cbp", replacement_rate=1e-4))`` works for PPO, A2C,
SAC, TD3 and DQN with an MLP policy (RL Zoo: ``rl_plasticity.sb3.callbacks.MethodCallback`` with
``method: cbp`` and the settings as keyword arguments). A method is named by its registered name
(``"cbp"``, the ``[method] name`` of an agent spec); its torch class is in
``rl_plasticity.plasticity`` (``cbp.CBP``).

At the start of training the callback finds the networks the algorithm trains
(:func:`rl_plasticity.sb3.networks.network_groups`: PPO/A2C's policy, SAC/TD3's actor and
critic, DQN's Q-net, each with its own optimizer) and attaches one method instance to each, with
seeds ``seed, seed + 1, ...``; at the end it detaches them (hooks are not saved with a model) and
keeps their state, so a second ``learn()`` continues where the first stopped. When each hook runs
is drawn in :mod:`rl_plasticity.plasticity.protocol`.

Environment changes are read from ``self.locals["infos"]``: each info's ``info["context"]["phase"]``
counts the changes applied so far; when the largest phase seen increases, every instance's
``on_context_change`` runs (then target networks are synced for methods with ``syncs_targets``).

State: ``state_dict()`` / ``load_state_dict()`` hold everything needed to continue exactly;
``load_state_dict`` may be called before ``learn()`` (the state is applied when the callback
attaches). The state also travels with the model (:mod:`rl_plasticity.sb3.carried_state`):
``model.save`` writes it, and after ``load`` the method's callback of the next ``learn()``
continues from it.

Logger keys: ``method/<label>/replaced`` (units replaced since the previous rollout end) and
``method/<label>/replaced_total`` with the layer's short label (``pi1``, ``vf2``: see
:func:`rl_plasticity.sb3.layer_names.layer_labels`); a method's :meth:`counters` as
``method/<net>/<key>`` (``method/<key>`` for model-wide ones such as ``method/resets``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rl_plasticity.errors import warn_user
from rl_plasticity.plasticity.protocol import Method, make_method, method_class
from rl_plasticity.sb3.carried_state import carry_state
from rl_plasticity.sb3.layer_names import layer_labels
from rl_plasticity.sb3.networks import NetworkGroup, network_groups, sb3_reinit, sync_targets
from rl_plasticity.sb3.policies import changes_policy
from rl_plasticity.seeding import derive_seed, torch_seed
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
    :param seed: seed of the instances' generators (network i gets seed + i); ``None`` derives
        one from the model's seed (or, for an unseeded model, from torch's initial seed) at the
        first attach, without drawing from any global generator: agents run with one seed share
        every random number until a method acts
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
        saved = carry_state(self.model, f"method/{self.method_class.name}", self.state_dict)
        if saved is not None and self._pending is None:
            self.load_state_dict(saved)
        if self.seed is None:  # from the model's seed: never a draw from a global stream
            base = self.model.seed if self.model.seed is not None else torch_seed()
            self.seed = derive_seed(int(base), "method") % 2**31
        carried = getattr(self.model.policy, "method_names", [])
        if changes_policy(self.template) and self.method_class.name not in carried:
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
                max_grad_norm=getattr(self.model, "max_grad_norm", None),
            )
            self.methods[group.name] = method
        if self._pending is not None:
            self._load_cores(self._pending)
            self._pending = None
        updates = updates_in_run(self.model)
        if updates is not None:
            reasons = [m.check_reachable(updates) for m in self.methods.values()]
            if reasons and all(reasons):
                first = next(iter(self.methods.values()))
                first.warn_idle(reasons[0])

    def _on_training_end(self) -> None:
        self._replaced = self.replaced_total
        self._counts = self.counters
        self._pending = {name: method.state_dict() for name, method in self.methods.items()}
        for method in self.methods.values():
            method.detach(warn_if_idle=False)
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

        :param state: from :meth:`state_dict` of the same method on the same architecture
        :raises ValueError: for the state of another method
        """
        saved = state["method"]
        if saved != self.method_class.name:
            raise ValueError(
                f"{self.label}: the saved state is of method {saved!r}, not "
                f"{self.method_class.name!r}"
            )
        self.seed = state["seed"]
        self.max_phase = state["max_phase"]
        self._logged = dict(state["logged"])
        if state["cores"] is None:
            return
        cores = dict(state["cores"])
        if self.methods:
            self._load_cores(cores)
        else:
            self._pending = cores

    def _load_cores(self, cores: Mapping[str, Any]) -> None:
        """Load each network's state."""
        for name, method in self.methods.items():
            method.load_state_dict(cores[name])


class MethodCallbacks(CallbackList):
    """Several methods on one model (an agent spec's ``[[method]]`` list), in their listed order:
    SB3 calls each hook of each method callback in that order, so at an optimizer step their
    hooks run in the order the methods were attached (listed).

    :param callbacks: one :class:`MethodCallback` per method
    """

    def __init__(self, callbacks: list[MethodCallback]) -> None:
        super().__init__(list(callbacks))
        self.callbacks: list[MethodCallback]

    @property
    def label(self) -> str:
        """The methods' class names joined with ``+`` (``LayerNorm+ShrinkPerturb``)."""
        return "+".join(c.label for c in self.callbacks)

    def state_dict(self) -> dict[str, Any]:
        """Each method callback's :meth:`MethodCallback.state_dict`, in order.

        :return: ``{"methods": [state, ...]}``
        """
        return {"methods": [c.state_dict() for c in self.callbacks]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`.

        :param state: the saved state of the same methods in the same order
        :raises ValueError: for a state of another number of methods
        """
        states = state.get("methods")
        if not isinstance(states, list) or len(states) != len(self.callbacks):
            raise ValueError(f"{self.label}: the saved state is not of these methods")
        for callback, saved in zip(self.callbacks, states, strict=True):
            callback.load_state_dict(saved)
