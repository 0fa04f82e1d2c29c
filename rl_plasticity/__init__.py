"""rl_plasticity: study and fix loss of plasticity in deep reinforcement learning.

Layers, bottom to top: pure math (``metrics.functional``), the torch core (``plasticity``),
SB3 glue (callbacks), experiment orchestration and the ``rlp`` command line.

What users reach for is importable from here (``from rl_plasticity import ContinualBackprop``);
each name is imported when first used (PEP 562), so ``import rl_plasticity`` loads neither torch
nor stable-baselines3.

Importing the package registers the shipped environment presets with gymnasium
(``gymnasium.make("rl_plasticity/SlipperyAnt-v0")``); that needs gymnasium, and only the
``gym_id`` line of each preset file is read. Where the package is not imported first,
``gymnasium.make("rl_plasticity:rl_plasticity/SlipperyAnt-v0")`` imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

from rl_plasticity.specs import register_presets

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    # SB3 callbacks
    "PlasticityMetrics": "rl_plasticity.metrics.callback",
    "ContinualBackprop": "rl_plasticity.plasticity.callbacks",
    "ReDo": "rl_plasticity.plasticity.callbacks",
    "ShrinkAndPerturb": "rl_plasticity.plasticity.callbacks",
    "L2Init": "rl_plasticity.plasticity.callbacks",
    "Reset": "rl_plasticity.plasticity.callbacks",
    # torch cores and optimizers, for any nn.Module
    "CBP": "rl_plasticity.plasticity.cbp",
    "DormantReset": "rl_plasticity.plasticity.redo",
    "ShrinkPerturb": "rl_plasticity.plasticity.snp",
    "L2InitPenalty": "rl_plasticity.plasticity.l2init",
    "ShrinkPerturbAdam": "rl_plasticity.plasticity.optimizers",
    "L2InitAdam": "rl_plasticity.plasticity.optimizers",
    # nonstationary environments
    "NonstationaryWrapper": "rl_plasticity.nonstationary.wrapper",
    "NonstationaryConfig": "rl_plasticity.nonstationary.config",
    # specs and errors
    "load_env_spec": "rl_plasticity.specs",
    "load_agent_spec": "rl_plasticity.specs",
    "ConfigError": "rl_plasticity.errors",
}

__all__ = [*_EXPORTS, "__version__", "register_presets"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


register_presets()
