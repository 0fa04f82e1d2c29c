"""The ``[nonstationary]`` table of an env spec: what drifts, how, and when.

Schema (every key optional except each drift's ``parameter`` and ``schedule``)::

    [nonstationary]
    apply_at = "episode_end"   # "episode_end" (the paper's: first episode end after a change is
                               # due) or "immediate" (the next step)
    schedule_seed = 0          # seeds every piecewise draw; "run": the run's seed (each seed its
                               # own schedule, shared by every agent run with that seed)
    context_in_obs = false     # append the context values to the observation
    update_every = 1000        # linear/sinusoid schedules are re-evaluated every this many steps

    [[nonstationary.drift]]
    parameter = "friction"     # a name of parameters.PARAMETERS: friction | gravity | body_mass
                               # | actuator_gear | joint_damping | observation_permutation
                               # | action_permutation
    mode = "absolute"          # "scale" (multiplier of the env's own values, default) | "absolute"
    geoms = ["floor"]          # friction only; default every geom (see physics.py: max rule)
    bodies = ["torso"]         # body_mass only; default every body with a mass
    signs = true               # permutations only: also flip a random sign per entry
    [nonstationary.drift.schedule]
    kind = "piecewise"         # piecewise | linear | sinusoid | constant
    every = 2_000_000          # piecewise: steps per segment
    sample = "log-uniform"     # piecewise: log-uniform | uniform (low, high) | cycle (values)
                               # | permutation (the permutation drifts' only sample)
    low = 0.02
    high = 2.0
    # initial = 1.0            # piecewise: value of segment 0 instead of a draw
    # linear: start, end, over;  sinusoid: mean, amplitude, period;  constant: value

Each parameter may drift at most once. Values must be at least the parameter's lower bound in
:data:`.parameters.PARAMETERS` (friction, damping and gear ``>= 0``, mass ``> 0``, a gravity number
``>= 0``: a multiplier or a magnitude); a gravity vector
``[x, y, z]`` (in ``cycle`` values, ``initial`` or ``constant``) only in absolute mode. The
permutation drifts (:mod:`.permutation`) take a piecewise schedule with ``sample = "permutation"``
and no ``mode``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.nonstationary.parameters import PARAMETERS, TRANSFORMS
from rl_plasticity.nonstationary.physics import MODES
from rl_plasticity.nonstationary.schedules import (
    Linear,
    Piecewise,
    Schedule,
    Sinusoid,
    Value,
    first_values,
    schedule_from_dict,
)
from rl_plasticity.nonstationary.toml_reads import boolean, check_keys, choice, integer, names

APPLY_AT = ("episode_end", "immediate")
TABLE_KEYS = ("apply_at", "schedule_seed", "context_in_obs", "update_every", "drift")
DRIFT_KEYS = ("parameter", "mode", "schedule", "bodies", "geoms", "signs")
#: ``schedule_seed = "run"``: the run's seed (see :meth:`NonstationaryConfig.for_seed`).
RUN_SEED = "run"


@dataclass(frozen=True)
class Drift:
    """One parameter that changes on a schedule.

    :param parameter: a name of :data:`.parameters.PARAMETERS`
    :param schedule: its schedule (values are multipliers in scale mode, absolute otherwise; a
        permutation's values are segment indices)
    :param mode: ``"scale"`` or ``"absolute"`` (not used by the permutations)
    :param bodies: body names (``body_mass`` only; None: every body with a mass)
    :param geoms: geom names (``friction`` only; None: every geom)
    :param signs: permutations only: flip a random sign per entry too
    """

    parameter: str
    schedule: Schedule
    mode: str = "scale"
    bodies: tuple[str, ...] | None = None
    geoms: tuple[str, ...] | None = None
    signs: bool = True

    @property
    def transform(self) -> bool:
        """Whether the drift transforms observations or actions rather than the physics."""
        return self.parameter in TRANSFORMS

    def to_dict(self) -> dict:
        """The drift as a ``[[nonstationary.drift]]`` table."""
        d: dict[str, Any] = {"parameter": self.parameter}
        if self.transform:
            d["signs"] = self.signs
        else:
            d["mode"] = self.mode
        if self.bodies is not None:
            d["bodies"] = list(self.bodies)
        if self.geoms is not None:
            d["geoms"] = list(self.geoms)
        d["schedule"] = self.schedule.to_dict()
        return d


@dataclass(frozen=True)
class NonstationaryConfig:
    """What drifts in an environment, and when changes take effect.

    :param drifts: the drifting parameters
    :param apply_at: ``"episode_end"`` (a due change waits for the next reset; the paper's) or
        ``"immediate"`` (it takes effect on the next step)
    :param schedule_seed: seed of every piecewise draw (drift ``i`` uses seed
        ``(schedule_seed, i)``); independent of the env's seed. ``"run"``: the run's seed, set by
        :meth:`for_seed` (each seed its own schedule, as in Dohare et al. 2024, shared by every
        agent run with that seed)
    :param context_in_obs: append the context values to the observation
    :param update_every: linear and sinusoid schedules are evaluated at multiples of this many
        global steps, so the MuJoCo model is written at most that often (1000 = once per
        episode of the locomotion envs, whose episodes are at most 1000 steps)
    """

    drifts: tuple[Drift, ...] = ()
    apply_at: str = "episode_end"
    schedule_seed: int | str = 0
    context_in_obs: bool = False
    update_every: int = 1000

    @property
    def per_run(self) -> bool:
        """Whether the schedule seed is the run's (``schedule_seed = "run"``, not yet resolved)."""
        return self.schedule_seed == RUN_SEED

    def for_seed(self, seed: int) -> NonstationaryConfig:
        """This config with ``schedule_seed = "run"`` replaced by ``seed`` (else unchanged).

        :param seed: the run's seed
        """
        if not self.per_run:
            return self
        return dataclasses.replace(self, schedule_seed=int(seed))

    @classmethod
    def from_dict(cls, table: Mapping) -> NonstationaryConfig:
        """Validate and build from the ``[nonstationary]`` table of an env spec.

        :param table: the parsed table
        :raises ConfigError: with the dotted key relative to the table (``drift[0].schedule.low``),
            the value and what is allowed
        """
        check_keys(table, TABLE_KEYS)
        raw = table.get("drift", [])
        if isinstance(raw, Mapping):
            raw = [raw]
        if not isinstance(raw, list):
            raise ConfigError("drift", raw, "a list of drift tables ([[nonstationary.drift]])")
        drifts = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            drift = _drift_from_dict(item, f"drift[{i}]")
            if drift.parameter in seen:
                raise ConfigError(
                    f"drift[{i}].parameter",
                    drift.parameter,
                    f"each parameter at most once (drift[{seen[drift.parameter]}] has it)",
                )
            seen[drift.parameter] = i
            drifts.append(drift)
        return cls(
            drifts=tuple(drifts),
            apply_at=choice(table, "apply_at", "", APPLY_AT, default="episode_end"),
            schedule_seed=_schedule_seed(table),
            context_in_obs=boolean(table, "context_in_obs", "", default=False),
            update_every=integer(table, "update_every", "", default=1000, minimum=1),
        )

    def to_dict(self) -> dict:
        """The config as a ``[nonstationary]`` table (``from_dict(c.to_dict()) == c``)."""
        return {
            "apply_at": self.apply_at,
            "schedule_seed": self.schedule_seed,
            "context_in_obs": self.context_in_obs,
            "update_every": self.update_every,
            "drift": [d.to_dict() for d in self.drifts],
        }


def _schedule_seed(table: Mapping) -> int | str:
    if table.get("schedule_seed") == RUN_SEED:
        return RUN_SEED
    if isinstance(table.get("schedule_seed"), str):
        raise ConfigError("schedule_seed", table["schedule_seed"], 'an integer >= 0, or "run"')
    return integer(table, "schedule_seed", "", default=0)


def _drift_from_dict(table: Any, key: str) -> Drift:
    check_keys(table, DRIFT_KEYS, key)
    parameter = choice(table, "parameter", key, PARAMETERS)
    if parameter in TRANSFORMS:
        return _transform_from_dict(table, key, parameter)
    if "signs" in table:
        raise ConfigError(f"{key}.signs", table["signs"], "used only with the permutations")
    mode = choice(table, "mode", key, MODES, default="scale")
    bodies = names(table, "bodies", key)
    geoms = names(table, "geoms", key)
    for select, given in (("bodies", bodies), ("geoms", geoms)):
        if given is not None and PARAMETERS[parameter].selects != select:
            users = [n for n, p in PARAMETERS.items() if p.selects == select]
            raise ConfigError(
                f"{key}.{select}", list(given), f"used only with parameter = {' or '.join(users)}"
            )
    if "schedule" not in table:
        raise ConfigError(f"{key}.schedule", None, "required: a [schedule] table with a kind")
    try:
        schedule = schedule_from_dict(table["schedule"])
        _check_values(schedule, parameter, mode)
    except ConfigError as e:
        raise e.under(f"{key}.schedule") from None
    return Drift(parameter, schedule, mode, bodies, geoms)


def _transform_from_dict(table: Any, key: str, parameter: str) -> Drift:
    for other in ("mode", "bodies", "geoms"):
        if other in table:
            raise ConfigError(f"{key}.{other}", table[other], f"not used with {parameter}")
    if "schedule" not in table:
        raise ConfigError(f"{key}.schedule", None, "required: a [schedule] table with a kind")
    try:
        schedule = schedule_from_dict(table["schedule"])
    except ConfigError as e:
        raise e.under(f"{key}.schedule") from None
    if not isinstance(schedule, Piecewise) or schedule.sample != "permutation":
        raise ConfigError(
            f"{key}.schedule",
            table["schedule"],
            f'for {parameter}: kind = "piecewise", sample = "permutation" and every',
        )
    signs = boolean(table, "signs", key, default=True)
    return Drift(parameter, schedule, signs=signs)


def _extremes(schedule: Schedule) -> list[tuple[str, Value]]:
    """``(key, value)`` pairs that bound every value the schedule can take."""
    if isinstance(schedule, Piecewise):
        if schedule.sample in ("cycle", "shuffled-cycle"):
            pairs = [(f"values[{i}]", v) for i, v in enumerate(schedule.values)]
        else:
            pairs = [("low", schedule.low), ("high", schedule.high)]
        return [*pairs, ("initial", schedule.initial)] if schedule.initial is not None else pairs
    if isinstance(schedule, Linear):
        return [("start", schedule.start), ("end", schedule.end)]
    if isinstance(schedule, Sinusoid):
        return [("amplitude", schedule.mean - abs(schedule.amplitude))]
    return [("value", schedule.value)]


def _check_values(schedule: Schedule, parameter: str, mode: str) -> None:
    if isinstance(schedule, Piecewise) and schedule.sample == "permutation":
        raise ConfigError(
            "sample", "permutation", f"only for {' and '.join(TRANSFORMS)}, not {parameter}"
        )
    entry = PARAMETERS[parameter]
    bound, inclusive = entry.lower_bound, entry.bound_allowed
    for key, value in _extremes(schedule):
        if isinstance(value, tuple):
            if parameter != "gravity" or mode != "absolute":
                raise ConfigError(
                    key, list(value), "a number (a vector [x, y, z] only for gravity, absolute)"
                )
            continue
        if value < bound or (value == bound and not inclusive):
            what = "mean - |amplitude|" if key == "amplitude" else "a value"
            sign = ">=" if inclusive else ">"
            raise ConfigError(key, value, f"{what} {sign} {bound:g} for {parameter} ({mode})")


def context_keys(parameter: str, value: Value) -> list[str]:
    """Context keys of a parameter's value: its name, or ``name_x/_y/_z`` for a vector."""
    if isinstance(value, tuple):
        return [f"{parameter}_{axis}" for axis in "xyz"]
    return [parameter]


def describe(config: NonstationaryConfig, n_values: int = 5) -> list[str]:
    """Lines describing what drifts and the first values of each schedule (``rlp envs --show``).

    :param config: the config
    :param n_values: how many values of each schedule to list
    """
    when = {
        "episode_end": "at the first episode end after it is due (the paper's rule)",
        "immediate": "immediately (on the next step)",
    }[config.apply_at]
    seed = "the run's seed" if config.per_run else config.schedule_seed
    lines = [
        f"changes take effect {when}; schedule seed {seed}"
        + ("; context appended to observations" if config.context_in_obs else "")
    ]
    if not config.drifts:
        lines.append("no drifting parameters (stationary)")
    for i, drift in enumerate(config.drifts):
        entry = PARAMETERS[drift.parameter]
        # Only a parameter that can be narrowed to some geoms or bodies says which it touches.
        where = f" of {entry.touches}" if entry.selects else ""
        if drift.bodies is not None:
            where = f" of {', '.join(drift.bodies)}"
        elif drift.geoms is not None:
            where = f" of {', '.join(drift.geoms)}"
        if drift.transform:
            unit = "a new random permutation" + (" and signs" if drift.signs else "")
        else:
            unit = "x the env's own value" if drift.mode == "scale" else "absolute"
        lines.append(f"{drift.parameter}{where} ({unit}): {_schedule_words(drift.schedule)}")
        if drift.transform:
            continue
        example_seed = 0 if config.per_run else config.schedule_seed
        for step, value in first_values(drift.schedule, (example_seed, i), n_values):
            lines.append(f"  from step {step:>12,}: {_format_value(value)}")
    return lines


def _schedule_words(schedule: Schedule) -> str:
    if isinstance(schedule, Piecewise):
        if schedule.sample == "cycle":
            how = f"cycles through {len(schedule.values)} values"
        elif schedule.sample == "shuffled-cycle":
            how = f"cycles through {len(schedule.values)} values in an order drawn from the seed"
        elif schedule.sample == "permutation":
            how = "each segment its own"
        else:
            how = f"{schedule.sample} in [{schedule.low:g}, {schedule.high:g}]"
        return f"new value every {schedule.every:,} steps, {how}"
    if isinstance(schedule, Linear):
        return f"linear from {schedule.start:g} to {schedule.end:g} over {schedule.over:,} steps"
    if isinstance(schedule, Sinusoid):
        return (
            f"sinusoid {schedule.mean:g} +- {schedule.amplitude:g}, "
            f"period {schedule.period:,} steps"
        )
    return f"constant {_format_value(schedule.value)}"


def _format_value(value: Value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return f"{value:.4g}"
