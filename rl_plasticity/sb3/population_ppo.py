"""PopulationPPO: the seeds of one FastPPO agent trained in lockstep in one process.

Each member is an ordinary :class:`~rl_plasticity.sb3.fast_ppo.FastPPO` model (its own env,
rollout buffer, policy, Adam, logger and callbacks), so it saves, loads (``PPO.load`` reads its
files), checkpoints and is measured exactly as a single run. What the population shares is the
arithmetic that costs a fixed price per call, whatever its size:

* **Rollouts.** At every step the P members' batch-1 policy calls (actor and critic) are one
  batched product per layer (``torch.baddbmm`` over a member dimension, on stacks of the
  members' live parameters). Each member then draws its action noise from its own torch
  generator (the draws a single run makes, in the same order), steps its own env and calls its
  own callbacks, as ``FastPPO.collect_rollouts`` does.
* **Updates.** When nothing watches the update (no optimizer hooks, no module hooks: no plasticity
  method or metrics callback attached) and the members share their settings, ``train()`` runs
  for all members at once: each member's minibatches (its own permutation, drawn from its own
  numpy generator, as SB3 draws it), one batched forward and backward through stacked parameters,
  gradient clipping per member (its own norm), and one Adam over the stacks, which is per-member
  Adam (Adam is elementwise; every member has taken the same number of steps). Parameters and
  Adam's moments are copied back into the members afterwards. Otherwise each member runs its own
  ``FastPPO.train`` in turn (:attr:`PopulationPPO.update_mode` says which, and why).

Per member, and what falls back to a loop over members:

===============================================  ===============================================
Work                                             How
===============================================  ===============================================
actor and critic forward in a rollout            batched over members
action noise, log-probability, env step,         per member (its own generator, env, callbacks)
callbacks, rollout buffer
bootstrap value of a truncated episode           per member (rare)
update, nothing hooked and settings shared       batched over members; clipping per member
update with a method or metrics callback, or     per member (``FastPPO.train``), said in
target_kl, or settings that differ               ``update_mode``
===============================================  ===============================================

Random state: every member keeps torch's, numpy's and Python's global generator states as its own
and has them in place whenever its code runs that could draw from them (rollout start and end,
where checkpoints are written; its update; its action noise, torch's, at every step). A callback
that draws from numpy's or Python's global generator at every step of a rollout draws from a
stream the members share (swapping numpy's state costs more than a step); the shipped callbacks
do not.

Equivalence to single runs: from the same state, a member's rollout buffer and its parameters
and Adam moments after one ``train()`` equal the single FastPPO's within float rounding
(``tests/test_population_ppo.py``; batched products round differently from single ones, about
1e-6 in an action). In a chaotic environment such differences grow (HalfCheetah's observations
part after tens of steps), so a member and the single run of its seed are alike in distribution,
not step by step: ``bench/bench_population.py --equivalence`` tests that over seeds.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.sb3.fast_ppo import FastPPO, lean_steps, run_steps
from rl_plasticity.sb3.ppo_loss import LOG_SQRT_2PI, PPOBatch, PPOLossSettings, ppo_loss

#: The settings members must share to be updated as one (read from each member).
SHARED_SETTINGS = (
    "n_epochs",
    "batch_size",
    "normalize_advantage",
    "max_grad_norm",
    "vf_coef",
    "ent_coef",
    "target_kl",
)


@dataclass
class MemberRandom:
    """One member's global random states: torch's CPU generator, numpy's and Python's.

    :param torch_state: ``torch.get_rng_state()``
    :param numpy_state: ``np.random.get_state()``
    :param python_state: ``random.getstate()``
    """

    torch_state: torch.Tensor
    numpy_state: Any
    python_state: Any

    @classmethod
    def capture(cls) -> MemberRandom:
        """The global generators' states now."""
        return cls(torch.get_rng_state(), np.random.get_state(), random.getstate())

    def install(self) -> None:
        """Put these states into the global generators."""
        torch.set_rng_state(self.torch_state)
        np.random.set_state(self.numpy_state)
        random.setstate(self.python_state)


