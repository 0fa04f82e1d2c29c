"""Seeds derived from a run's seed: common random numbers across agents.

A run's randomness (environment, schedule, initial network, a method's own generator) derives
from its seed alone, so two agents run with one seed differ only where their specs differ.
Nothing here draws from a global random stream: a derived seed is a pure function of the seed and
a stream name, and reading ``torch.initial_seed()`` does not advance torch's generator.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, stream: str) -> int:
    """A seed for one named stream of randomness of a run, independent of the others.

    ``derive_seed(3, "method")`` is the same in every process and every agent run with seed 3.

    :param seed: the run's seed (>= 0)
    :param stream: what the seed is for (``"method"``, ``"schedule"``, ...)
    :return: an integer in ``[0, 2**63)``
    """
    words = [int(seed), zlib.crc32(stream.encode())]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def torch_seed() -> int:
    """The seed torch's global generator was seeded with (``torch.manual_seed``, SB3's
    ``set_random_seed``), read without drawing from it.

    :return: ``torch.initial_seed()``
    """
    import torch

    return int(torch.initial_seed())
