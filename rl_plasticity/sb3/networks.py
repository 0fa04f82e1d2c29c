"""Which networks an SB3 algorithm trains, with their optimizers, hidden layers and targets.

The one place that knows SB3's module names: PPO/A2C keep separate ``policy_net`` / ``value_net``
Sequentials whose last hidden layers feed ``action_net`` / ``value_net``; SAC's ``latent_pi`` feeds
both ``mu`` and ``log_std``; SAC/TD3 critics and DQN's Q-net are complete Sequentials. Target
networks are in no optimizer and are left to the algorithm's own (Polyak) updates, except where
:func:`sync_targets` copies the trained networks into them (a freshly built agent's state).
:func:`sb3_reinit` re-draws a network as SB3 builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from rl_plasticity.plasticity.init import reinit_linear_
from rl_plasticity.plasticity.layers import HiddenLayer, find_hidden_layers


@dataclass
class NetworkGroup:
    """A network trained by one optimizer.

    :param name: short name used in logs (``"policy"``, ``"actor"``, ``"critic"``, ``"q_net"``)
    :param module: the module holding the network's layers
    :param optimizer: the optimizer that updates it
    :param layers: its hidden layers (names relative to ``module``)
    """

    name: str
    module: nn.Module
    optimizer: torch.optim.Optimizer
    layers: list[HiddenLayer]


def network_groups(model: BaseAlgorithm, *, features: bool = False) -> list[NetworkGroup]:
    """The trained networks of ``model`` (PPO, A2C, SAC, TD3, DQN with an MLP policy).

    :param model: an SB3 algorithm whose policy has been built
    :param features: also count as hidden layers those whose activation concatenates two
        features per unit (CReLU, Fourier features), for feature-level measurements
    :return: one group per optimizer
    :raises TypeError: for a policy whose layout is not known here
    """
    policy = model.policy

    def find(module: nn.Module, heads: dict | None = None) -> list[HiddenLayer]:
        return find_hidden_layers(module, heads, concatenating=features)

    if hasattr(policy, "mlp_extractor") and hasattr(policy, "action_net"):  # PPO, A2C
        heads = {
            "mlp_extractor.policy_net": [policy.action_net],
            "mlp_extractor.value_net": [policy.value_net],
        }
        layers = find(policy, heads)
        return [NetworkGroup("policy", policy, policy.optimizer, layers)]
    if hasattr(policy, "actor") and hasattr(policy, "critic"):  # SAC, TD3
        actor, critic = policy.actor, policy.critic
        actor_heads = {}
        if hasattr(actor, "latent_pi"):  # SAC: the latent feeds both heads
            actor_heads["latent_pi"] = [actor.mu, actor.log_std]
        return [
            NetworkGroup("actor", actor, actor.optimizer, find(actor, actor_heads)),
            NetworkGroup("critic", critic, critic.optimizer, find(critic)),
        ]
    if hasattr(policy, "q_net") and hasattr(policy, "q_net_target"):  # DQN
        return [NetworkGroup("q_net", policy.q_net, policy.optimizer, find(policy.q_net))]
    raise TypeError(
        f"unsupported policy {type(policy).__name__}; supported: the MLP policies of "
        "PPO, A2C, SAC, TD3 and DQN"
    )


def sync_targets(model: BaseAlgorithm) -> None:
    """Set every target network equal to the network it follows (SAC/TD3 actor and critic, DQN's
    Q-net), as in a freshly built agent.

    :param model: an SB3 algorithm
    """
    policy = model.policy
    for online, target in (("actor", "actor_target"), ("critic", "critic_target")):
        if hasattr(policy, online) and hasattr(policy, target):
            getattr(policy, target).load_state_dict(getattr(policy, online).state_dict())
    if hasattr(policy, "q_net_target"):
        policy.q_net_target.load_state_dict(policy.q_net.state_dict())


def sb3_reinit(model: BaseAlgorithm, group: NetworkGroup):
    """A function re-drawing ``group``'s network (a ``protocol.Reinit``), SB3's way.

    ``init="default"``: as SB3 builds the policy (orthogonal with gains sqrt(2), 0.01 and 1 for
    PPO/A2C's extractor, action and value nets when ``ortho_init``; torch's default otherwise);
    another name draws every Linear from that distribution. Either way a state-independent
    ``log_std`` goes back to the policy's ``log_std_init``.

    :param model: the algorithm
    :param group: one of its :func:`network_groups`
    :return: ``reinit(module, init, generator)``
    """
    policy = model.policy

    def reinit(module: nn.Module, init: str, generator: torch.Generator) -> None:
        ortho = group.name == "policy" and getattr(policy, "ortho_init", False)
        if init != "default" or not ortho:
            kind = "kaiming_uniform" if init == "default" else init
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    reinit_linear_(sub, kind, generator)
                elif isinstance(sub, nn.LayerNorm):
                    sub.reset_parameters()
        else:
            gains = {policy.mlp_extractor: 2**0.5, policy.action_net: 0.01, policy.value_net: 1.0}
            with torch.no_grad():
                for part, gain in gains.items():
                    for sub in part.modules():
                        if isinstance(sub, nn.Linear):
                            nn.init.orthogonal_(sub.weight, gain=gain, generator=generator)
                            if sub.bias is not None:
                                sub.bias.zero_()
        log_std = getattr(module, "log_std", None)
        if isinstance(log_std, nn.Parameter):
            with torch.no_grad():
                log_std.fill_(getattr(policy, "log_std_init", 0.0))

    return reinit
