"""Plasticity methods: one protocol (``protocol.Method``), one file per method, torch only.

Methods, each registered under its spec name: ``cbp.CBP``, ``redo.ReDo``, ``snp.ShrinkPerturb``,
``l2init.L2Init``, ``reset.Reset`` (see ``protocol`` for the hooks and how to add one). Their SB3
callbacks live in ``rl_plasticity.sb3.callbacks`` (``CBPCallback``, ... and the version 0.1 names
``ContinualBackprop``, ``ShrinkAndPerturb``, ``Reset``, ``L2Init``, ``ReDo``, importable from
here). Optimizer classes SB3 takes through ``policy_kwargs`` (``optimizers``):
``ShrinkPerturbAdam``, ``L2InitAdam``.

The registries ``METHODS`` (name -> callback class, for an agent spec's ``[method] name``) and
``OPTIMIZERS`` (name -> optimizer class) are imported lazily, so plain-PyTorch users of the torch
core never import SB3.
"""

from __future__ import annotations

from typing import Any


def _methods() -> dict[str, type]:
    from rl_plasticity.sb3.callbacks import callback_classes

    return callback_classes()


def _optimizers() -> dict[str, type]:
    import torch

    from rl_plasticity.plasticity.optimizers import L2InitAdam, ShrinkPerturbAdam

    return {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
        "snp_adam": ShrinkPerturbAdam,
        "l2init_adam": L2InitAdam,
    }


#: The SB3 callbacks, importable from here: ``from rl_plasticity.plasticity import ReDo``.
CALLBACKS = ("ContinualBackprop", "ShrinkAndPerturb", "Reset", "L2Init", "ReDo")


def __getattr__(name: str) -> Any:
    if name == "METHODS":
        return _methods()
    if name == "OPTIMIZERS":
        return _optimizers()
    if name in CALLBACKS:
        from rl_plasticity.plasticity import callbacks

        return getattr(callbacks, name)  # version 0.1 names, loaded on use
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
