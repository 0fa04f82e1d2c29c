"""The PPO engine's core: the rollout and the update, written once with a member dimension.

:class:`~rl_plasticity.sb3.fast_ppo.FastPPO` is this core with one member,
:class:`~rl_plasticity.sb3.population_ppo.PopulationPPO` with P (one per seed). What differs with
P is only how the members' networks are evaluated, never the loop around them:

* :func:`collect_rollouts`: per step, one policy call for all members (a single member's bound
  to its live parameters, :func:`~rl_plasticity.sb3.member_stacks.run_steps`; P members' as
  batched products, :class:`~rl_plasticity.sb3.member_stacks.RolloutStacks`), then per member
  :func:`member_step`: its action noise from torch's generator, its env step, its callbacks, its
  rollout buffer, as SB3's ``PPO.collect_rollouts`` does.
* :func:`ppo_update`: SB3's PPO update on (P, ...) tensors, the loss one per member
  (:func:`~rl_plasticity.sb3.ppo_loss.ppo_loss`). The networks and the optimizer step are an
  :class:`UpdateNetworks`: :class:`ModuleUpdate` runs one member through its policy's modules and
  its own optimizer (so the plasticity methods' and metrics' hooks see the training forwards and
  steps), :class:`~rl_plasticity.sb3.member_stacks.UpdateStacks` runs P members on stacked
  parameters with one Adam, their methods in population form.

What runs on a member's behalf (its random states, and catching its errors in a population) is a
:class:`Members`: :class:`Solo` for one run, the population for P.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from rl_plasticity.sb3.member_stacks import RolloutStacks, run_steps
from rl_plasticity.sb3.ppo_loss import LOG_SQRT_2PI, PPOBatch, PPOLossSettings, ppo_loss

if TYPE_CHECKING:
    from rl_plasticity.sb3.fast_ppo import FastPPO


class Members(Protocol):
    """Runs work on a member's behalf (see :class:`Solo`)."""

    def run(self, k: int, work: Callable[..., Any], *args: Any, step: bool = False) -> Any:
        """``work(*args)`` for member ``k``: with its random states in place (``step``: torch's
        only, for the per-step body); in a population, an error stops that member alone and
        False is returned."""
        ...


class Solo:
    """One run: its random states are the global ones and its errors propagate."""

    def run(self, k: int, work: Callable[..., Any], *args: Any, step: bool = False) -> Any:
        """``work(*args)``."""
        return work(*args)


# ----- rollout -------------------------------------------------------------------------------


