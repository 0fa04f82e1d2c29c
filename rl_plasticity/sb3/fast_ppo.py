"""FastPPO: Stable-Baselines3's PPO with the per-step and per-minibatch overhead taken out.

``FastPPO`` is a subclass of ``stable_baselines3.PPO``: the same constructor and hyperparameters,
the same saved files (``PPO.load`` reads them, ``FastPPO.load`` reads SB3's), the same logger
keys, and SB3 callbacks called in the same pattern (``on_rollout_start``, ``update_locals`` and
``on_step`` after every VecEnv step, stopping when it returns False, ``on_rollout_end``). It
replaces two methods, for an ``MlpPolicy`` with Box actions, by the engine's core with one member
(:mod:`rl_plasticity.sb3.engine_core`, which a population of seeds runs with P):

* ``collect_rollouts``. The batch-1 policy call runs the same torch functions as the layers'
  ``forward`` on the live parameters, under ``inference_mode`` and without module calls, so no
  forward hook fires (SB3 runs it under ``no_grad``, where the plasticity hooks keep nothing
  either). The action is drawn with the random call SB3's ``Normal.rsample`` makes
  (``normal_()`` of the same shape, then ``mean + noise * std``); the log-probability is
  ``Normal.log_prob``'s formula; a ``DummyVecEnv``'s sub-envs are stepped directly (their info
  dicts are handed on as the env returned them, without DummyVecEnv's deep copy); the
  ``RolloutBuffer``'s arrays are written in place. Given the same model and random state, the
  buffer is SB3's to the bit (``tests/test_fast_ppo.py``).
* ``train``. The buffer becomes tensors once per ``train()``; each epoch is permuted with the same
  ``np.random.permutation`` call SB3's ``RolloutBuffer.get`` makes, and minibatches are slices of
  the permuted tensors. The forward still runs through the policy's modules with gradients
  enabled, so CBP's, ReDo's and ``PlasticityMetrics``' hooks see exactly the training forwards.
  The loss from the Gaussian's mean, the values and the log-std on is :func:`ppo_loss` (SB3's
  formulas without building a distribution per minibatch; autograd's gradient), the gradients live
  in one buffer (one zeroing, one norm), and Adam runs as multi-tensor (foreach) kernels, which
  compute torch's per-parameter Adam to the bit. After one ``train()`` from the same buffer and
  random state, parameters and Adam's moments equal SB3's within float rounding.

What runs where, against what SB3's PPO does (``unsupported_reason`` decides; a model that runs
SB3's code is still SB3's PPO, only not faster: its reason is :attr:`FastPPO.fallback_reason`,
printed at construction and load with ``verbose >= 1`` as SB3 prints its own notes):

=====================================================  ==========================================
What SB3 does                                          FastPPO
=====================================================  ==========================================
Box observations: ``float()``; images (uint8, HxWxC    fast path, through SB3's ``preprocess_obs``
or CxHxW) ``/ 255`` when ``normalize_images``; then    (same tensors), flattened as
``FlattenExtractor``                                   ``FlattenExtractor`` does
Discrete / MultiDiscrete observations: one-hot;        fast path, the same ``preprocess_obs``
MultiBinary: ``float()``
Dict observations (``MultiInputPolicy``, dict buffer)  SB3's code
Box actions of any shape: Gaussian over the            fast path: sampled flat, reshaped to
flattened shape, reshaped to ``(-1, *shape)``,         ``(-1, *shape)`` and clipped as SB3 does
clipped to the bounds
Discrete, MultiDiscrete, MultiBinary actions           SB3's code (categorical / Bernoulli
                                                       distributions: the loss is Gaussian's)
gSDE (``use_sde``), ``squash_output``                  SB3's code
``features_extractor_class`` other than Flatten        SB3's code (CNN, NatureCNN, custom)
``share_features_extractor`` True or False             fast path (both extractors flatten)
``net_arch``, ``activation_fn`` (torch's and ours),    fast path
``log_std_init``, ``ortho_init``, optimizer class
and kwargs
Layers other than Linear and activations in the MLP    SB3's code
(LayerNorm, CReLU, ...), a custom policy class
``rollout_buffer_class`` other than RolloutBuffer      SB3's code
``DummyVecEnv``                                        fast path, sub-envs stepped directly
Other VecEnvs and wrappers (``SubprocVecEnv``,         fast path, through ``env.step`` (the
``VecNormalize``, ``VecFrameStack``, monitors)         wrapper normalizes, as with SB3)
A device other than the CPU                            SB3's code
``collect_rollouts`` called with another env, buffer   SB3's code (the core steps the model's own
or step count than ``learn`` passes                    env into its own buffer)
=====================================================  ==========================================

Differences that remain on the fast path, by design: parameters after ``train()`` equal SB3's
within float rounding (foreach Adam, one autograd node for the loss), not to the bit; the info
dicts a ``DummyVecEnv`` returns are the env's own, not DummyVecEnv's deep copies (a callback that
keeps an info dict across steps and edits it sees its own edits); ``clip_grad_norm_`` is skipped
when the norm is 0.1% below ``max_grad_norm`` (where it multiplies by exactly 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import nn

from rl_plasticity.plasticity.layers import ACTIVATIONS
from rl_plasticity.sb3.engine_core import ModuleUpdate, Solo, collect_rollouts, ppo_update
from rl_plasticity.sb3.member_stacks import policy_steps

#: RolloutBuffer arrays that ``RolloutBuffer.get`` flattens, in the order of its samples.
BUFFER_FIELDS = ("observations", "actions", "values", "log_probs", "advantages", "returns")
#: Observation spaces whose preprocessing the fast paths run (SB3's ``preprocess_obs``, flattened).
OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def unsupported_reason(model: PPO) -> str | None:
    """Why the fast paths cannot run this model (None when they can).

    :param model: a PPO whose policy has been built
    :return: a short reason, or None
    """
    policy = model.policy
    if type(policy) is not ActorCriticPolicy:
        return f"policy class {type(policy).__name__} (the engine runs MlpPolicy)"
    if policy.device.type != "cpu":
        return f"device {policy.device} (the engine runs on CPU)"
    if model.use_sde:
        return "gSDE (use_sde=True)"
    if not isinstance(model.action_space, spaces.Box):
        return f"action space {type(model.action_space).__name__} (the engine runs Box)"
    if not isinstance(policy.action_dist, DiagGaussianDistribution) or policy.squash_output:
        return "an action distribution other than an unsquashed diagonal Gaussian"
    if not isinstance(model.observation_space, OBSERVATION_SPACES):
        return f"observation space {type(model.observation_space).__name__} (the engine runs "
        "Box, Discrete, MultiDiscrete and MultiBinary)"
    if type(model.rollout_buffer) is not RolloutBuffer:
        return f"rollout buffer class {type(model.rollout_buffer).__name__}"
    extractors = (policy.features_extractor, policy.pi_features_extractor)
    if not all(type(e) is FlattenExtractor for e in (*extractors, policy.vf_features_extractor)):
        return "a features extractor other than FlattenExtractor"
    if type(policy.mlp_extractor) is not MlpExtractor:
        return f"mlp_extractor {type(policy.mlp_extractor).__name__}"
    for net in (policy.mlp_extractor.policy_net, policy.mlp_extractor.value_net):
        for layer in net:
            if not isinstance(layer, (nn.Linear, *ACTIVATIONS)):
                return f"layer {type(layer).__name__} in the MLP (Linear and activations only)"
    if not isinstance(policy.action_net, nn.Linear) or not isinstance(policy.value_net, nn.Linear):
        return "action_net or value_net is not a Linear"
    return None


class FastPPO(PPO):
    """Stable-Baselines3's PPO, same algorithm, less overhead per step and per minibatch.

    Takes exactly :class:`stable_baselines3.PPO`'s arguments (see its documentation); what
    changes is only how ``collect_rollouts`` and ``train`` are computed (module docstring).
    ``FastPPO.load`` and ``PPO.load`` read each other's files.
    """

    def _setup_model(self) -> None:
        super()._setup_model()
        self._unsupported = unsupported_reason(self)
        if self._unsupported is not None:
            # A note, not a warning: the model is SB3's PPO, correct, only not faster; SB3 prints
            # its own notes (the device, env wrapping) the same way.
            if self.verbose >= 1:
                print(f"FastPPO runs SB3's PPO code paths: {self._unsupported}")
            return
        optimizer = self.policy.optimizer
        if isinstance(optimizer, torch.optim.Adam) and not optimizer.defaults["fused"]:
            # The same arithmetic as torch's per-parameter loop, to the bit, one multi-tensor
            # kernel per operation. Not fused: the fused CPU kernel moves parameters whose second
            # moment is tiny by up to a sixth of a learning-rate step differently after one
            # update (bench/results/engine_drift.md), which PPO then amplifies.
            for group in optimizer.param_groups:
                group["foreach"] = True

    @property
    def fallback_reason(self) -> str | None:
        """Why this model runs SB3's own PPO code (the module's table); None on the fast path."""
        return self._unsupported

    def _obs_tensor(self, observations: np.ndarray) -> torch.Tensor:
        """Observations as SB3's policy feeds them to its MLP: ``preprocess_obs`` (float, images
        divided by 255, one-hot for discrete spaces), then flattened as ``FlattenExtractor`` does.

        :param observations: a batch of observations (leading dimension: the batch)
        """
        tensor = preprocess_obs(
            torch.as_tensor(observations), self.observation_space, self.policy.normalize_images
        )
        return tensor.flatten(1)

    def _excluded_save_params(self) -> list[str]:
        runtime = ("_unsupported", "_pi_steps", "_vf_steps", "_log_std", "_gaussian", "_grads")
        return [*super()._excluded_save_params(), *runtime]

    # ----- rollout ---------------------------------------------------------------------------

    def _inference_steps(self) -> None:
        """Bind the networks' layers for the rollout (again at every rollout: a load or a method
        may have replaced a module since the last one)."""
        self._pi_steps, self._vf_steps = policy_steps(self)
        self._log_std = self.policy.log_std.detach().numpy()  # shares memory: always current
        self._gaussian: tuple[bytes, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _gaussian_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """std, 2 var and log std as ``Normal(mean, exp(log_std))`` computes them (cached while
        the log-std keeps its bits)."""
        key = self._log_std.tobytes()
        if self._gaussian is None or self._gaussian[0] != key:
            with torch.inference_mode():
                std = self.policy.log_std.exp()
                two_var = 2 * std**2
                self._gaussian = (key, std.numpy(), two_var.numpy(), std.log().numpy())
        return self._gaussian[1:]

    def _step_dummy(
        self, env: DummyVecEnv, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """``DummyVecEnv.step`` without its deep copy of the infos."""
        n = env.num_envs
        new_obs = np.empty((n, *self.observation_space.shape), self.observation_space.dtype)
        rewards = np.empty(n, dtype=np.float32)
        dones = np.empty(n, dtype=bool)
        infos = []
        for i, sub_env in enumerate(env.envs):
            obs, rewards[i], terminated, truncated, info = sub_env.step(actions[i])
            dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if dones[i]:
                info["terminal_observation"] = obs
                obs, env.reset_infos[i] = sub_env.reset()
            new_obs[i] = obs
            infos.append(info)
        return new_obs, rewards, dones, infos

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Fill ``rollout_buffer`` with ``n_rollout_steps`` steps per env, as SB3's PPO does.

        :param env: the training VecEnv
        :param callback: called at rollout start, after every step and at rollout end
        :param rollout_buffer: the buffer to fill
        :param n_rollout_steps: steps per env
        :return: False if a callback stopped training, else True
        """
        standard = env is self.env and rollout_buffer is self.rollout_buffer
        if self._unsupported is not None or not standard or n_rollout_steps != self.n_steps:
            # The core steps the model's own env into its own buffer (what PPO.learn passes).
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        return bool(collect_rollouts([self], [callback], Solo()))

    # ----- update ----------------------------------------------------------------------------

    def _buffer_tensors(self) -> list[torch.Tensor]:
        """The rollout buffer flattened as ``RolloutBuffer.get`` flattens it, as tensors."""
        buffer = self.rollout_buffer
        if not buffer.generator_ready:
            for name in BUFFER_FIELDS:
                buffer.__dict__[name] = buffer.swap_and_flatten(buffer.__dict__[name])
            buffer.generator_ready = True
        observations = self._obs_tensor(buffer.observations)
        actions = torch.as_tensor(buffer.actions.astype(np.float32, copy=False))
        rest = [torch.as_tensor(buffer.__dict__[name]).reshape(-1) for name in BUFFER_FIELDS[2:]]
        return [observations, actions, *rest]

    def _zero_grads(self, params: list[torch.Tensor]) -> torch.Tensor:
        """``optimizer.zero_grad()`` as one operation: every ``.grad`` is a view of one buffer,
        zeroed, which the backward pass adds into (0 + g = g). Returns the buffer."""
        buffer = getattr(self, "_grads", None)
        views = [] if buffer is None else buffer[1]
        if len(views) != len(params) or any(
            p.grad is not v for p, v in zip(params, views, strict=False)
        ):
            flat = torch.zeros(sum(p.numel() for p in params))
            pieces = flat.split([p.numel() for p in params])
            views = [v.view_as(p) for v, p in zip(pieces, params, strict=True)]
            for p, v in zip(params, views, strict=True):
                p.grad = v
            self._grads = (flat, views)
            return flat
        buffer[0].zero_()
        return buffer[0]

    def _clip_grad_norm(self, params: list[torch.Tensor], grads: torch.Tensor) -> None:
        """``clip_grad_norm_(params, max_grad_norm)`` as SB3 calls it, skipped when the norm of
        all gradients is clearly (0.1%) below the limit, where it multiplies them by exactly 1."""
        if torch.linalg.vector_norm(grads) * 1.001 + 1e-6 < self.max_grad_norm:
            return
        torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)

    def train(self) -> None:
        """Update the policy on the rollout buffer: SB3's PPO update, computed leaner."""
        if self._unsupported is not None:
            super().train()
            return
        n_samples = self.rollout_buffer.buffer_size * self.rollout_buffer.n_envs

        def permutation(epoch: int) -> torch.Tensor:
            # RolloutBuffer.get draws this permutation when its first minibatch is asked for.
            return torch.from_numpy(np.random.permutation(n_samples))[None]

        ppo_update([self], ModuleUpdate(self), permutation)

    def record_train(
        self,
        entropy_losses: Sequence[float],
        pg_losses: Sequence[float],
        value_losses: Sequence[float],
        approx_kl_divs: Sequence[float],
        clip_fractions: Sequence[float],
        loss: float,
        clip_range: float,
        clip_range_vf: float | None,
    ) -> None:
        """Record one ``train()``'s ``train/*`` values under SB3's keys (the minibatch lists
        averaged, the approximate KL over the last epoch's minibatches).

        :param entropy_losses: per minibatch
        :param pg_losses: per minibatch
        :param value_losses: per minibatch
        :param approx_kl_divs: per minibatch of the last epoch
        :param clip_fractions: per minibatch
        :param loss: the last minibatch's loss
        :param clip_range: the update's clip range
        :param clip_range_vf: the update's value clip range, or None
        """
        buffer = self.rollout_buffer
        explained_var = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss)
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
