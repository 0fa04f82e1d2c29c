"""rl_plasticity: study and fix loss of plasticity in deep reinforcement learning.

Layers, bottom to top: pure math (``validate``, ``metrics.functional``,
``nonstationary.schedules``), the torch core (``plasticity``: one file per method), SB3 glue
(``sb3``), experiment orchestration (``specs``, ``experiment``, ``sweep``, ``report``) and the
``rlp`` command line (``cli``). Import
each name from the module that defines it; the README's "Usage" lists the ones users reach for.
This file imports nothing of the package, so importing a pure layer loads neither gymnasium nor
SB3.

The shipped environment presets (``rl_plasticity/SlipperyAnt-v0``, ...) are registered with
gymnasium by ``rl_plasticity.specs.register_presets()``, and here when gymnasium is imported
already: so ``gymnasium.make("rl_plasticity:rl_plasticity/SlipperyAnt-v0")`` (gymnasium imports
the package named before the colon) and RL Zoo's ``--gym-packages rl_plasticity`` find them.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

if "gymnasium" in sys.modules:
    from rl_plasticity.specs.presets import register_presets

    register_presets()
