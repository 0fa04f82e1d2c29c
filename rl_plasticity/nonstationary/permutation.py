"""Permuted observations and actions: a shift that keeps every phase equally hard.

At each change a new random permutation of the observation vector's entries (and, with
``signs``, a random sign per entry) is drawn; the task is the same task seen through a new
coordinate system, so a network trained from scratch on any phase faces the same problem, and a
fresh network is an exact per-phase reference (as in Online Permuted MNIST, and the permute shift
of Juliani & Ash 2024, "A study of plasticity loss in on-policy deep RL"). The action vector can
be permuted (and sign-flipped) the same way: the agent's action entry ``j`` drives actuator
``perm[j]``.

The permutation of segment ``k`` is a pure function of ``(seed words, k)``, like every piecewise
draw (see :mod:`.schedules`), so every sub-env, the evaluation env and a resumed run agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def signed_permutation(
    size: int, seed: Sequence[int], segment: int, signs: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The permutation and signs of one segment.

    :param size: length of the vector
    :param seed: the schedule's seed words (``(schedule_seed, drift index)``)
    :param segment: the segment (phase of this drift) index
    :param signs: draw a sign per entry (else every sign is +1)
    :return: ``(perm, sign)``: the transformed vector is ``sign * x[perm]``
    """
    rng = np.random.default_rng([*(int(s) for s in seed), int(segment)])
    perm = rng.permutation(size)
    sign = rng.choice(np.array([-1.0, 1.0]), size=size) if signs else np.ones(size)
    return perm, sign


class SignedPermutation:
    """Applies segment ``k``'s signed permutation to observation or action vectors.

    :param kind: ``"observation_permutation"`` or ``"action_permutation"``
    :param size: length of the vector
    :param seed: the schedule's seed words
    :param signs: flip signs too
    """

    def __init__(self, kind: str, size: int, seed: Sequence[int], signs: bool) -> None:
        self.kind, self.size, self.seed, self.signs = kind, int(size), tuple(seed), bool(signs)
        self.segment = -1
        self.perm = np.arange(self.size)
        self.sign = np.ones(self.size)
        self.inverse = np.arange(self.size)

    def apply(self, value: float) -> None:
        """Take segment ``int(value)``'s permutation (the schedule's value is the segment index).

        :param value: the segment index
        """
        self.segment = int(value)
        self.perm, self.sign = signed_permutation(self.size, self.seed, self.segment, self.signs)
        self.inverse = np.argsort(self.perm)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        """``sign * obs[perm]`` in the observation's dtype.

        :param obs: the env's observation
        """
        return (self.sign * obs[self.perm]).astype(obs.dtype, copy=False)

    def action(self, action: np.ndarray) -> np.ndarray:
        """The env's action for the agent's ``action``: agent entry ``j`` drives env entry
        ``perm[j]``, with its sign (the inverse of :meth:`observation`'s map).

        :param action: the agent's action
        """
        action = np.asarray(action)
        out = np.empty_like(action)
        out[self.perm] = self.sign * action
        return out