def population_reason(members: Sequence[FastPPO]) -> str | None:
    """Why these models cannot train as one population (None when they can).

    :param members: the models, one per seed
    :return: a short reason, or None
    """
    if not members:
        return "no members"
    first = members[0]
    for index, model in enumerate(members):
        if not isinstance(model, FastPPO):
            return f"member {index} is a {type(model).__name__}, not a FastPPO"
        if model.fallback_reason is not None:
            return f"member {index} runs SB3's PPO code paths: {model.fallback_reason}"
        if model.env is None:
            return f"member {index} has no env"
        if model.n_envs != first.n_envs or model.n_steps != first.n_steps:
            return f"member {index} has n_envs {model.n_envs} and n_steps {model.n_steps}, member "
            f"0 {first.n_envs} and {first.n_steps}"
        spaces_differ = model.observation_space != first.observation_space
        if spaces_differ or model.action_space != first.action_space:
            return f"member {index}'s observation or action space differs from member 0's"
        if _shapes(model) != _shapes(first):
            return f"member {index}'s networks differ from member 0's"
    return None


def _per_member(value: Any, n: int, name: str) -> list:
    """``value`` for each of ``n`` members: a sequence of ``n``, or one value for all."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ConfigError(name, f"{len(value)} values", f"one value, or one per member ({n})")
        return list(value)
    return [value] * n


def _shapes(model: FastPPO) -> list[tuple]:
    """Every step of the actor and critic: the function's name and the tensors' shapes."""
    policy = model.policy
    steps = lean_steps(policy.mlp_extractor.policy_net, policy.action_net)
    steps += lean_steps(policy.mlp_extractor.value_net, policy.value_net)
    return [(_function_key(f), tuple(t.shape for t in tensors)) for f, tensors in steps]


def _function_key(function: Callable) -> str:
    owner = getattr(function, "__self__", None)
    return type(owner).__name__ if isinstance(owner, nn.Module) else function.__name__


def stacked_forward(
    steps: Sequence[tuple[Callable, tuple]],
    tensors: Sequence[Sequence[torch.Tensor]],
    x: torch.Tensor,
    transposed: bool = False,
) -> torch.Tensor:
    """Run the members' networks on ``x`` (P, batch, in) as batched products.

    :param steps: one member's :func:`lean_steps` (the functions; linears become ``baddbmm``)
    :param tensors: per step, the stacked tensors (weight (P, out, in), bias (P, out)) or ()
    :param x: the members' inputs
    :param transposed: the weights are stacked transposed, (P, in, out) (contiguous: read in
        order by the batch-1 product, about a tenth faster than through a transposed view)
    :return: (P, batch, out)
    """
    for (function, _), stacked in zip(steps, tensors, strict=True):
        if stacked:
            weight, bias = stacked
            weight = weight if transposed else weight.transpose(1, 2)
            x = torch.baddbmm(bias.unsqueeze(1), x, weight)
        else:
            x = function(x)
    return x


class _RolloutStacks:
    """The members' actor and critic parameters stacked for the batched rollout forward, stacked
    again whenever a member's tensor is replaced or changed in place (``_version``)."""

    def __init__(self, members: Sequence[FastPPO]) -> None:
        self.members = list(members)
        self.pi_steps = [m._pi_steps for m in members]
        self.vf_steps = [m._vf_steps for m in members]
        # FastPPO binds the tensors at rollout start too: in-place changes are what can follow.
        self.tensors = [
            t for steps in (*self.pi_steps, *self.vf_steps) for _, tensors in steps for t in tensors
        ]
        self._keys: list[int] = []
        self.pi: list[tuple] = []
        self.vf: list[tuple] = []
        self.refresh()

    def _key(self) -> list[int]:
        return [t._version for t in self.tensors]

    def refresh(self) -> None:
        """Stack again if any member's parameters changed since the last stacking."""
        key = self._key()
        if key == self._keys:
            return
        self._keys = key
        with torch.inference_mode():
            self.pi = _stack_steps(self.pi_steps)
            self.vf = _stack_steps(self.vf_steps)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' Gaussian means and values for ``obs`` (P, n, obs_dim)."""
        mean = stacked_forward(self.pi_steps[0], self.pi, obs, transposed=True)
        return mean, stacked_forward(self.vf_steps[0], self.vf, obs, transposed=True)


