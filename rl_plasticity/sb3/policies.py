"""SB3 policy classes that carry a plasticity method's architecture and optimizer hooks.

A method that overrides ``build_network`` (LayerNorm, CReLU, an extra head) must change the
networks before their optimizers are built, and the change must survive ``model.save`` /
``load``, which rebuilds the policy from its class and ``policy_kwargs``. So the method is a
policy keyword, ``method={"name": ..., <settings>}``, of these subclasses of SB3's policies:

* PPO/A2C: ``build_network`` gets the whole policy after SB3 built it (and applied its orthogonal
  init), changes it in place, and the optimizer is built again over the policy's parameters;
* SAC/TD3: it gets each actor and critic as ``make_actor`` / ``make_critic`` build them (the
  targets too, so they have the same architecture), before their optimizers exist;
* DQN: it gets the Q-network and its target as ``make_q_net`` builds them.

Then ``wrap_optimizer`` gets each optimizer. Use :func:`method_policy`::

    policy, kwargs = method_policy(PPO, "MlpPolicy", {"name": "layernorm"})
    model = PPO(policy, env, policy_kwargs={**kwargs, "net_arch": [64, 64]})

``method`` may also be a list of method tables (an agent spec's ``[[method]]``, e.g. LayerNorm
with shrink-and-perturb): each builds the network in list order, then each wraps the optimizer
in list order (:func:`rl_plasticity.specs.agent.check_composition` allows at most one of each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from rl_plasticity.plasticity.protocol import Method, implements, make_method

MethodSpec = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def method_specs(spec: MethodSpec | None) -> list[dict[str, Any]]:
    """The method tables of a ``method`` policy keyword or agent spec entry: one table or a list
    of them (``name = "none"`` and empty tables left out).

    :param spec: ``{"name": ..., <settings>}``, a list of such tables, or None
    :return: the tables, in order
    """
    tables = [spec] if isinstance(spec, Mapping) else list(spec or [])
    return [dict(t) for t in tables if t and t.get("name", "none") != "none"]


def _methods(spec: MethodSpec | None) -> list[Method]:
    return [
        make_method(t["name"], {k: v for k, v in t.items() if k != "name"})
        for t in method_specs(spec)
    ]


def changes_policy(method: Method) -> bool:
    """Whether ``method`` needs a policy class of this module (it overrides ``build_network`` or
    ``wrap_optimizer``).

    :param method: an instance of the method
    :return: True if so
    """
    return implements(method, "build_network") or implements(method, "wrap_optimizer")


class _MethodMixin:
    """Takes the ``method`` policy keyword, builds the methods, saves the keyword with the model.

    :param args: the SB3 policy's positional arguments
    :param method: ``{"name": <registered name>, <settings>}``, a list of them (applied in
        order), or None for none
    :param kwargs: the SB3 policy's keyword arguments
    """

    plasticity_methods: list[Method]
    method_spec: dict[str, Any] | list[dict[str, Any]]

    def __init__(self, *args: Any, method: MethodSpec | None = None, **kwargs: Any) -> None:
        # Before nn.Module.__init__: plain attributes only (SB3 builds the nets in __init__).
        tables = method_specs(method)
        self.method_spec = tables if isinstance(method, Sequence) else (tables or [{}])[0]
        self.plasticity_methods = _methods(tables)
        super().__init__(*args, **kwargs)

    @property
    def method_names(self) -> list[str]:
        """The registered names of the methods this policy carries, in order."""
        return [type(m).name for m in self.plasticity_methods]

    def _built(self, module: nn.Module) -> nn.Module:
        for method in self.plasticity_methods:
            module = method.build_network(module)
        return module

    def _wrapped(self, optimizer: Any) -> Any:
        for method in self.plasticity_methods:
            optimizer = method.wrap_optimizer(optimizer)
        return optimizer

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "method": self.method_spec}


class MethodActorCriticPolicy(_MethodMixin, ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy`` (PPO, A2C) with a method's architecture and optimizer.

    Takes ``ActorCriticPolicy``'s arguments and ``method={"name": ..., <settings>}``.
    """

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        builders = [m for m in self.plasticity_methods if implements(m, "build_network")]
        for method in builders:
            if method.build_network(self) is not self:
                raise TypeError(
                    f"{type(method).__name__}.build_network must change SB3's policy in place "
                    "and return it"
                )
        if builders:
            self.optimizer = self.optimizer_class(
                self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )
        self.optimizer = self._wrapped(self.optimizer)


