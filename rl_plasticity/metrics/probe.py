"""Plasticity probe (Lyle, Rowland & Dabney 2022, "Understanding and preventing capacity loss").

How well can the network still fit something new? A copy of it is trained for ``steps`` Adam
steps to fit a new random function of recent inputs; the error it reaches is the probe. Lower
means more plastic.

Scale-free by construction, so that it measures plasticity and not the size of the outputs:

- the targets are the outputs of a *fresh* random network of the same architecture (every
  module with ``reset_parameters`` re-drawn), standardized per output to mean 0 and variance 1,
  then multiplied by the network's own output scale (per output, the standard deviation of
  ``f_0(x)`` over the inputs): a value head whose returns vary by hundreds gets targets that
  vary by hundreds, a policy head near 0 small ones;
- the copy fits them as an *offset* from its own starting output, ``f(x) - f_0(x)`` (``f_0`` the
  network as given), so the error starts at exactly 1;
- the error is the mean squared error divided by the targets' mean square.

So 1 means nothing was learned in ``steps`` steps and 0 a perfect fit; a constant shift of the
outputs leaves the probe unchanged exactly, and scaling the output layer by 100 or 0.01 moves it
far less than it moved the old probe (fitting i.i.d. unit noise on the raw outputs scored a value
head by how far its outputs are from 0: about ``1 + mean(f_0^2)``). An output that is constant
over the inputs takes the mean scale of the other outputs (1 if every output is constant). The
original network is not touched.

Torch core: no SB3.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _fresh_targets(network: nn.Module, inputs: torch.Tensor, seed: int) -> torch.Tensor:
    """Standardized outputs of a re-initialized copy of ``network`` on ``inputs``."""
    fresh = copy.deepcopy(network)
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    with torch.no_grad():
        outputs = fresh(inputs).reshape(inputs.shape[0], -1)
    centred = outputs - outputs.mean(dim=0)
    scale = centred.std(dim=0)
    if not bool((scale > 0).any()):
        raise ValueError(
            "probe_loss: a re-initialized copy of the network gives the same output for every "
            "input (no module with reset_parameters, or a constant network); nothing to fit"
        )
    return torch.where(scale > 0, centred / scale.clamp_min(1e-12), 0.0)


def _output_scale(outputs: torch.Tensor) -> torch.Tensor:
    """Per output, the standard deviation over the inputs (constant outputs: the others' mean)."""
    scale = outputs.std(dim=0)
    varying = scale > 0
    fallback = scale[varying].mean() if bool(varying.any()) else torch.ones((), device=scale.device)
    return torch.where(varying, scale, fallback)


def probe_loss(
    network: nn.Module,
    inputs: torch.Tensor,
    steps: int = 100,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Normalized error reached by a copy of ``network`` trained to fit a fresh random network
    (scaled to the network's own output scale; see the module docstring).

    :param network: maps ``inputs`` to an output tensor; it is deep-copied, never modified
    :param inputs: recent inputs, ``n x ...`` (``n >= 2``)
    :param steps: Adam steps on minibatches
    :param lr: Adam learning rate
    :param batch_size: minibatch size (capped at ``n``)
    :param seed: seed of the target network and the minibatches (the global RNG is not touched)
    :return: mean squared error of the copy's offset ``f(x) - f_0(x)`` from the targets, over
        all ``inputs``, divided by the targets' mean square: 1 at the start, 0 for a perfect fit
    """
    inputs = inputs.detach()
    n = inputs.shape[0]
    learner = copy.deepcopy(network)
    learner.train()
    for p in learner.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        start = learner(inputs).reshape(n, -1).clone()
    targets = _fresh_targets(network, inputs, seed) * _output_scale(start)
    norm = targets.pow(2).mean()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(learner.parameters(), lr=lr)
    batch_size = min(batch_size, n)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(0, n, (batch_size,), generator=generator).to(inputs.device)
            offset = learner(inputs[idx]).reshape(batch_size, -1) - start[idx]
            loss = nn.functional.mse_loss(offset, targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        offset = learner(inputs).reshape(n, -1) - start
        return float(nn.functional.mse_loss(offset, targets) / norm)
