"""PopulationPPO: the seeds of one FastPPO agent trained in lockstep in one process.

The engine's core (:mod:`rl_plasticity.sb3.engine_core`: the rollout and the update written once
with a member dimension) run with one member per seed; this module says which members form a
population and whether an update can be batched, and runs each member's work with that member's
random states, catching its errors. Each member is an ordinary
:class:`~rl_plasticity.sb3.fast_ppo.FastPPO` model (its own env, rollout buffer, policy, Adam,
logger and callbacks), so it saves, loads (``PPO.load`` reads its files), checkpoints and is
measured exactly as a single run. What the population shares is the arithmetic
that costs a fixed price per call, whatever its size:

* **Rollouts.** At every step the P members' batch-1 policy calls (actor and critic) are one
  batched product per layer (``torch.baddbmm`` over a member dimension, on stacks of the
  members' live parameters). Each member then draws its action noise from its own torch
  generator (the draws a single run makes, in the same order), steps its own env and calls its
  own callbacks, as ``FastPPO.collect_rollouts`` does.
* **Updates.** When the members share their settings and everything that watches their update
  has a batched form (``sb3/batched_update.py``: plasticity methods with a population form, such
  as CBP, L2-init and reset; the metrics callback), ``train()`` runs for all members at once
  (``member_stacks.UpdateStacks``): each member's minibatches (its own permutation, drawn from
  its own numpy generator, as SB3 draws it), one batched forward and backward through stacked
  parameters, the methods' terms, gradient clipping per member (its own norm), one Adam over the
  stacks, which is per-member Adam (Adam is elementwise; every member has taken the same number
  of steps), then the methods' after-step work on the stacks. Parameters and Adam's moments are
  copied back into the members afterwards, and each member's metrics callback gets its gradient
  norms. Otherwise each member runs its own ``FastPPO.train`` in turn
  (:attr:`PopulationPPO.update_mode` says which, and why).

Per member, and what falls back to a loop over members:

===============================================  ===============================================
Work                                             How
===============================================  ===============================================
actor and critic forward in a rollout            batched over members
action noise, log-probability, env step,         per member (its own generator, env, callbacks)
callbacks, rollout buffer
bootstrap value of a truncated episode           per member (rare)
update, settings shared, watchers batchable      batched over members; clipping per member
methods' per-step work (CBP's utilities and      batched over members, on member stacks
ages, L2-init's pull)
CBP's replacements                               per member, on views of the stacks and of its
                                                 slice of Adam's state (its own generator)
update with a method without a population        per member (``FastPPO.train``), said in
form, another hook, target_kl, or settings       ``update_mode``
that differ
===============================================  ===============================================

Random state: every member keeps torch's, numpy's and Python's global generator states as its own
and has them in place whenever its code runs that could draw from them (rollout start and end,
where checkpoints are written; its update; its action noise, torch's, at every step). A callback
that draws from numpy's or Python's global generator at every step of a rollout draws from a
stream the members share (swapping numpy's state costs more than a step); the shipped callbacks
do not.

Equivalence to single runs: from the same state, a member's rollout buffer and its parameters
and Adam moments after one ``train()`` equal the single FastPPO's within float rounding
(``tests/test_population_ppo.py``; with the study's methods and the metrics callback, also their
state: ``tests/test_population_methods.py``; batched products round differently from single ones,
about 1e-6 in an action). In a chaotic environment such differences grow (HalfCheetah's observations
part after tens of steps), so a member and the single run of its seed are alike in distribution,
not step by step: ``bench/bench_population.py --equivalence`` compares their returns over seeds
(``bench/results/population_equivalence.md``).
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
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.sb3.batched_update import batched_update_reason, watchers
from rl_plasticity.sb3.engine_core import collect_rollouts, ppo_update
from rl_plasticity.sb3.fast_ppo import FastPPO
from rl_plasticity.sb3.member_stacks import UpdateStacks, policy_steps


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


def ppo_population_reason(members: Sequence[FastPPO]) -> str | None:
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
    pi, vf = policy_steps(model)
    return [(_function_key(f), tuple(t.shape for t in tensors)) for f, tensors in pi + vf]


def _function_key(function: Callable) -> str:
    owner = getattr(function, "__self__", None)
    return type(owner).__name__ if isinstance(owner, nn.Module) else function.__name__


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
    :raises ConfigError: when the models cannot train as one population
        (:func:`ppo_population_reason`)
    """

    def __init__(
        self,
        members: Sequence[FastPPO],
        random_states: Sequence[MemberRandom] | None = None,
        verbose: int = 0,
    ) -> None:
        reason = ppo_population_reason(members)
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
        #: each member's callback as its ``learn`` bound it (set by :meth:`learn`)
        self._bound: list[BaseCallback | None] = [None] * len(self.members)

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

    def as_member(self, k: int, work: Callable[[], Any]) -> Any:
        """Run ``work`` with member ``k``'s global random states in place (and keep what it
        drew): for anything that draws or saves them on the member's behalf, such as a final
        checkpoint. Errors propagate.

        :param k: the member's index
        :param work: called without arguments
        :return: what ``work`` returns
        """
        self.random[k].install()
        try:
            return work()
        finally:
            self.random[k] = MemberRandom.capture()

    def run(self, k: int, work: Callable[..., Any], *args: Any, step: bool = False) -> Any:
        """``work(*args)`` on member ``k``'s behalf, for the engine's core: with its random
        states in place; if it raises, member ``k`` is recorded in :attr:`errors` (with the
        traceback as ``__traceback_text__``) and False returned.

        :param k: the member's index
        :param work: what to run
        :param args: its arguments
        :param step: the per-step body: only torch's generator is swapped (the action noise;
            swapping numpy's state costs more than a step)
        :return: what ``work`` returns, or False
        """
        state = self.random[k]
        if step:
            torch.set_rng_state(state.torch_state)
        else:
            state.install()
        try:
            return work(*args)
        except Exception as error:
            error.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.errors[k] = error
            return False
        finally:
            if step:
                state.torch_state = torch.get_rng_state()
            else:
                self.random[k] = MemberRandom.capture()

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
        self._bound = bound
        for k, model in enumerate(self.members):

            def setup(model: FastPPO = model, k: int = k) -> None:
                ends[k], bound[k] = model._setup_learn(totals[k], callbacks[k], resets[k], "PPO")
                bound[k].on_training_start(locals(), globals())

            self.run(k, setup)
        iterations = [0] * n
        running = [
            k for k in range(n) if k not in self.errors and self.members[k].num_timesteps < ends[k]
        ]
        while running:
            members = [self.members[k] for k in running]
            running = collect_rollouts(members, [bound[k] for k in running], self, running)
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
                self.run(k, cb.on_training_end)
        return self

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
        found = [watchers(self._bound[k]) for k in ks]
        reason = batched_update_reason(members, found)
        mode = "batched" if reason is None else f"per member: {reason}"
        if mode != self.update_mode and self.verbose >= 1:
            print(f"PopulationPPO updates {mode}")
        self.update_mode = mode
        if reason is not None:
            for k, model in zip(ks, members, strict=True):
                self.run(k, model.train)
            return
        orders = []
        for k, model in zip(ks, members, strict=True):
            n_samples = model.rollout_buffer.buffer_size * model.rollout_buffer.n_envs

            def draw(model: FastPPO = model, n: int = n_samples) -> list[np.ndarray]:
                # The permutations RolloutBuffer.get would draw, one per epoch, in order.
                return [np.random.permutation(n) for _ in range(model.n_epochs)]

            orders.append(self.as_member(k, draw))

        def permutation(epoch: int) -> torch.Tensor:
            return torch.from_numpy(np.stack([order[epoch] for order in orders]))

        try:
            stacks = UpdateStacks(members, [w.methods for w in found], [w.metrics for w in found])
            ppo_update(members, stacks, permutation)
        except Exception as error:  # not one member's fault: every member of the update stops
            error.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.errors.update(dict.fromkeys(ks, error))
