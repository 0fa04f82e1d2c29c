"""Any registered plasticity method, from plain PyTorch, on a supervised stream of tasks.

The learner is what a user of the method protocol writes: an MLP (LeCun-uniform weights, zero
biases), a torch optimizer, and one method made by name (``make_method``), whose
``build_network``, ``wrap_optimizer`` and ``attach`` run in that order; the loop below is a plain
``zero_grad / backward / step`` loop, and the method acts through the optimizer's step hooks, as
for any user. Each task boundary is a context change (``on_context_change``), so reset,
injection and shrink-and-perturb at shifts act there.

The error of every minibatch is taken before the update on it (online error): squared error for
regression, the misclassified fraction for classification. One number per task comes back: the
task's mean online error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rl_plasticity.errors import ConfigError
from rl_plasticity.plasticity.init import lecun_uniform_
from rl_plasticity.plasticity.protocol import Method, make_method

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("squared", "cross_entropy")


@dataclass(frozen=True)
class ContinualLearner:
    """A network, its optimizer and an optional plasticity method.

    :param hidden: ReLU units per hidden layer; ``()`` is the linear learner
    :param optimizer: ``"sgd"`` (no momentum) or ``"adam"``
    :param step_size: the optimizer's learning rate
    :param weight_decay: the optimizer's coupled L2 penalty (``weight_decay``); 0 for none
    :param betas: Adam's betas
    :param batch_size: examples per update
    :param method: a registered method name, or None for plain backprop
    :param settings: the method's settings (its ``seed`` is the run's seed)
    :param architecture: a registered method whose ``build_network`` alone is applied first (a
        fresh network of CReLU's architecture: ``method="reset", architecture="crelu"``)
    :param architecture_settings: that method's settings (``{"width": "match_parameters"}``)
    """

    hidden: tuple[int, ...] = (100, 100)
    optimizer: str = "sgd"
    step_size: float = 0.01
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 16
    method: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    architecture: str | None = None
    architecture_settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "a positive int")


def build_mlp(
    num_inputs: int, hidden: tuple[int, ...], num_outputs: int, generator: torch.Generator
) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` with LeCun-uniform weights and zero biases.

    :param num_inputs: input features
    :param hidden: units per hidden layer (``()``: a single Linear)
    :param num_outputs: outputs
    :param generator: random source of the initial weights
    """
    layers: list[nn.Module] = []
    width = num_inputs
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, num_outputs))
    return lecun_uniform_(nn.Sequential(*layers), generator)


def build_learner(
    learner: ContinualLearner, num_inputs: int, num_outputs: int, seed: int
) -> tuple[nn.Module, torch.optim.Optimizer, Method | None]:
    """The network, its optimizer and the attached method of one run.

    :param learner: the learner's settings
    :param num_inputs: input features
    :param num_outputs: outputs (1 for regression, the classes for classification)
    :param seed: seeds the initial weights and the method's generator
    :return: ``(net, optimizer, method or None)``
    """
    net: nn.Module = build_mlp(
        num_inputs, learner.hidden, num_outputs, torch.Generator().manual_seed(seed)
    )
    method = None
    # Linears an architecture method resizes are drawn as nn.Linear draws, from torch's global
    # generator: seeded here (and the caller's stream left as it was) so a run is reproducible.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if learner.architecture is not None:
            architecture = make_method(learner.architecture, learner.architecture_settings)
            net = architecture.build_network(net)
        if learner.method is not None:
            method = make_method(learner.method, learner.settings)
            net = method.build_network(net)
    optimizer: torch.optim.Optimizer
    if learner.optimizer == "adam":
        optimizer = torch.optim.Adam(
            net.parameters(),
            lr=learner.step_size,
            betas=learner.betas,
            weight_decay=learner.weight_decay,
        )
    else:
        optimizer = torch.optim.SGD(
            net.parameters(), lr=learner.step_size, weight_decay=learner.weight_decay
        )
    if method is not None:
        optimizer = method.wrap_optimizer(optimizer)
        method.attach(net, optimizer, seed=seed)
    return net, optimizer, method


def online_task_errors(
    learner: ContinualLearner,
    tasks: Iterable[tuple[np.ndarray, np.ndarray]],
    num_inputs: int,
    num_outputs: int,
    seed: int,
    loss: str = "cross_entropy",
) -> np.ndarray:
    """Train ``learner`` online on ``tasks``; return each task's mean online error.

    :param learner: the learner's settings
    :param tasks: (inputs (n, num_inputs) float32, targets) per task: int64 labels for
        ``cross_entropy``, float32 values (n,) for ``squared``
    :param num_inputs: input features
    :param num_outputs: outputs of the network
    :param seed: the learner's seed (initial weights, the method's draws)
    :param loss: ``"cross_entropy"`` (error: misclassified fraction) or ``"squared"``
    :return: (num_tasks,) float64 mean online error per task
    """
    if loss not in LOSSES:
        raise ConfigError("loss", loss, f"one of {', '.join(LOSSES)}")
    net, optimizer, method = build_learner(learner, num_inputs, num_outputs, seed)
    loss_fn = nn.CrossEntropyLoss() if loss == "cross_entropy" else nn.MSELoss()
    errors: list[float] = []
    try:
        for task, (inputs, targets) in enumerate(tasks):
            if task > 0 and method is not None:
                method.on_context_change(task)
            x_task = torch.from_numpy(inputs)
            y_task = torch.from_numpy(targets)
            if loss == "squared":
                y_task = y_task.reshape(-1, 1)
            wrong = torch.zeros(())
            for start in range(0, len(x_task), learner.batch_size):
                x = x_task[start : start + learner.batch_size]
                y = y_task[start : start + learner.batch_size]
                output = net(x)
                batch_loss = loss_fn(output, y)
                with torch.no_grad():
                    if loss == "cross_entropy":
                        wrong += (output.argmax(dim=1) != y).sum()
                    else:
                        wrong += batch_loss.detach() * len(x)
                optimizer.zero_grad(set_to_none=False)
                batch_loss.backward()
                optimizer.step()
            errors.append(float(wrong) / len(x_task))
    finally:
        if method is not None:
            method.detach()
    return np.asarray(errors)
