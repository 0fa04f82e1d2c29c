"""Typed reads from a TOML table, raising ConfigError with the key relative to the table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rl_plasticity.errors import ConfigError, did_you_mean, one_of
from rl_plasticity.validate import MAX_INT, is_number

MISSING = object()


def check_keys(table: Any, allowed: Iterable[str], prefix: str = "") -> None:
    """Raise ConfigError for the first key of ``table`` not in ``allowed``.

    :param table: the table (must be a mapping)
    :param allowed: the keys allowed in it
    :param prefix: dotted key of the table itself (``""`` at the top)
    """
    allowed = list(allowed)
    if not isinstance(table, Mapping):
        raise ConfigError(prefix, table, "a table")
    for key in table:
        if key not in allowed:
            raise ConfigError(
                join(prefix, key),
                table[key],
                f"unknown key; allowed: {', '.join(allowed)}{did_you_mean(key, allowed)}",
            )


def join(prefix: str, key: str) -> str:
    """``"a.b"`` from ``"a"`` and ``"b"``; ``"b"`` when there is no prefix."""
    return f"{prefix}.{key}" if prefix else key


def number(table: Mapping, key: str, prefix: str, default: Any = MISSING) -> float:
    """A finite float read from ``table[key]`` (ints accepted)."""
    value = table.get(key, default)
    if value is MISSING:
        raise ConfigError(join(prefix, key), None, "required: a number")
    if not is_number(value) or not math.isfinite(value):
        raise ConfigError(join(prefix, key), value, "a finite number")
    return float(value)


def integer(table: Mapping, key: str, prefix: str, default: Any = MISSING, minimum: int = 0) -> int:
    """An int ``>= minimum`` read from ``table[key]`` (an integral float such as 2e6 accepted)."""
    value = table.get(key, default)
    allowed = f"an integer >= {minimum} and below 2**62"
    if value is MISSING:
        raise ConfigError(join(prefix, key), None, f"required: {allowed}")
    whole = is_number(value) and math.isfinite(value) and float(value).is_integer()
    if not whole or not minimum <= value < MAX_INT:
        raise ConfigError(join(prefix, key), value, allowed)
    return int(value)


def choice(
    table: Mapping, key: str, prefix: str, options: Iterable[str], default: Any = MISSING
) -> str:
    """A string from ``options`` read from ``table[key]``."""
    options = list(options)
    value = table.get(key, default)
    if value is MISSING:
        raise ConfigError(join(prefix, key), None, "required: " + one_of(None, options))
    if value not in options:
        raise ConfigError(join(prefix, key), value, one_of(value, options))
    return value


def boolean(table: Mapping, key: str, prefix: str, default: bool) -> bool:
    """A bool read from ``table[key]``."""
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(join(prefix, key), value, "true or false")
    return value


def names(table: Mapping, key: str, prefix: str) -> tuple[str, ...] | None:
    """A non-empty list of strings read from ``table[key]``, or None when absent."""
    if key not in table:
        return None
    value = table[key]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(join(prefix, key), value, "a non-empty list of names")
    return tuple(value)
