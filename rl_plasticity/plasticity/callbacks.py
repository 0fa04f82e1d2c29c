"""The SB3 callbacks under their version 0.1 names; they live in :mod:`rl_plasticity.sb3.callbacks`.

``ContinualBackprop`` is ``CBPCallback``, ``ReDo`` is ``ReDoCallback``, ``ShrinkAndPerturb`` is
``ShrinkPerturbCallback``, ``L2Init`` is ``L2InitCallback`` and ``Reset`` is ``ResetCallback``:
each is the one generic :class:`~rl_plasticity.sb3.callbacks.MethodCallback` bound to a method.
"""

from __future__ import annotations

from rl_plasticity.plasticity.reset import RESET_INITS
from rl_plasticity.sb3.callbacks import MethodCallback, callback_class, updates_in_run

ContinualBackprop = callback_class("cbp")
ReDo = callback_class("redo")
ShrinkAndPerturb = callback_class("snp")
L2Init = callback_class("l2init")
Reset = callback_class("reset")
#: The base class of version 0.1's callbacks.
PlasticityCallback = MethodCallback

__all__ = [
    "RESET_INITS",
    "ContinualBackprop",
    "L2Init",
    "PlasticityCallback",
    "ReDo",
    "Reset",
    "ShrinkAndPerturb",
    "updates_in_run",
]
