"""Faster engines that are Stable-Baselines3 algorithms: ``FastPPO`` (``sb3.fast_ppo``).

Import it from here (``from rl_plasticity.sb3 import FastPPO``); SB3 and torch are loaded only
when it is first asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FastPPO"]


def __getattr__(name: str) -> Any:
    if name == "FastPPO":
        from rl_plasticity.sb3.fast_ppo import FastPPO

        return FastPPO
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
