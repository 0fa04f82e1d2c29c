"""What the speed benchmarks share: PPO with the paper's settings, from ``agents/ppo.toml``, and
the interleaved measurement loop.

SB3 is imported only by :func:`paper_ppo`, so the regression benchmark (no SB3) stays light.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from stable_baselines3 import PPO

Variant = TypeVar("Variant")


def paper_ppo(env_id: str = "HalfCheetah-v5", seed: int = 0) -> PPO:
    """The shipped ``ppo`` agent (Dohare et al. 2024's settings) on a stationary ``env_id``."""
    from rl_plasticity.experiment.build import build_model, make_vec_env
    from rl_plasticity.specs import EnvSpec, load_agent_spec

    agent = load_agent_spec("ppo")
    env = EnvSpec(name=env_id, path=Path(), env_id=env_id)
    return build_model(agent, make_vec_env(env, agent), seed, "cpu")


def interleaved(
    variants: Sequence[Variant],
    repeats: int,
    measure: Callable[[Variant, int], float],
    unit: str | None = None,
) -> dict[Variant, list[float]]:
    """``measure(variant, repeat)`` for every variant in turn, repeat after repeat.

    Interleaving makes a change of machine load hit every variant alike, which is what lets a
    ratio between variants mean something on a shared machine.

    :param variants: what to measure; the first is the reference of :func:`medians`
    :param repeats: rounds over all variants
    :param measure: the measurement, called with the variant and the round's index
    :param unit: print each measurement with this unit as it is taken (None: silent)
    :return: variant -> one measurement per round
    """
    rates: dict[Variant, list[float]] = {v: [] for v in variants}
    for repeat in range(repeats):
        for variant in variants:
            rates[variant].append(measure(variant, repeat))
            if unit is not None:
                print(
                    f"repeat {repeat} {variant!s:18s} {rates[variant][-1]:7.0f} {unit}", flush=True
                )
    return rates


def medians(rates: dict[Variant, list[float]]) -> dict[Variant, tuple[float, float]]:
    """Per variant, the median of its measurements and its ratio to the first variant's."""
    base = statistics.median(next(iter(rates.values())))
    return {v: (statistics.median(x), statistics.median(x) / base) for v, x in rates.items()}


def emit(lines: Sequence[str], out: Path | None, doc: str | None) -> None:
    """Print a benchmark's result lines, and write them under its docstring to ``out`` if given.

    :param lines: the result (Markdown lines)
    :param out: the results file, or None
    :param doc: the benchmark module's docstring (what was measured and the command)
    """
    text = "\n".join(lines)
    print("\n" + text)
    if out is not None:
        out.write_text((doc or "") + "\n" + text + "\n")
