"""Schedules: what value a drifting parameter has at a global step.

Every schedule is a pure function ``schedule.at(seed, step)``: the value of a piecewise schedule's
segment ``k`` is drawn from a generator seeded with ``(*seed, k)`` alone, so any process (each
worker of a SubprocVecEnv, the evaluation env, a resumed run) computes the same value without
shared state or messages. ``step`` is the global environment step (SB3's ``num_timesteps``); the
wrapper passes ``seed = (schedule_seed, drift index)`` so that two drifts draw independently.

Kinds:

- :class:`Piecewise`: a new value every ``every`` steps (segment ``k`` covers steps
  ``[k * every, (k + 1) * every)``), drawn log-uniformly or uniformly from ``[low, high]`` or cycled
  from a list (in the listed order, or in an order drawn once from the seed and kept for every
  cycle: ``"shuffled-cycle"``). The paper's Slippery Ant is ``Piecewise(every=2_000_000,
  sample="log-uniform", low=0.02, high=2.0)``.
- :class:`Linear`: from ``start`` to ``end`` over ``over`` steps, then ``end``.
- :class:`Sinusoid`: ``mean + amplitude * sin(2 pi step / period)``.
- :class:`Constant`: one value for ever.

A value is a float, or a 3-vector (tuple) for a vector quantity such as gravity (only ``cycle``
values, ``initial`` and ``Constant.value`` may be vectors).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary.toml_reads import check_keys, choice, integer, is_number, number

Value = float | tuple[float, ...]
Seed = int | Sequence[int]

SAMPLES = ("log-uniform", "uniform", "cycle", "shuffled-cycle", "permutation")


def _seed_words(seed: Seed) -> list[int]:
    return [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]


@dataclass(frozen=True)
class Piecewise:
    """A constant value per segment of ``every`` steps; a new value at each segment start.

    :param every: segment length in global steps (>= 1)
    :param sample: ``"log-uniform"`` or ``"uniform"`` (draw from ``[low, high]``), ``"cycle"``
        (segment ``k`` takes ``values[k % len(values)]``), ``"shuffled-cycle"`` (the same, through
        the values in an order drawn from the seed alone, one order for every cycle: each seed of
        a study its own order, every cycle the same physics in the same order), or
        ``"permutation"`` (the value is the
        segment index ``k``, from which the permutation drifts draw segment ``k``'s permutation:
        see :mod:`.permutation`)
    :param low: lower end of the range (``log-uniform`` needs ``low > 0``)
    :param high: upper end of the range
    :param values: the values to cycle through
    :param initial: the value of segment 0 instead of a draw (None: segment 0 is drawn too)
    """

    every: int
    sample: str = "log-uniform"
    low: float | None = None
    high: float | None = None
    values: tuple[Value, ...] = ()
    initial: Value | None = None

    kind: ClassVar[str] = "piecewise"
    continuous: ClassVar[bool] = False

    def segment(self, step: int) -> int:
        """Index of the segment holding ``step`` (steps before 0 belong to segment 0)."""
        return max(int(step), 0) // self.every

    def segment_value(self, seed: Seed, k: int) -> Value:
        """Value of segment ``k``: a function of ``(seed, k)`` only.

        :param seed: the schedule's seed (an int or a sequence of ints, all >= 0)
        :param k: segment index
        """
        if k == 0 and self.initial is not None:
            return self.initial
        if self.sample == "cycle":
            return self.values[k % len(self.values)]
        if self.sample == "shuffled-cycle":
            order = np.random.default_rng(_seed_words(seed)).permutation(len(self.values))
            return self.values[int(order[k % len(self.values)])]
        if self.sample == "permutation":
            return float(k)
        rng = np.random.default_rng([*_seed_words(seed), k])
        if self.sample == "log-uniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def at(self, seed: Seed, step: int) -> Value:
        """Value at global step ``step``.

        :param seed: the schedule's seed
        :param step: global step
        """
        return self.segment_value(seed, self.segment(step))

    def next_change(self, step: int) -> int:
        """First step after ``step`` at which a new segment starts."""
        return (self.segment(step) + 1) * self.every

    def to_dict(self) -> dict:
        """The schedule as a ``[...schedule]`` table (inverse of :func:`schedule_from_dict`)."""
        d: dict = {"kind": self.kind, "every": self.every, "sample": self.sample}
        if self.sample in ("cycle", "shuffled-cycle"):
            d["values"] = [_plain(v) for v in self.values]
        elif self.sample != "permutation":
            d["low"], d["high"] = self.low, self.high
        if self.initial is not None:
            d["initial"] = _plain(self.initial)
        return d


@dataclass(frozen=True)
class Linear:
    """Linear drift from ``start`` (at step 0) to ``end`` (at step ``over``), then constant.

    :param start: value at step 0
    :param end: value from step ``over`` on
    :param over: number of steps the drift takes (>= 1)
    """

    start: float
    end: float
    over: int

    kind: ClassVar[str] = "linear"
    continuous: ClassVar[bool] = True

    def at(self, seed: Seed, step: int) -> float:
        """Value at global step ``step`` (``seed`` is unused: the drift is deterministic)."""
        fraction = min(max(step, 0) / self.over, 1.0)
        return self.start + (self.end - self.start) * fraction

    def to_dict(self) -> dict:
        """The schedule as a ``[...schedule]`` table."""
        return {"kind": self.kind, "start": self.start, "end": self.end, "over": self.over}


@dataclass(frozen=True)
class Sinusoid:
    """``mean + amplitude * sin(2 pi step / period)``.

    :param mean: the centre value
    :param amplitude: the largest deviation from ``mean``
    :param period: steps per full cycle (>= 1)
    """

    mean: float
    amplitude: float
    period: int

    kind: ClassVar[str] = "sinusoid"
    continuous: ClassVar[bool] = True

    def at(self, seed: Seed, step: int) -> float:
        """Value at global step ``step`` (``seed`` is unused)."""
        return self.mean + self.amplitude * math.sin(2.0 * math.pi * step / self.period)

    def to_dict(self) -> dict:
        """The schedule as a ``[...schedule]`` table."""
        return {
            "kind": self.kind,
            "mean": self.mean,
            "amplitude": self.amplitude,
            "period": self.period,
        }


@dataclass(frozen=True)
class Constant:
    """One value at every step (e.g. a fixed low gravity to combine with another drift).

    :param value: the value (a float, or a 3-vector for gravity)
    """

    value: Value

    kind: ClassVar[str] = "constant"
    continuous: ClassVar[bool] = False

    def at(self, seed: Seed, step: int) -> Value:
        """The constant value."""
        return self.value

    def to_dict(self) -> dict:
        """The schedule as a ``[...schedule]`` table."""
        return {"kind": self.kind, "value": _plain(self.value)}


Schedule = Piecewise | Linear | Sinusoid | Constant


def _plain(value: Value) -> float | list[float]:
    return list(value) if isinstance(value, tuple) else value


def change_count(schedules: Sequence[Piecewise], step: int) -> int:
    """Number of distinct steps in ``(0, step]`` at which any of ``schedules`` starts a segment.

    This is the context's ``phase``: two piecewise schedules changing at the same step count once
    (inclusion-exclusion over the least common multiples of their segment lengths).

    :param schedules: piecewise schedules
    :param step: global step
    """
    step = max(int(step), 0)
    periods = sorted({s.every for s in schedules})
    total = 0
    for mask in range(1, 1 << len(periods)):
        chosen = [p for i, p in enumerate(periods) if mask >> i & 1]
        total += (-1) ** (len(chosen) + 1) * (step // math.lcm(*chosen))
    return total


def first_values(schedule: Schedule, seed: Seed, n: int) -> list[tuple[int, Value]]:
    """The first ``n`` ``(step, value)`` pairs of a schedule, for describing it to a person.

    Piecewise: the value of each of the first ``n`` segments at its first step. Linear: ``n``
    evenly spaced steps over ``[0, over]``. Sinusoid: quarter periods. Constant: step 0 only.

    :param schedule: the schedule
    :param seed: its seed
    :param n: how many values
    """
    if isinstance(schedule, Piecewise):
        steps = [k * schedule.every for k in range(n)]
    elif isinstance(schedule, Linear):
        steps = [round(i * schedule.over / max(n - 1, 1)) for i in range(n)]
    elif isinstance(schedule, Sinusoid):
        steps = [round(i * schedule.period / 4) for i in range(n)]
    else:
        steps = [0]
    return [(s, schedule.at(seed, s)) for s in steps]


KINDS: dict[str, tuple[str, ...]] = {
    "piecewise": ("kind", "every", "sample", "low", "high", "values", "initial"),
    "linear": ("kind", "start", "end", "over"),
    "sinusoid": ("kind", "mean", "amplitude", "period"),
    "constant": ("kind", "value"),
}


def _value(raw: object, key: str) -> Value:
    """A float, or a vector of 3 floats, from a TOML value."""
    if _finite(raw):
        return float(raw)
    if isinstance(raw, (list, tuple)) and len(raw) == 3 and all(_finite(x) for x in raw):
        return tuple(float(x) for x in raw)
    raise ConfigError(key, raw, "a finite number, or a vector [x, y, z] of 3 finite numbers")


def _finite(value: object) -> bool:
    return is_number(value) and math.isfinite(value)


def schedule_from_dict(table: Mapping) -> Schedule:
    """Build a schedule from its TOML table (``kind`` plus that kind's keys).

    Errors name the key relative to the table (``"low"``, ``"values[2]"``).

    :param table: e.g. ``{"kind": "piecewise", "every": 2_000_000, "sample": "log-uniform",
        "low": 0.02, "high": 2.0}``
    :raises ConfigError: on an unknown kind or key, a wrong type, or an empty or reversed range
    """
    if not isinstance(table, Mapping):
        raise ConfigError("", table, "a table with a kind: " + ", ".join(KINDS))
    kind = choice(table, "kind", "", KINDS)
    check_keys(table, KINDS[kind])
    if kind == "linear":
        return Linear(
            start=number(table, "start", ""),
            end=number(table, "end", ""),
            over=integer(table, "over", "", minimum=1),
        )
    if kind == "sinusoid":
        return Sinusoid(
            mean=number(table, "mean", ""),
            amplitude=number(table, "amplitude", ""),
            period=integer(table, "period", "", minimum=1),
        )
    if kind == "constant":
        if "value" not in table:
            raise ConfigError("value", None, "required: a number, or a vector [x, y, z]")
        return Constant(_value(table["value"], "value"))
    every = integer(table, "every", "", minimum=1)
    sample = choice(table, "sample", "", SAMPLES, default="log-uniform")
    initial = _value(table["initial"], "initial") if "initial" in table else None
    if sample in ("cycle", "shuffled-cycle"):
        for key in ("low", "high"):
            if key in table:
                raise ConfigError(key, table[key], f"not used with sample = {sample!r}; use values")
        raw = table.get("values")
        if not isinstance(raw, (list, tuple)) or not raw:
            raise ConfigError("values", raw, f"a non-empty list of values for sample = {sample!r}")
        values = tuple(_value(v, f"values[{i}]") for i, v in enumerate(raw))
        return Piecewise(every=every, sample=sample, values=values, initial=initial)
    if sample == "permutation":
        for key in ("low", "high", "values", "initial"):
            if key in table:
                raise ConfigError(key, table[key], 'not used with sample = "permutation"')
        return Piecewise(every=every, sample=sample)
    if "values" in table:
        raise ConfigError(
            "values",
            table["values"],
            f'used only with sample = "cycle" or "shuffled-cycle", not {sample!r}',
        )
    low, high = number(table, "low", ""), number(table, "high", "")
    if low > high:
        raise ConfigError("low", low, f"at most high ({high})")
    if sample == "log-uniform" and low <= 0:
        raise ConfigError("low", low, "a number > 0 for a log-uniform range")
    if isinstance(initial, tuple):
        raise ConfigError("initial", list(initial), "a number (vectors only with cycle)")
    return Piecewise(every=every, sample=sample, low=low, high=high, initial=initial)
