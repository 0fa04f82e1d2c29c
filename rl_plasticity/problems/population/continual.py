"""Supervised streams of tasks (permuted digits) for many seeds at once: backprop and L2.

Member k is the single learner of ``problems.continual.online_task_errors`` run with seed
``seeds[k]`` on member k's own task stream: it starts from ``build_learner``'s network for that
seed (LeCun-uniform weights drawn from ``torch.Generator().manual_seed(seed)``, zero biases),
takes each minibatch's error before the update on it, and updates with plain SGD (``weight_decay``
as ``torch.optim.SGD`` applies it) on the minibatch's mean loss. The members' errors equal the
single learners' within float rounding (``tests/test_population.py``).

Batched over members: the forward, the loss (each member's own mean), the backward and the SGD
step (one multi-tensor add over the stacked parameters). Nothing loops per member. Plasticity
methods (CBP, resets, ...) and Adam are not supported here (a ``ConfigError`` says so): the
regression's population (:mod:`rl_plasticity.problems.population.regression`) has CBP and
shrink-and-perturb; the digits table runs those as single learners.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from rl_plasticity.errors import ConfigError
from rl_plasticity.problems.continual import LOSSES, ContinualLearner, build_learner
from rl_plasticity.problems.population.network import PopulationMLP


def continual_population_reason(learner: ContinualLearner) -> str | None:
    """Why ``learner`` cannot run as a population here (None when it can).

    :param learner: the learners' settings
    """
    if learner.method is not None or learner.architecture is not None:
        return f"method {learner.method or learner.architecture} (only backprop and L2 here)"
    if learner.optimizer != "sgd":
        return f"optimizer {learner.optimizer} (only SGD here)"
    return None


def population_task_errors(
    learner: ContinualLearner,
    streams: Sequence[Iterable[tuple[np.ndarray, np.ndarray]]],
    num_inputs: int,
    num_outputs: int,
    seeds: Sequence[int],
    loss: str = "cross_entropy",
) -> np.ndarray:
    """Each member's mean online error per task, as ``online_task_errors`` gives it for one seed.

    :param learner: the learners' settings (no method, SGD: see :func:`continual_population_reason`)
    :param streams: member k's tasks, (inputs (n, num_inputs) float32, targets) each; every
        member's k-th task has the same size
    :param num_inputs: input features
    :param num_outputs: outputs of the network
    :param seeds: member k's seed (its initial network)
    :param loss: ``"cross_entropy"`` (error: misclassified fraction) or ``"squared"``
    :return: (len(seeds), num_tasks) float64 mean online errors
    :raises ConfigError: for an unsupported learner or loss, or streams not one per seed
    """
    reason = continual_population_reason(learner)
    if reason is not None:
        raise ConfigError("learner", learner.method or learner.optimizer, f"a population: {reason}")
    if loss not in LOSSES:
        raise ConfigError("loss", loss, f"one of {', '.join(LOSSES)}")
    if len(streams) != len(seeds) or not seeds:
        raise ConfigError("streams", len(streams), f"one task stream per seed ({len(seeds)})")
    members = [build_learner(learner, num_inputs, num_outputs, seed)[0] for seed in seeds]
    network = PopulationMLP.from_members(members)
    params = list(network.parameters())
    errors: list[torch.Tensor] = []
    for tasks in zip(*streams, strict=True):
        x_task = torch.from_numpy(np.stack([inputs for inputs, _ in tasks]))
        y_task = torch.from_numpy(np.stack([targets for _, targets in tasks]))
        wrong = torch.zeros(len(seeds), dtype=torch.float64)
        for start in range(0, x_task.shape[1], learner.batch_size):
            x = x_task[:, start : start + learner.batch_size]
            y = y_task[:, start : start + learner.batch_size]
            output = network(x)
            if loss == "cross_entropy":
                # Each member's mean over its minibatch, as nn.CrossEntropyLoss takes it.
                member_loss = F.cross_entropy(output.transpose(1, 2), y, reduction="none").mean(1)
                with torch.no_grad():
                    wrong += (output.argmax(dim=2) != y).sum(1)
            else:
                member_loss = ((output.squeeze(-1) - y) ** 2).mean(1)
                wrong += member_loss.detach() * x.shape[1]
            for param in params:
                param.grad = None
            member_loss.sum().backward()
            with torch.no_grad():
                # torch.optim.SGD's step: g + weight_decay * theta, then theta - step_size * g.
                grads = [param.grad for param in params]
                if learner.weight_decay != 0:
                    grads = torch._foreach_add(grads, params, alpha=learner.weight_decay)
                torch._foreach_add_(params, grads, alpha=-learner.step_size)
        errors.append(wrong / x_task.shape[1])
    return torch.stack(errors, dim=1).numpy()
