"""Checks of single values, shared by specs, methods and metrics: each raises ConfigError.

A number is an ``int`` or ``float`` that is not a ``bool`` (TOML's ``true`` is not 1), finite
(TOML's ``nan``, ``inf`` and ``1e400`` are not numbers a setting can take) and, for an integer,
of magnitude below :data:`MAX_INT` (torch keeps counters in int64).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rl_plasticity.errors import ConfigError, one_of

#: Largest magnitude of an integer setting (torch's int64 counters overflow beyond about 2**63).
MAX_INT = 2**62
#: The largest seed numpy's generators take (``np.random.default_rng`` and ``seed``: 32 bits).
MAX_SEED = 2**32 - 1


def is_number(value: Any) -> bool:
    """A real number that is not a bool (finite or not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if high == math.inf:
        return f"> {low:g}" if low_open else f">= {low:g}"
    if low == -math.inf:
        return f"< {high:g}" if high_open else f"<= {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_number(
    key: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite number between ``low`` and ``high``.

    :param key: the setting's name
    :param value: what was given
    :param low: smallest allowed value
    :param high: largest allowed value
    :param low_open: exclude ``low`` itself
    :param high_open: exclude ``high`` itself
    :return: ``value`` as a float
    :raises ConfigError: for anything else (a bool, a string, nan, inf, out of range)
    """
    ok = is_number(value) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ConfigError(
            key, value, f"a finite number {_interval(low, high, low_open, high_open)}"
        )
    return float(value)


def check_int(
    key: str, value: Any, low: int, high: int = MAX_INT, *, whole_floats: bool = False
) -> int:
    """``value`` if it is an integer in ``[low, high]``.

    :param key: the setting's name
    :param value: what was given
    :param low: smallest allowed value
    :param high: largest allowed value
    :param whole_floats: also accept a float with no fractional part (``2e6``, as TOML has no
        integer exponent notation)
    :return: ``value`` as an int
    :raises ConfigError: for anything else
    """
    whole = whole_floats and isinstance(value, float) and value.is_integer()
    if (not isinstance(value, int) or isinstance(value, bool)) and not whole:
        raise ConfigError(key, value, f"an integer in [{low:,}, {high:,}]")
    if not low <= value <= high:
        raise ConfigError(key, value, f"an integer in [{low:,}, {high:,}]")
    return int(value)


def check_optional_int(key: str, value: Any, low: int, high: int = MAX_INT) -> int | None:
    """``None``, or an integer in ``[low, high]`` (see :func:`check_int`)."""
    return None if value is None else check_int(key, value, low, high)


def check_bool(key: str, value: Any) -> bool:
    """``value`` if it is a bool (TOML's ``true``/``false``; 0 and 1 are not).

    :param key: the setting's name
    :param value: what was given
    :return: ``value``
    :raises ConfigError: for anything else
    """
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")
    return value


def check_choice(key: str, value: Any, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``.

    :raises ConfigError: listing the options
    """
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise ConfigError(key, value, one_of(value, options))
    return value


def check_finite_tree(value: Any, key: str = "") -> None:
    """Raise ConfigError for the first non-finite float or huge integer anywhere in ``value``.

    Walks tables and lists, so a value no specific check reads (an ``env_kwargs`` entry) still
    cannot be ``nan``, ``inf`` or ``1e400``.

    :param value: a parsed TOML value (table, list or scalar)
    :param key: the dotted key of ``value``
    :raises ConfigError: naming the key, e.g. ``env_kwargs.ctrl_cost_weight`` or ``net_arch[1]``
    """
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_finite_tree(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite_tree(v, f"{key}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, value, "a finite number (nan, inf and 1e400 are not)")
    elif is_number(value) and abs(value) >= MAX_INT:
        raise ConfigError(key, value, f"an integer of magnitude below 2**62 ({MAX_INT:,})")


# ----- what SB3 and torch would reject, checked before building --------------------------------

#: A check of one setting: ``check(key, value)`` raises ConfigError.
Check = Callable[[str, Any], None]


def number_rule(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    none: bool = False,
) -> Check:
    """A check that the value is a finite number in the range (or None, with ``none``)."""

    def check(key: str, value: Any) -> None:
        if not (none and value is None):
            check_number(key, value, low, high, low_open=low_open, high_open=high_open)

    return check


def int_rule(low: int, high: int = MAX_INT, *, none: bool = False) -> Check:
    """A check that the value is an integer in ``[low, high]`` (or None, with ``none``)."""

    def check(key: str, value: Any) -> None:
        if not (none and value is None):
            check_int(key, value, low, high)

    return check


def _auto_or_number(key: str, value: Any) -> None:
    # SAC's ent_coef: "auto", "auto_<initial value>" or a fixed coefficient; target_entropy:
    # "auto" or a number.
    if isinstance(value, str):
        head, _, initial = value.partition("_")
        if head == "auto" and (not initial or _positive_float(initial)):
            return
        raise ConfigError(key, value, "'auto', 'auto_<number > 0>' or a finite number >= 0")
    low = 0.0 if key.endswith("ent_coef") else -math.inf
    check_number(key, value, low)


def _positive_float(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def _train_freq(key: str, value: Any) -> None:
    if isinstance(value, list) and len(value) == 2 and value[1] in ("step", "episode"):
        check_int(f"{key}[0]", value[0], 1)
        return
    if isinstance(value, list):
        raise ConfigError(key, value, 'an integer >= 1, or [n, "step"] or [n, "episode"]')
    check_int(key, value, 1)


def _gradient_steps(key: str, value: Any) -> None:
    if check_int(key, value, -1) == 0:
        raise ConfigError(key, value, "an integer >= 1, or -1 (as many as environment steps)")


#: Most environments one run steps, rollout steps, units per layer: beyond them a run cannot fit
#: in memory (a 10**12-step rollout buffer), so they are refused before building.
MAX_ENVS = 1024
MAX_ROLLOUT = 100_000_000
MAX_UNITS = 65_536

#: SB3 algorithm keyword arguments and what each allows (only where the algorithm has the key).
HYPERPARAMETER_RULES: dict[str, Check] = {
    "learning_rate": number_rule(0.0, low_open=True),
    "n_steps": int_rule(1, MAX_ROLLOUT),
    "batch_size": int_rule(1, MAX_ROLLOUT),
    "n_epochs": int_rule(1, 100_000),
    "gamma": number_rule(0.0, 1.0),
    "gae_lambda": number_rule(0.0, 1.0),
    "clip_range": number_rule(0.0, low_open=True),
    "clip_range_vf": number_rule(0.0, low_open=True, none=True),
    "ent_coef": _auto_or_number,
    "target_entropy": _auto_or_number,
    "vf_coef": number_rule(0.0),
    "max_grad_norm": number_rule(0.0, low_open=True),
    "target_kl": number_rule(0.0, low_open=True, none=True),
    "rms_prop_eps": number_rule(0.0, low_open=True),
    "buffer_size": int_rule(1, 10 * MAX_ROLLOUT),
    "learning_starts": int_rule(0),
    "tau": number_rule(0.0, 1.0),
    "train_freq": _train_freq,
    "gradient_steps": _gradient_steps,
    "policy_delay": int_rule(1),
    "target_policy_noise": number_rule(0.0),
    "target_noise_clip": number_rule(0.0),
    "target_update_interval": int_rule(1),
    "exploration_fraction": number_rule(0.0, 1.0),
    "exploration_initial_eps": number_rule(0.0, 1.0),
    "exploration_final_eps": number_rule(0.0, 1.0),
    "stats_window_size": int_rule(1, MAX_ROLLOUT),
    "sde_sample_freq": int_rule(-1),
}


def _betas(key: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(key, value, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    for i, beta in enumerate(value):
        check_number(f"{key}[{i}]", beta, 0.0, 1.0, high_open=True)


#: torch optimizer settings and what torch allows.
OPTIMIZER_RULES: dict[str, Check] = {
    "betas": _betas,
    "eps": number_rule(0.0, low_open=True),
    "weight_decay": number_rule(0.0),
    "momentum": number_rule(0.0),
    "dampening": number_rule(0.0, 1.0),
    "alpha": number_rule(0.0),
}


def check_net_arch(key: str, value: Any) -> None:
    """SB3's ``net_arch``: a list of layer sizes, or a table of lists (``pi``, ``vf``, ``qf``).

    :raises ConfigError: naming the entry (``policy_kwargs.net_arch.pi[1]``)
    """
    lists = value if isinstance(value, Mapping) else {"": value}
    if isinstance(value, Mapping) and (not value or set(value) - {"pi", "vf", "qf"}):
        raise ConfigError(key, value, "a list of layer sizes, or a table with pi, vf and/or qf")
    for name, sizes in lists.items():
        where = f"{key}.{name}" if name else key
        if not isinstance(sizes, list):
            raise ConfigError(where, sizes, "a list of layer sizes such as [256, 256]")
        for i, size in enumerate(sizes):
            check_int(f"{where}[{i}]", size, 1, MAX_UNITS)