def _stack_steps(per_member: Sequence[list[tuple[Callable, tuple]]]) -> list[tuple]:
    """Per step, the members' tensors stacked along a new first dimension, weights transposed
    to (P, in, out)."""
    stacked = []
    for i in range(len(per_member[0])):
        groups = zip(*(steps[i][1] for steps in per_member), strict=True)
        tensors = [torch.stack(group) for group in groups]
        if tensors:  # a Linear: (weight, bias)
            tensors[0] = tensors[0].transpose(1, 2).contiguous()
        stacked.append(tuple(tensors))
    return stacked


class PopulationPPO:
    """P FastPPO models (one per seed, one agent) trained in lockstep, sharing batched arithmetic.

    The members stay ordinary models: save one with ``member.save(path)`` (``PPO.load`` reads
    it), give each its own callbacks, read its logger. See the module docstring for what is
    batched and what runs per member.

    :param members: the models; built by the caller, each with its own seed and env
    :param random_states: each member's global random states as they were right after it was
        built (:meth:`MemberRandom.capture`); None: the current states for every member (only
        right for a single member). :meth:`build` captures them for you.
    :param verbose: 1: print how updates run when that changes
    :raises ConfigError: when the models cannot train as one population (:func:`population_reason`)
    """

    def __init__(
        self,
        members: Sequence[FastPPO],
        random_states: Sequence[MemberRandom] | None = None,
        verbose: int = 0,
    ) -> None:
        reason = population_reason(members)
        if reason is not None:
            raise ConfigError("members", f"{len(members)} models", f"a population: {reason}")
        self.members = list(members)
        if random_states is None:
            random_states = [MemberRandom.capture() for _ in members]
        if len(random_states) != len(members):
            raise ConfigError("random_states", len(random_states), f"{len(members)} states")
        self.random = list(random_states)
        self.verbose = verbose
        #: How the last ``train()`` ran: "batched", or "per member: <why>".
        self.update_mode: str | None = None
        #: Members that raised, by index: the exception (the member stopped there; the others
        #: went on). ``learn`` raises only what is not one member's (a KeyboardInterrupt).
        self.errors: dict[int, Exception] = {}

    @classmethod
    def build(
        cls, make_member: Callable[[int], FastPPO], seeds: Sequence[int], verbose: int = 0
    ) -> PopulationPPO:
        """Build one member per seed with ``make_member(seed)``, capturing each member's random
        states right after it is built (SB3 seeds the global generators in the constructor).

        :param make_member: builds a FastPPO with the given seed (and its own env)
        :param seeds: one per member
        :param verbose: see the class
        """
        members, states = [], []
        for seed in seeds:
            members.append(make_member(seed))
            states.append(MemberRandom.capture())
        return cls(members, states, verbose)

    # ----- random state ----------------------------------------------------------------------

    def _enter(self, k: int) -> None:
        self.random[k].install()

    def _leave(self, k: int) -> None:
        self.random[k] = MemberRandom.capture()

    def as_member(self, k: int, work: Callable[[], Any]) -> Any:
        """Run ``work`` with member ``k``'s global random states in place (and keep what it
        drew): for anything that draws or saves them on the member's behalf, such as a final
        checkpoint.

        :param k: the member's index
        :param work: called without arguments
        :return: what ``work`` returns
        """
        self._enter(k)
        try:
            return work()
        finally:
            self._leave(k)

    def _guarded(self, k: int, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)``; if it raises, member ``k`` is recorded in :attr:`errors` and False
        returned."""
        try:
            return work(*args)
        except Exception as error:
            error.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.errors[k] = error
            return False

    # ----- learn -----------------------------------------------------------------------------

    def learn(
        self,
        total_timesteps: int | Sequence[int],
        callback: Sequence[MaybeCallback] | None = None,
        log_interval: int = 1,
        reset_num_timesteps: bool | Sequence[bool] = True,
    ) -> PopulationPPO:
        """Train every member, as ``member.learn(total_timesteps, callback[k], ...)`` would.

        A member ends when it reaches its total, a callback returns False, or its code raises
        (recorded in :attr:`errors`, with the traceback as ``__traceback_text__``); the others go
        on.

        :param total_timesteps: steps per member (one for all, or one each)
        :param callback: per member, what ``learn`` takes (a callback, a list, or None)
        :param log_interval: dump each member's logs every this many rollouts
        :param reset_num_timesteps: as SB3's ``learn`` (False: continue a loaded model's count),
            one for all or one each
        :return: self
        """
        n = len(self.members)
        totals = _per_member(total_timesteps, n, "total_timesteps")
        resets = _per_member(reset_num_timesteps, n, "reset_num_timesteps")
        if callback is not None and (not isinstance(callback, Sequence) or len(callback) != n):
            # One callback object cannot serve several models (it binds to one).
            raise ConfigError("callback", callback, f"None, or one entry per member ({n})")
        callbacks = list(callback) if callback is not None else [None] * n
        ends: list[int] = [0] * n
        bound: list[BaseCallback | None] = [None] * n
        for k, model in enumerate(self.members):

            def setup(model: FastPPO = model, k: int = k) -> None:
                ends[k], bound[k] = model._setup_learn(totals[k], callbacks[k], resets[k], "PPO")
                bound[k].on_training_start(locals(), globals())

            self._guarded(k, self.as_member, k, setup)
        iterations = [0] * n
        running = [
            k for k in range(n) if k not in self.errors and self.members[k].num_timesteps < ends[k]
        ]
        while running:
            running = self._collect_rollouts(running, bound)
            for k in running:
                model = self.members[k]
                iterations[k] += 1
                model._update_current_progress_remaining(model.num_timesteps, ends[k])
                if log_interval is not None and iterations[k] % log_interval == 0:
                    model.dump_logs(iterations[k])
            self.train(running)
            running = [
                k
                for k in running
                if k not in self.errors and self.members[k].num_timesteps < ends[k]
            ]
        for k, cb in enumerate(bound):
            if cb is not None:
                self._guarded(k, self.as_member, k, cb.on_training_end)
        return self

    # ----- rollout ---------------------------------------------------------------------------

    def _collect_rollouts(self, ks: list[int], callbacks: list[BaseCallback]) -> list[int]:
        """One rollout of ``n_steps`` for members ``ks``, their forwards batched.

        :return: the members whose callbacks did not stop training
        """
        members = [self.members[k] for k in ks]
        for k, model in zip(ks, members, strict=True):

            def start(model: FastPPO = model, k: int = k) -> None:
                model.policy.set_training_mode(False)
                model.rollout_buffer.reset()
                callbacks[k].on_rollout_start()
                model._inference_steps()

            self._guarded(k, self.as_member, k, start)
        ks = [k for k in ks if k not in self.errors]
        members = [self.members[k] for k in ks]
        if not members:
            return []
        active = list(range(len(ks)))
        stacks = _RolloutStacks(members)
        n_steps, n_envs = members[0].n_steps, members[0].n_envs
        for _ in range(n_steps):
            stacks.refresh()
            with torch.inference_mode():
                # One preprocessing for all (the members' spaces are equal).
                stacked = np.concatenate([m._last_obs for m in members])
                obs = members[0]._obs_tensor(stacked).view(len(members), n_envs, -1)
                means, values = stacks.act(obs)
            means_np = means.numpy()
            for i in list(active):
                k = ks[i]
                torch.set_rng_state(self.random[k].torch_state)
                go_on = self._guarded(
                    k, self._step, members[i], callbacks[k], means_np[i], values[i]
                )
                self.random[k].torch_state = torch.get_rng_state()
                if not go_on:
                    active.remove(i)
            if not active:
                break
        for i in active:
            k, model = ks[i], members[i]

            def end(model: FastPPO = model, k: int = k) -> None:
                with torch.inference_mode():
                    last = run_steps(model._vf_steps, model._obs_tensor(model._last_obs))
                model.rollout_buffer.compute_returns_and_advantage(
                    last_values=last, dones=model._last_episode_starts
                )
                callbacks[k].update_locals({"rollout_buffer": model.rollout_buffer})
                callbacks[k].on_rollout_end()

            self._guarded(k, self.as_member, k, end)
        return [ks[i] for i in active if ks[i] not in self.errors]

    def _step(
        self,
        model: FastPPO,
        callback: BaseCallback,
        mean: np.ndarray,
        values: torch.Tensor,
    ) -> bool:
        """One env step of one member, after ``FastPPO.collect_rollouts``'s loop body (its
        forward done by the population). Returns False when a callback stops training."""
        env = model.env
        rollout_buffer = model.rollout_buffer
        std, two_var, log_std = model._gaussian_terms()
        noise = torch.randn(mean.shape).numpy()
        actions = noise * std + mean
        diff = actions - mean
        log_probs = torch.from_numpy(-(diff * diff) / two_var - log_std - LOG_SQRT_2PI).sum(dim=1)
        actions = actions.reshape((-1, *model.action_space.shape))
        clipped_actions = np.minimum(
            np.maximum(actions, model.action_space.low), model.action_space.high
        )
        if type(env) is DummyVecEnv:
            new_obs, rewards, dones, infos = model._step_dummy(env, clipped_actions)
        else:
            new_obs, rewards, dones, infos = env.step(clipped_actions)
        model.num_timesteps += env.num_envs
        callback.update_locals(
            {
                "self": model,
                "env": env,
                "rollout_buffer": rollout_buffer,
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
        pos = rollout_buffer.pos
        rollout_buffer.observations[pos] = np.reshape(
            model._last_obs, rollout_buffer.observations.shape[1:]
        )
        rollout_buffer.actions[pos] = actions.reshape((env.num_envs, rollout_buffer.action_dim))
        rollout_buffer.rewards[pos] = rewards
        rollout_buffer.episode_starts[pos] = model._last_episode_starts
        rollout_buffer.values[pos] = values.numpy().ravel()
        rollout_buffer.log_probs[pos] = log_probs.numpy()
        rollout_buffer.pos = pos + 1
        rollout_buffer.full = rollout_buffer.pos == rollout_buffer.buffer_size
        model._last_obs = new_obs
        model._last_episode_starts = dones
        return True

    # ----- update ----------------------------------------------------------------------------

    def train(self, ks: Sequence[int] | None = None) -> None:
        """Update members ``ks`` (default: all) on their rollout buffers: batched when
        :func:`batched_update_reason` allows it, else each member's ``FastPPO.train``.

        :param ks: the members' indices
        """
        ks = list(range(len(self.members))) if ks is None else list(ks)
        if not ks:
            return
        members = [self.members[k] for k in ks]
        reason = batched_update_reason(members)
        mode = "batched" if reason is None else f"per member: {reason}"
        if mode != self.update_mode and self.verbose >= 1:
            print(f"PopulationPPO updates {mode}")
        self.update_mode = mode
        if reason is not None:
            for k, model in zip(ks, members, strict=True):
                self._guarded(k, self.as_member, k, model.train)
            return
        orders = []
        for k, model in zip(ks, members, strict=True):
            n_samples = model.rollout_buffer.buffer_size * model.rollout_buffer.n_envs

            def draw(model: FastPPO = model, n: int = n_samples) -> list[np.ndarray]:
                # The permutations RolloutBuffer.get would draw, one per epoch, in order.
                return [np.random.permutation(n) for _ in range(model.n_epochs)]

            orders.append(self.as_member(k, draw))
        try:
            batched_train(members, orders)
        except Exception as error:  # not one member's fault: every member of the update stops
            error.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.errors.update(dict.fromkeys(ks, error))


def _hooked(policy: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """True when something watches the update: optimizer step hooks, module hooks, gradient
    hooks."""
    from torch.optim import optimizer as optim_module

    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
        return True
    if optim_module._global_optimizer_pre_hooks or optim_module._global_optimizer_post_hooks:
        return True
    for module in policy.modules():
        if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
            return True
        if module._backward_pre_hooks:
            return True
    return any(getattr(p, "_post_accumulate_grad_hooks", None) for p in policy.parameters())


def batched_update_reason(members: Sequence[FastPPO]) -> str | None:
    """Why these members' ``train()`` cannot run as one batched update (None when it can).

    :param members: the members to update
    """
    first = members[0]
    for index, model in enumerate(members):
        optimizer = model.policy.optimizer
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
            return f"member {index}'s optimizer is not one plain torch.optim.Adam group"
        group = optimizer.param_groups[0]
        if group["amsgrad"] or group["maximize"] or group["differentiable"] or group["fused"]:
            return "Adam with amsgrad, maximize, differentiable or fused"
        if _hooked(model.policy, optimizer):
            return "hooks on the update (a plasticity method or metrics callback)"
        if model.target_kl is not None:
            return "target_kl (each member may stop its epochs at a different time)"
        for name in SHARED_SETTINGS:
            if getattr(model, name) != getattr(first, name):
                return f"members differ in {name}"
        progress = (model._current_progress_remaining, first._current_progress_remaining)
        same_schedule = model.clip_range(progress[0]) == first.clip_range(progress[1]) and (
            model.lr_schedule(progress[0]) == first.lr_schedule(progress[1])
        )
        if not same_schedule or (model.clip_range_vf is None) != (first.clip_range_vf is None):
            return "members differ in learning rate or clip range at this update"
        hyper = {k: v for k, v in group.items() if k != "params"}
        first_hyper = {k: v for k, v in first.policy.optimizer.param_groups[0].items()}
        if any(hyper[k] != first_hyper[k] for k in hyper if k not in ("lr", "initial_lr")):
            return "members' Adam settings differ"
        if _adam_step(model) != _adam_step(first):
            return "members' Adam has taken different numbers of steps"
        named = {id(p) for p in model.policy.parameters()}
        if named != {id(t) for t in _trained_tensors(model)}:
            return "the policy has parameters outside the actor, critic and log-std"
    return None


def _adam_step(model: FastPPO) -> float:
    state = model.policy.optimizer.state.get(model.policy.log_std)
    return 0.0 if not state else float(state["step"])


def _trained_tensors(model: FastPPO) -> list[torch.Tensor]:
    """The parameters in the order the batched update stacks them: actor steps, critic steps,
    log-std."""
    policy = model.policy
    steps = lean_steps(policy.mlp_extractor.policy_net, policy.action_net)
    steps += lean_steps(policy.mlp_extractor.value_net, policy.value_net)
    return [t for _, tensors in steps for t in tensors] + [policy.log_std]


def batched_train(members: Sequence[FastPPO], orders: Sequence[Sequence[np.ndarray]]) -> None:
    """``FastPPO.train`` for all ``members`` at once (see the module docstring).

    :param members: members that :func:`batched_update_reason` accepts
    :param orders: per member, one sample permutation per epoch (drawn as SB3 draws them)
    """
    first = members[0]
    for model in members:
        model.policy.set_training_mode(True)
        model._update_learning_rate(model.policy.optimizer)
    clip_range = first.clip_range(first._current_progress_remaining)
    clip_range_vf = None
    if first.clip_range_vf is not None:
        clip_range_vf = first.clip_range_vf(first._current_progress_remaining)
    data = [
        torch.stack(tensors)
        for tensors in zip(*(m._buffer_tensors() for m in members), strict=True)
    ]
    per_member = [_trained_tensors(m) for m in members]
    stacks = [
        torch.stack(group).detach().requires_grad_() for group in zip(*per_member, strict=True)
    ]
    optimizer = _stacked_adam(members, per_member, stacks)
    policy = first.policy
    steps = lean_steps(policy.mlp_extractor.policy_net, policy.action_net)
    n_pi = len(steps)
    steps += lean_steps(policy.mlp_extractor.value_net, policy.value_net)
    tensors, position = [], 0
    for _, bound in steps:
        tensors.append(tuple(stacks[position : position + len(bound)]))
        position += len(bound)
    pi_tensors, vf_tensors, log_std = tensors[:n_pi], tensors[n_pi:], stacks[-1]
    population = len(members)
    rows = torch.arange(population).unsqueeze(1)
    n_samples = data[0].shape[1]
    logs: dict[str, list] = {"pg": [], "value": [], "entropy": [], "clip": [], "kl": []}
    for epoch in range(first.n_epochs):
        order = torch.from_numpy(np.stack([orders[i][epoch] for i in range(population)]))
        kl = []
        for start in range(0, n_samples, first.batch_size):
            index = order[:, start : start + first.batch_size]
            obs, actions, old_values, old_log_prob, advantages, returns = (
                tensor[rows, index] for tensor in data
            )
            mean = stacked_forward(steps[:n_pi], pi_tensors, obs)
            values = stacked_forward(steps[n_pi:], vf_tensors, obs).squeeze(-1)
            if first.normalize_advantage and advantages.shape[1] > 1:
                advantages = (advantages - advantages.mean(1, keepdim=True)) / (
                    advantages.std(1, keepdim=True) + 1e-8
                )
            settings = PPOLossSettings(clip_range, clip_range_vf, first.vf_coef, first.ent_coef)
            batch = PPOBatch(actions, old_values, old_log_prob, advantages, returns)
            loss, policy_loss, value_loss, entropy_loss, log_prob, ratio = ppo_loss(
                mean, values, log_std, batch, settings
            )
            with torch.no_grad():
                log_ratio = log_prob - old_log_prob
                logs["clip"].append(((ratio - 1).abs() > clip_range).float().mean(1))
                kl.append(((ratio - 1) - log_ratio).mean(1))
            logs["pg"].append(policy_loss)
            logs["value"].append(value_loss)
            logs["entropy"].append(entropy_loss)
            optimizer.zero_grad(set_to_none=False)
            loss.sum().backward()
            _clip_per_member(stacks, first.max_grad_norm)
            optimizer.step()
        logs["kl"] = kl
        for model in members:
            model._n_updates += 1
    _write_back(members, per_member, stacks, optimizer)
    columns = {key: torch.stack(values).numpy() for key, values in logs.items()}
    for i, model in enumerate(members):
        model.record_train(
            *(columns[key][:, i] for key in ("entropy", "pg", "value", "kl", "clip")),
            float(loss[i].detach()),
            clip_range,
            clip_range_vf,
        )


def _stacked_adam(
    members: Sequence[FastPPO], per_member: list[list[torch.Tensor]], stacks: list[torch.Tensor]
) -> torch.optim.Adam:
    """One Adam over the stacks, with the members' hyperparameters and moments."""
    group = {k: v for k, v in members[0].policy.optimizer.param_groups[0].items() if k != "params"}
    group.pop("initial_lr", None)
    group["foreach"] = True
    optimizer = torch.optim.Adam(stacks, **group)
    for j, stack in enumerate(stacks):
        states = [m.policy.optimizer.state.get(per_member[i][j]) for i, m in enumerate(members)]
        if not states[0]:
            continue
        optimizer.state[stack] = {
            "step": states[0]["step"].clone(),
            "exp_avg": torch.stack([s["exp_avg"] for s in states]),
            "exp_avg_sq": torch.stack([s["exp_avg_sq"] for s in states]),
        }
    return optimizer


def _clip_per_member(stacks: list[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` for each member: its own norm over all its gradients, its own factor
    (at most 1, as torch clamps it; a factor of exactly 1 changes nothing)."""
    norms = torch.stack([s.grad.flatten(1).norm(dim=1) for s in stacks]).norm(dim=0)
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    if bool((factor < 1).any()):
        for stack in stacks:
            stack.grad.mul_(factor.view(-1, *([1] * (stack.dim() - 1))))


def _write_back(
    members: Sequence[FastPPO],
    per_member: list[list[torch.Tensor]],
    stacks: list[torch.Tensor],
    optimizer: torch.optim.Adam,
) -> None:
    """Copy the stacks' values and Adam's moments back into each member."""
    with torch.no_grad():
        for j, stack in enumerate(stacks):
            state = optimizer.state[stack]
            for i, model in enumerate(members):
                param = per_member[i][j]
                param.copy_(stack[i])
                model.policy.optimizer.state[param] = {
                    "step": state["step"].clone(),
                    "exp_avg": state["exp_avg"][i].clone(),
                    "exp_avg_sq": state["exp_avg_sq"][i].clone(),
                }
