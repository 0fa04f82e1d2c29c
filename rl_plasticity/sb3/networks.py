"""Which networks an SB3 algorithm trains, with their optimizers and hidden layers.

The one place that knows SB3's module names: PPO/A2C keep separate ``policy_net`` / ``value_net``
Sequentials whose last hidden layers feed ``action_net`` / ``value_net``; SAC's ``latent_pi`` feeds
both ``mu`` and ``log_std``; SAC/TD3 critics and DQN's Q-net are complete Sequentials. Target
networks are in no optimizer and are left to the algorithm's own (Polyak) updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

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


def network_groups(model: BaseAlgorithm) -> list[NetworkGroup]:
    """The trained networks of ``model`` (PPO, A2C, SAC, TD3, DQN with an MLP policy).

    :param model: an SB3 algorithm whose policy has been built
    :return: one group per optimizer
    :raises TypeError: for a policy whose layout is not known here
    """
    policy = model.policy
    if hasattr(policy, "mlp_extractor") and hasattr(policy, "action_net"):  # PPO, A2C
        heads = {
            "mlp_extractor.policy_net": [policy.action_net],
            "mlp_extractor.value_net": [policy.value_net],
        }
        layers = find_hidden_layers(policy, heads)
        return [NetworkGroup("policy", policy, policy.optimizer, layers)]
    if hasattr(policy, "actor") and hasattr(policy, "critic"):  # SAC, TD3
        actor, critic = policy.actor, policy.critic
        actor_heads = {}
        if hasattr(actor, "latent_pi"):  # SAC: the latent feeds both heads
            actor_heads["latent_pi"] = [actor.mu, actor.log_std]
        return [
            NetworkGroup("actor", actor, actor.optimizer, find_hidden_layers(actor, actor_heads)),
            NetworkGroup("critic", critic, critic.optimizer, find_hidden_layers(critic)),
        ]
    if hasattr(policy, "q_net") and hasattr(policy, "q_net_target"):  # DQN
        return [
            NetworkGroup("q_net", policy.q_net, policy.optimizer, find_hidden_layers(policy.q_net))
        ]
    raise TypeError(
        f"unsupported policy {type(policy).__name__}; supported: the MLP policies of "
        "PPO, A2C, SAC, TD3 and DQN"
    )