def collect_rollouts(
    members: Sequence[FastPPO],
    callbacks: Sequence[BaseCallback],
    host: Members,
    ks: Sequence[int] | None = None,
) -> list[int]:
    """One rollout of ``n_steps`` per member, as SB3's ``PPO.collect_rollouts`` does for each.

    :param members: the models (equal spaces, ``n_envs`` and ``n_steps``)
    :param callbacks: each member's callback
    :param host: runs each member's work (:class:`Solo` for one run)
    :param ks: the members' indices for ``host`` (default: 0, 1, ...)
    :return: the indices of the members whose rollout ended (not stopped by a callback, no error)
    """
    ks = list(range(len(members))) if ks is None else list(ks)
    going = [
        i
        for i, (k, model, callback) in enumerate(zip(ks, members, callbacks, strict=True))
        if host.run(k, _rollout_start, model, callback)
    ]
    if not going:
        return []
    members = [members[i] for i in going]
    ks = [ks[i] for i in going]
    callbacks = [callbacks[i] for i in going]
    if len(members) == 1:
        pi, vf = members[0]._pi_steps, members[0]._vf_steps

        def forward(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return run_steps(pi, obs[0])[None], run_steps(vf, obs[0])[None]

    else:
        forward = RolloutStacks([m._pi_steps for m in members], [m._vf_steps for m in members])
    active = list(range(len(members)))
    n_envs = members[0].n_envs
    for _ in range(members[0].n_steps):
        with torch.inference_mode():
            # One preprocessing for all (the members' spaces are equal).
            stacked = np.concatenate([m._last_obs for m in members])
            obs = members[0]._obs_tensor(stacked).view(len(members), n_envs, -1)
            means, values = forward(obs)
        means_np = means.numpy()
        for i in list(active):
            locals_ = {"callback": callbacks[i], "obs_tensor": obs[i]}
            args = (members[i], callbacks[i], means_np[i], values[i], locals_)
            if not host.run(ks[i], member_step, *args, step=True):
                active.remove(i)
        if not active:
            return []
    return [ks[i] for i in active if host.run(ks[i], _rollout_end, members[i], callbacks[i])]


def _rollout_start(model: FastPPO, callback: BaseCallback) -> bool:
    model.policy.set_training_mode(False)
    model.rollout_buffer.reset()
    callback.on_rollout_start()
    model._inference_steps()
    return True


def _rollout_end(model: FastPPO, callback: BaseCallback) -> bool:
    with torch.inference_mode():
        last = run_steps(model._vf_steps, model._obs_tensor(model._last_obs))
    buffer = model.rollout_buffer
    buffer.compute_returns_and_advantage(last_values=last, dones=model._last_episode_starts)
    callback.update_locals({"rollout_buffer": buffer, "values": last})
    callback.on_rollout_end()
    return True


def member_step(
    model: FastPPO,
    callback: BaseCallback,
    mean: np.ndarray,
    values: torch.Tensor,
    extra_locals: dict[str, Any],
) -> bool:
    """One env step of one member, its policy call done: SB3's ``collect_rollouts`` loop body.

    The action is drawn with the random call SB3's ``Normal.rsample`` makes (``normal_()`` of the
    mean's shape, then ``mean + noise * std``); the log-probability is ``Normal.log_prob``'s
    formula; the ``RolloutBuffer``'s arrays are written in place.

    :param model: the member
    :param callback: its callback (``update_locals`` gets the loop's variables, as SB3's)
    :param mean: its Gaussian's means, (n_envs, action dims)
    :param values: its values, (n_envs, 1)
    :param extra_locals: further loop variables handed to the callback
    :return: False when a callback stops training
    """
    env = model.env
    buffer = model.rollout_buffer
    std, two_var, log_std = model._gaussian_terms()
    noise = torch.randn(mean.shape).numpy()
    actions = noise * std + mean
    diff = actions - mean
    log_probs = torch.from_numpy(-(diff * diff) / two_var - log_std - LOG_SQRT_2PI).sum(dim=1)
    # SB3's policy returns actions in the space's shape; np.clip(actions, low, high) as SB3
    # writes it, without np.clip's overhead per call.
    actions = actions.reshape((-1, *model.action_space.shape))
    space = model.action_space
    clipped_actions = np.minimum(np.maximum(actions, space.low), space.high)
    if type(env) is DummyVecEnv:
        new_obs, rewards, dones, infos = model._step_dummy(env, clipped_actions)
    else:
        new_obs, rewards, dones, infos = env.step(clipped_actions)
    model.num_timesteps += env.num_envs
    callback.update_locals(
        {
            **extra_locals,
            "self": model,
            "env": env,
            "rollout_buffer": buffer,
            "n_rollout_steps": model.n_steps,
            "n_steps": buffer.pos,
            "actions": actions,
            "clipped_actions": clipped_actions,
            "values": values,
            "log_probs": log_probs,
            "new_obs": new_obs,
            "rewards": rewards,
            "dones": dones,
            "infos": infos,
        }
    )
    if not callback.on_step():
        return False
    model._update_info_buffer(infos, dones)
    for idx, done in enumerate(dones):
        if (
            done
            and infos[idx].get("terminal_observation") is not None
            and infos[idx].get("TimeLimit.truncated", False)
        ):
            terminal = np.asarray(infos[idx]["terminal_observation"])
            terminal = terminal.reshape((-1, *model.observation_space.shape))
            with torch.inference_mode():
                value = run_steps(model._vf_steps, model._obs_tensor(terminal))[0]
            rewards[idx] += model.gamma * value
    # RolloutBuffer.add, written in place.
    pos = buffer.pos
    buffer.observations[pos] = np.reshape(model._last_obs, buffer.observations.shape[1:])
    buffer.actions[pos] = actions.reshape((env.num_envs, buffer.action_dim))
    buffer.rewards[pos] = rewards
    buffer.episode_starts[pos] = model._last_episode_starts
    buffer.values[pos] = values.numpy().ravel()
    buffer.log_probs[pos] = log_probs.numpy()
    buffer.pos = pos + 1
    buffer.full = buffer.pos == buffer.buffer_size
    model._last_obs = new_obs
    model._last_episode_starts = dones
    return True


# ----- update --------------------------------------------------------------------------------


class UpdateNetworks(Protocol):
    """The members' networks and optimizer step in an update (see :func:`ppo_update`)."""

    log_std: torch.Tensor

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian means (P, batch, actions) and values (P, batch) for ``obs`` (P, batch, in)."""
        ...

    def step(self, loss: torch.Tensor) -> None:
        """Gradients of the members' losses (P,), clipped per member, and one optimizer step."""
        ...

    def finish(self) -> None:
        """After the update's last step."""
        ...


class ModuleUpdate:
    """One member through its policy's modules (their hooks fire) and its own optimizer (the
    plasticity methods run inside its ``step()``: plasticity/protocol.py's timeline).

    :param model: the member
    """

    def __init__(self, model: FastPPO) -> None:
        self.model = model
        self.policy = model.policy
        self.params = list(self.policy.parameters())
        self.log_std = self.policy.log_std.unsqueeze(0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self.policy.mlp_extractor(obs[0])
        mean = self.policy.action_net(latent_pi)
        return mean[None], self.policy.value_net(latent_vf).flatten()[None]

    def step(self, loss: torch.Tensor) -> None:
        grads = self.model._zero_grads(self.params)
        loss.sum().backward()
        self.model._clip_grad_norm(self.params, grads)
        self.policy.optimizer.step()

    def finish(self) -> None:
        """Nothing: the member's own tensors were trained."""


def buffer_tensors(members: Sequence[FastPPO]) -> list[torch.Tensor]:
    """The members' rollout buffers flattened as ``RolloutBuffer.get`` flattens them, stacked:
    observations, actions, values, log-probabilities, advantages, returns, each (P, samples,
    ...)."""
    return [torch.stack(t) for t in zip(*(m._buffer_tensors() for m in members), strict=True)]


def ppo_update(
    members: Sequence[FastPPO],
    networks: UpdateNetworks,
    permutation: Callable[[int], torch.Tensor],
) -> None:
    """SB3's ``PPO.train`` for ``members`` at once, each on its own rollout buffer.

    The members share their update settings (``n_epochs``, ``batch_size``, coefficients, clip
    ranges at this update); with ``target_kl``, a member stops its epochs as SB3's does, so
    several members with ``target_kl`` are not one update.

    :param members: the members
    :param networks: their networks and optimizer step (:class:`ModuleUpdate` for one member,
        ``member_stacks.UpdateStacks`` for several)
    :param permutation: each epoch's sample order per member, (P, samples), drawn when the epoch
        starts (where ``RolloutBuffer.get`` draws it)
    """
    first = members[0]
    for model in members:
        model.policy.set_training_mode(True)
        model._update_learning_rate(model.policy.optimizer)
    progress = first._current_progress_remaining
    clip_range = first.clip_range(progress)
    clip_range_vf = None if first.clip_range_vf is None else first.clip_range_vf(progress)
    settings = PPOLossSettings(clip_range, clip_range_vf, first.vf_coef, first.ent_coef)
    data = buffer_tensors(members)
    rows = torch.arange(len(members)).unsqueeze(1)
    n_samples = data[0].shape[1]
    logs: dict[str, list[torch.Tensor]] = {"pg": [], "value": [], "entropy": [], "clip": []}
    continue_training = True
    for epoch in range(first.n_epochs):
        order = permutation(epoch)
        kl: list[torch.Tensor] = []
        for start in range(0, n_samples, first.batch_size):
            index = order[:, start : start + first.batch_size]
            obs, actions, old_values, old_log_prob, advantages, returns = (
                tensor[rows, index] for tensor in data
            )
            mean, values = networks.forward(obs)
            if first.normalize_advantage and advantages.shape[1] > 1:
                advantages = (advantages - advantages.mean(1, keepdim=True)) / (
                    advantages.std(1, keepdim=True) + 1e-8
                )
            batch = PPOBatch(actions, old_values, old_log_prob, advantages, returns)
            loss, policy_loss, value_loss, entropy_loss, log_prob, ratio = ppo_loss(
                mean, values, networks.log_std, batch, settings
            )
            with torch.no_grad():
                ratio_minus_one = ratio - 1
                logs["clip"].append((ratio_minus_one.abs() > clip_range).float().mean(1))
                kl.append((ratio_minus_one - (log_prob - old_log_prob)).mean(1))
            logs["pg"].append(policy_loss)
            logs["value"].append(value_loss)
            logs["entropy"].append(entropy_loss)
            if first.target_kl is not None and bool((kl[-1] > 1.5 * first.target_kl).any()):
                continue_training = False
                if first.verbose >= 1:
                    kl_text = f"{float(kl[-1].max()):.2f}"
                    print(f"Early stopping at step {epoch} due to reaching max kl: {kl_text}")
                break
            networks.step(loss)
        for model in members:
            model._n_updates += 1
        if not continue_training:
            break
    networks.finish()
    # Float64 columns: SB3 averages Python floats (``.item()``); the KL as float32, as SB3 keeps
    # it (numpy scalars).
    columns = {key: torch.stack(values).double().numpy() for key, values in logs.items()}
    kl_column = torch.stack(kl).numpy()
    for i, model in enumerate(members):
        model.record_train(
            columns["entropy"][:, i],
            columns["pg"][:, i],
            columns["value"][:, i],
            kl_column[:, i],
            columns["clip"][:, i],
            float(loss[i].detach()),
            clip_range,
            clip_range_vf,
        )
