"""What SB3's algorithms are made of, beyond their networks: batches, forwards and losses.

* :func:`sample_batch` -- a batch as the algorithm sees it: on-policy, rows of the rollout buffer
  just collected (observations, actions, advantages, returns, log-probabilities); off-policy, a
  replay-buffer sample (normalized by the algorithm's ``VecNormalize`` if any);
* :func:`forward_all` -- run every hidden layer of every trained network on a batch;
* :func:`training_losses` -- each network's training loss on a batch, as the algorithm's
  ``train()`` computes it (tested equal to SB3's own, per algorithm, in
  ``tests/test_sb3_algorithms.py``);
* :func:`policy_statistics`, :func:`probe_networks` -- what the metrics read.

PPO/A2C, SAC, TD3 and DQN with MLP policies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor
from torch import nn
from torch.nn import functional as F

#: Tensors of one measurement batch: observations, actions, and what the losses need.
Batch = dict[str, Any]


def has_batch(model: BaseAlgorithm) -> bool:
    """Whether :func:`sample_batch` can draw now: a full rollout buffer (on-policy), or a
    non-empty replay buffer past ``learning_starts`` (off-policy).

    :param model: the algorithm
    :return: True if so
    """
    if isinstance(model, OffPolicyAlgorithm):
        return model.num_timesteps > model.learning_starts and model.replay_buffer.size() > 0
    return bool(model.rollout_buffer.full)


def sample_batch(model: BaseAlgorithm, size: int, rng: np.random.Generator) -> Batch:
    """A batch as the algorithm sees it.

    On-policy: ``size`` distinct rows of the rollout buffer (observations, actions, advantages,
    returns, log-probabilities). Off-policy: ``replay_buffer.sample(size)`` as ``train()`` calls it
    (numpy's global generator seeded from ``rng``: the caller restores its state), with the
    discounts ``train()`` uses.

    :param model: an SB3 algorithm with a collected rollout or a non-empty replay buffer
    :param size: rows wanted (fewer when the buffer holds fewer)
    :param rng: source of the row choice
    :return: tensors by name
    :raises TypeError: for Dict observation spaces
    """
    if isinstance(model.observation_space, spaces.Dict):
        raise TypeError("PlasticityMetrics supports array observations, not Dict spaces")
    if isinstance(model, OnPolicyAlgorithm):
        buffer = model.rollout_buffer
        obs = buffer.observations.reshape(-1, *buffer.obs_shape)
        idx = rng.choice(len(obs), size=min(size, len(obs)), replace=False)
        actions = torch.as_tensor(buffer.actions.reshape(len(obs), -1)[idx], device=model.device)
        if isinstance(model.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        flat = {
            name: torch.as_tensor(getattr(buffer, name).reshape(-1)[idx], device=model.device)
            for name in ("advantages", "returns", "log_probs")
        }
        return {"observations": obs_as_tensor(obs[idx], model.device), "actions": actions, **flat}
    assert isinstance(model, OffPolicyAlgorithm)
    upper = model.replay_buffer.size()
    # The replay buffer draws from numpy's global RNG; the caller restores its state.
    np.random.seed(int(rng.integers(2**31)))
    data = model.replay_buffer.sample(min(size, upper), env=model._vec_normalize_env)
    discounts = data.discounts if data.discounts is not None else model.gamma
    return {
        "observations": data.observations,
        "actions": data.actions,
        "next_observations": data.next_observations,
        "dones": data.dones,
        "rewards": data.rewards,
        "discounts": discounts,
    }


def on_policy_features(policy: nn.Module, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO/A2C's (policy, value) features of ``obs``.

    :param policy: an ``ActorCriticPolicy``
    :param obs: observations as a tensor
    :return: the two feature tensors (the same one when the extractor is shared)
    """
    features = policy.extract_features(obs)
    return (features, features) if policy.share_features_extractor else features


def forward_all(model: BaseAlgorithm, batch: Batch) -> None:
    """Run every hidden layer of every trained network on the batch.

    :param model: the algorithm
    :param batch: from :func:`sample_batch`
    """
    policy, obs = model.policy, batch["observations"]
    if isinstance(model, OnPolicyAlgorithm):
        pi_features, vf_features = on_policy_features(policy, obs)
        policy.mlp_extractor.forward_actor(pi_features)
        policy.mlp_extractor.forward_critic(vf_features)
    elif hasattr(policy, "actor"):  # SAC, TD3
        policy.actor(obs)
        policy.critic(obs, batch["actions"])
    else:  # DQN
        policy.q_net(obs)


def policy_statistics(model: BaseAlgorithm, batch: Batch) -> dict[str, float]:
    """Entropy of the policy on the batch, action std, SAC's entropy coefficient.

    :param model: the algorithm
    :param batch: from :func:`sample_batch`
    :return: values keyed ``plasticity/<net>/<name>``
    """
    policy, obs = model.policy, batch["observations"]
    values: dict[str, float] = {}
    if isinstance(model, OnPolicyAlgorithm):
        entropy = policy.get_distribution(obs).entropy()
        if entropy is not None:
            values["plasticity/policy/entropy"] = float(entropy.mean())
        if isinstance(getattr(policy, "log_std", None), torch.Tensor):
            values["plasticity/policy/action_std"] = float(policy.log_std.exp().mean())
    elif hasattr(model, "ent_coef_tensor") or hasattr(model, "log_ent_coef"):  # SAC
        _, log_prob = policy.actor.action_log_prob(obs)
        values["plasticity/actor/entropy"] = float(-log_prob.mean())
        values["plasticity/actor/ent_coef"] = float(sac_ent_coef(model))
    return values


def sac_ent_coef(model: BaseAlgorithm) -> torch.Tensor:
    """SAC's entropy coefficient now (learned or fixed).

    :param model: a SAC
    :return: the coefficient, without gradient
    """
    log_ent_coef = getattr(model, "log_ent_coef", None)
    return log_ent_coef.detach().exp() if log_ent_coef is not None else model.ent_coef_tensor


def training_losses(model: BaseAlgorithm, b: Batch) -> dict[str, Callable[[], torch.Tensor]]:
    """Each network's training loss on the batch, as its algorithm defines it.

    On-policy losses are taken at the rollout's end, where the policy is the one that collected
    the rollout (ratio 1). SAC's actor loss uses the critic as it is now (``train()`` uses it just
    after the critic's step). Losses that draw noise (SAC's actions, TD3's target smoothing) use
    torch's global generator: SAC's ``train()`` draws the actor's actions first, then the next
    actions; call ``actor`` before ``critic`` for the same draws.

    :param model: the algorithm
    :param b: a batch from :func:`sample_batch`
    :return: network name (as in ``network_groups``) -> a function computing its loss
    """
    policy = model.policy
    if isinstance(model, OnPolicyAlgorithm):

        def on_policy_loss() -> torch.Tensor:
            values, log_prob, entropy = policy.evaluate_actions(b["observations"], b["actions"])
            advantages = b["advantages"]
            if getattr(model, "normalize_advantage", False) and len(advantages) > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            if hasattr(model, "clip_range"):  # PPO
                ratio = torch.exp(log_prob - b["log_probs"])
                clip = model.clip_range(model._current_progress_remaining)
                clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
                policy_loss = -torch.min(advantages * ratio, advantages * clipped).mean()
            else:  # A2C
                policy_loss = -(advantages * log_prob).mean()
            entropy_loss = -(entropy if entropy is not None else -log_prob).mean()
            value_loss = F.mse_loss(b["returns"], values.flatten())
            return policy_loss + model.ent_coef * entropy_loss + model.vf_coef * value_loss

        return {"policy": on_policy_loss}

    obs, actions, next_obs = b["observations"], b["actions"], b["next_observations"]
    not_done = (1 - b["dones"]) * b["discounts"]
    if hasattr(policy, "q_net"):  # DQN

        def dqn_loss() -> torch.Tensor:
            with torch.no_grad():
                next_q = policy.q_net_target(next_obs).max(dim=1).values.reshape(-1, 1)
                target = b["rewards"] + not_done * next_q
            q = torch.gather(policy.q_net(obs), 1, actions.long())
            return F.smooth_l1_loss(q, target)

        return {"q_net": dqn_loss}

    actor, critic = policy.actor, policy.critic
    sac = hasattr(actor, "action_log_prob")

    def critic_loss() -> torch.Tensor:
        with torch.no_grad():
            if sac:
                next_actions, next_log_prob = actor.action_log_prob(next_obs)
            else:  # TD3's target policy smoothing
                noise = actions.clone().normal_(0, model.target_policy_noise)
                noise = noise.clamp(-model.target_noise_clip, model.target_noise_clip)
                next_actions = (policy.actor_target(next_obs) + noise).clamp(-1, 1)
            next_q = torch.cat(policy.critic_target(next_obs, next_actions), dim=1)
            next_q = next_q.min(dim=1, keepdim=True).values
            if sac:
                next_q = next_q - sac_ent_coef(model) * next_log_prob.reshape(-1, 1)
            target = b["rewards"] + not_done * next_q
        total = sum(F.mse_loss(q, target) for q in critic(obs, actions))
        return 0.5 * total if sac else total  # SAC halves it, TD3 does not

    def actor_loss() -> torch.Tensor:
        if sac:
            actions_pi, log_prob = actor.action_log_prob(obs)
            q = torch.cat(critic(obs, actions_pi), dim=1).min(dim=1, keepdim=True).values
            return (sac_ent_coef(model) * log_prob.reshape(-1, 1) - q).mean()
        return -critic.q1_forward(obs, actor(obs)).mean()

    return {"actor": actor_loss, "critic": critic_loss}


def probe_networks(model: BaseAlgorithm, b: Batch) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """The networks the probe copies (hidden layers plus output head) with their inputs.

    :param model: the algorithm
    :param b: a batch from :func:`sample_batch`
    :return: ``<net>/probe_loss[_pi|_vf]`` -> (network, its inputs on the batch)
    """
    policy, obs = model.policy, b["observations"]
    with torch.no_grad():
        if isinstance(model, OnPolicyAlgorithm):
            pi_features, vf_features = on_policy_features(policy, obs)
            extractor = policy.mlp_extractor
            return {
                "policy/probe_loss_pi": (
                    nn.Sequential(extractor.policy_net, policy.action_net),
                    pi_features,
                ),
                "policy/probe_loss_vf": (
                    nn.Sequential(extractor.value_net, policy.value_net),
                    vf_features,
                ),
            }
        if hasattr(policy, "q_net"):  # DQN
            q_net = policy.q_net
            return {"q_net/probe_loss": (q_net.q_net, q_net.extract_features(obs))}
        actor, critic = policy.actor, policy.critic
        actor_features = actor.extract_features(obs, actor.features_extractor)
        head = nn.Sequential(actor.latent_pi, actor.mu) if hasattr(actor, "latent_pi") else actor.mu
        critic_inputs = torch.cat(
            [critic.extract_features(obs, critic.features_extractor), b["actions"]], dim=1
        )
        return {
            "actor/probe_loss": (head, actor_features),
            "critic/probe_loss": (critic.q_networks[0], critic_inputs),
        }
