"""Permuted digits: Online Permuted MNIST (Dohare et al. 2024) on scikit-learn's 8x8 digits.

Problem (the small cousin of the Nature paper's Online Permuted MNIST, Fig. 1 and Extended Data
Fig. 1: each task is the same images with a fixed random permutation of the pixels, every image
seen once per task, no task boundary given to the learner but the data). Here the images are
scikit-learn's bundled 8x8 handwritten digits (``sklearn.datasets.load_digits``: 1,797 images, 64
pixels with values 0..16, 10 classes; shipped inside the package, so nothing is downloaded),
scaled to [0, 1]. Task ``t`` draws one permutation of the 64 pixels and one order of the 1,797
images; the learner sees the task's images once, in that order, in minibatches, and its online
error (the fraction of each minibatch it misclassifies before updating on it) is recorded.

A task is short (1,797 examples against MNIST's 60,000), so a run of a few hundred tasks costs
seconds; the cost is that the images are few and coarse, so the absolute errors are not MNIST's.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import numpy as np

from rl_plasticity.errors import ConfigError

#: pixels per image and classes of the digits data
NUM_PIXELS = 64
NUM_CLASSES = 10


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: (1797, 64) float32 pixels in [0, 1] and (1797,) int64 labels.

    :raises ImportError: when scikit-learn is not installed, naming the package to install
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("permuted digits needs scikit-learn: pip install scikit-learn") from exc
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


class PermutedDigits:
    """The stream of tasks of one run; a pure function of the seed.

    Permutations and image orders come from two independent random streams spawned from
    ``seed``, so every learner given the same seed sees exactly the same examples, and a run of
    fewer tasks is a prefix of a longer one.

    :param seed: the run's seed
    :param examples_per_task: images per task, at most 1,797 (all of them, each once: default)
    :param permute_first: permute the pixels of the first task too (the paper's first task is a
        permutation like every other); False keeps the images as they are for task 0
    """

    def __init__(
        self, seed: int, examples_per_task: int | None = None, permute_first: bool = True
    ) -> None:
        images, _ = digits()
        if examples_per_task is None:
            examples_per_task = len(images)
        if not 0 < examples_per_task <= len(images):
            raise ConfigError(
                "examples_per_task", examples_per_task, f"an int in [1, {len(images)}]"
            )
        self.seed = seed
        self.examples_per_task = examples_per_task
        self.permute_first = permute_first
        self._permutation_seed, self._order_seed = np.random.SeedSequence(seed).spawn(2)

    def tasks(self, num_tasks: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The first ``num_tasks`` tasks.

        :return: iterator of (inputs (n, 64) float32, labels (n,) int64), n = examples_per_task
        """
        images, labels = digits()
        permutations = np.random.default_rng(self._permutation_seed)
        orders = np.random.default_rng(self._order_seed)
        for task in range(num_tasks):
            permutation = permutations.permutation(NUM_PIXELS)
            if task == 0 and not self.permute_first:
                permutation = np.arange(NUM_PIXELS)
            order = orders.permutation(len(images))[: self.examples_per_task]
            yield images[order][:, permutation], labels[order]