class _ActorCriticMixin(_MethodMixin):
    """SAC/TD3: the method builds each actor and critic (targets too); wraps both optimizers."""

    def make_actor(self, *args: Any, **kwargs: Any) -> Any:
        return self._built(super().make_actor(*args, **kwargs))

    def make_critic(self, *args: Any, **kwargs: Any) -> Any:
        return self._built(super().make_critic(*args, **kwargs))

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.actor.optimizer = self._wrapped(self.actor.optimizer)
        self.critic.optimizer = self._wrapped(self.critic.optimizer)


class MethodSACPolicy(_ActorCriticMixin, SACPolicy):
    """SB3's ``SACPolicy`` with a method's architecture and optimizer.

    Takes ``SACPolicy``'s arguments and ``method={"name": ..., <settings>}``.
    """


class MethodTD3Policy(_ActorCriticMixin, TD3Policy):
    """SB3's ``TD3Policy`` with a method's architecture and optimizer.

    Takes ``TD3Policy``'s arguments and ``method={"name": ..., <settings>}``.
    """


class MethodDQNPolicy(_MethodMixin, DQNPolicy):
    """SB3's ``DQNPolicy`` with a method's architecture and optimizer.

    Takes ``DQNPolicy``'s arguments and ``method={"name": ..., <settings>}``.
    """

    def make_q_net(self) -> Any:
        return self._built(super().make_q_net())

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.optimizer = self._wrapped(self.optimizer)


#: SB3's MLP policy class -> the subclass carrying a method.
METHOD_POLICIES: dict[type[BasePolicy], type[BasePolicy]] = {
    ActorCriticPolicy: MethodActorCriticPolicy,
    SACPolicy: MethodSACPolicy,
    TD3Policy: MethodTD3Policy,
    DQNPolicy: MethodDQNPolicy,
}


def method_policy(
    algorithm: type[BaseAlgorithm], policy: str | type[BasePolicy], method: MethodSpec
) -> tuple[str | type[BasePolicy], dict[str, Any]]:
    """The policy class and ``policy_kwargs`` that build ``algorithm``'s networks with ``method``.

    A method without architecture or optimizer hook needs nothing: ``policy`` is returned as it
    is, with no keyword (a model saved before keeps loading).

    :param algorithm: the SB3 algorithm class (PPO, A2C, SAC, TD3, DQN, or a subclass)
    :param policy: ``"MlpPolicy"`` or the policy class
    :param method: ``{"name": <registered name>, <settings>}``, or a list of them
    :return: ``(policy, extra policy_kwargs)``
    :raises ConfigError: for an unknown method or setting
    :raises TypeError: for a policy class with no method-carrying subclass here
    """
    methods = _methods(method)
    if not any(changes_policy(m) for m in methods):
        return policy, {}
    base = algorithm.policy_aliases.get(policy, policy) if isinstance(policy, str) else policy
    if base not in METHOD_POLICIES:
        known = ", ".join(cls.__name__ for cls in METHOD_POLICIES)
        names = "+".join(type(m).name for m in methods)
        raise TypeError(
            f"{names} changes the architecture or optimizer, which needs one of the "
            f"policies {known}; got {getattr(base, '__name__', base)}"
        )
    spec = method_specs(method)
    return METHOD_POLICIES[base], {"method": spec if not isinstance(method, Mapping) else spec[0]}
