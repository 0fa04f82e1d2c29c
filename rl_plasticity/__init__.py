"""rl_plasticity: study and fix loss of plasticity in deep reinforcement learning.

Layers, bottom to top: pure math (``metrics.functional``), the torch core (``plasticity``),
SB3 glue (callbacks), experiment orchestration and the ``rlp`` command line.

What users reach for is importable from here (``from rl_plasticity import ContinualBackprop``);
each name is imported when first used (PEP 562), so ``import rl_plasticity`` loads neither torch
nor stable-baselines3.

The shipped environment presets are registered with gymnasium
(``gymnasium.make("rl_plasticity/SlipperyAnt-v0")``) as soon as both this package and gymnasium
are imported, in either order, without importing gymnasium here: importing a pure layer
(``rl_plasticity.validate``, ``metrics.functional``, ``plasticity.protocol``,
``nonstationary.schedules``) loads neither gymnasium nor SB3. Only the ``gym_id`` line of each
preset file is read. ``gymnasium.make("rl_plasticity:rl_plasticity/SlipperyAnt-v0")`` imports the
package itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from typing import Any

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
    # the method protocol: any registered method as a callback or inside the policy
    "Method": "rl_plasticity.plasticity.protocol",
    "register_method": "rl_plasticity.plasticity.protocol",
    "MethodCallback": "rl_plasticity.sb3.callbacks",
    "method_callback": "rl_plasticity.sb3.callbacks",
    "method_policy": "rl_plasticity.sb3.policies",
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
    "register_presets": "rl_plasticity.specs",
    "ConfigError": "rl_plasticity.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _register_presets() -> None:
    from rl_plasticity.specs import register_presets

    register_presets()


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """Registers the presets right after gymnasium is first imported (a one-shot import hook)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            _register_presets()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "gymnasium" in sys.modules:
    _register_presets()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
