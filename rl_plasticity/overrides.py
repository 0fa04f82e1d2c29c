"""Command-line numbers and ``--set key=value`` overrides of a spec, parsed without SB3 or torch.

``--steps`` and other step counts accept ``1000000``, ``1_000_000`` and ``1e6``. ``--set`` takes a
dotted key of the agent spec and a TOML literal (``--set hyperparameters.learning_rate=3e-4``,
``--set method.name=cbp``: a bare word is a string); ``rlp sweep`` also takes several values
separated by commas (``--set method.replacement_rate=1e-4,1e-3``), one agent per combination.
Overrides are laid over the spec's TOML table before it is validated, so a bad value gets the
same error as in the file. An agent with overrides is named after them:
``ppo-cbp+replacement_rate-1e-4`` (see :func:`name_suffix`).
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rl_plasticity.errors import ConfigError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_UNSAFE = re.compile(r"(?:[^A-Za-z0-9._-]|_)+")
_STEPS_ALLOWED = "a positive whole number of steps, e.g. 1000000, 1_000_000 or 1e6"


def parse_count(text: str | int, key: str = "steps", minimum: int = 1) -> int:
    """A whole number from ``1000000``, ``1_000_000`` or ``1e6`` (not ``1.5``, not ``1e400``).

    :param text: the number as typed
    :param key: the option's name, for the error
    :param minimum: the smallest allowed value
    :raises ConfigError: for anything else
    """
    if minimum != 1:
        allowed = f"a whole number >= {minimum}"
    elif key in ("steps", "eval-every"):
        allowed = _STEPS_ALLOWED
    else:
        allowed = "a positive whole number"
    raw = str(text).strip()
    if not re.fullmatch(r"[0-9][0-9_]*(\.[0-9_]*)?([eE][+]?[0-9]+)?", raw) or "__" in raw:
        raise ConfigError(key, text, allowed)
    value = float(raw.replace("_", ""))
    if not math.isfinite(value) or value != int(value) or value >= 2**62:
        raise ConfigError(key, text, allowed)
    if int(value) < minimum:
        raise ConfigError(key, text, allowed)
    return int(value)


@dataclass(frozen=True)
class Override:
    """One ``--set``: a dotted key and the values it takes (one for ``train``; a grid for sweeps).

    :param key: dotted spec key, e.g. ``method.replacement_rate``
    :param values: the parsed values
    :param texts: the values as typed (for names)
    """

    key: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]


def _split_top_level(text: str) -> list[str]:
    # Commas separate values, except inside [...], {...} or quotes (TOML arrays and strings).
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_value(text: str, key: str) -> Any:
    """A TOML literal (``3e-4``, ``true``, ``[0.9, 0.999]``, ``"cbp"``); a bare word is a string.

    :param text: the value as typed
    :param key: the key it is for, for the error
    :raises ConfigError: for text that is neither
    """
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE_WORD.match(text):
            return text
        raise ConfigError(
            key, text, 'a TOML value: a number, true/false, a "string" or [a, list]'
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, text, "a finite number")
    return value


def parse_set(text: str, grid: bool = False) -> Override:
    """Parse ``key=value`` (with ``grid``: ``key=v1,v2,...``).

    :param text: the argument of ``--set``
    :param grid: allow several comma-separated values
    :raises ConfigError: naming the key for a bad key or value
    """
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not _KEY.match(key):
        raise ConfigError("set", text, "key=value with a dotted spec key, e.g. method.rho=1e-4")
    pieces = _split_top_level(raw)
    if any(not p for p in pieces):
        raise ConfigError(key, raw, "a value after '=' (several separated by commas in a sweep)")
    if not grid and len(pieces) > 1:
        raise ConfigError(key, raw, "one value here (rlp sweep takes several, for a grid)")
    values = tuple(parse_value(p, key) for p in pieces)
    return Override(key, values, tuple(pieces))


def parse_sets(texts: Sequence[str], grid: bool = False) -> list[Override]:
    """Parse every ``--set``; a key given twice is an error.

    :param texts: the arguments of ``--set``
    :param grid: allow several values per key
    :raises ConfigError: for a bad or repeated key or a bad value
    """
    overrides = [parse_set(t, grid) for t in texts]
    seen: set[str] = set()
    for o in overrides:
        if o.key in seen:
            raise ConfigError(o.key, ",".join(o.texts), "given once (--set repeats this key)")
        seen.add(o.key)
    return overrides


#: One combination of a grid: (key, value, value as typed) for every override.
Assignment = tuple[tuple[str, Any, str], ...]


def combinations(overrides: Sequence[Override]) -> list[Assignment]:
    """Every combination of the overrides' values, in order (one empty one without overrides).

    :param overrides: the parsed ``--set`` arguments
    """
    axes = [[(o.key, v, t) for v, t in zip(o.values, o.texts, strict=True)] for o in overrides]
    return [tuple(c) for c in itertools.product(*axes)]


def apply(data: Mapping[str, Any], assignment: Assignment) -> dict[str, Any]:
    """A deep copy of a spec's table with each dotted key set to its value.

    :param data: the spec's table (after ``base`` is merged)
    :param assignment: (key, value, text) triples
    :raises ConfigError: when a key goes through a value that is not a table
    """
    result = copy.deepcopy(dict(data))
    # A new name replaces its table, as in a spec with a base: the old settings were the old
    # method's. Names first, so the settings given with them stay.
    for key, value, _ in sorted(assignment, key=lambda a: not a[0].endswith(".name")):
        table = result
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            inner = table.setdefault(part, {})
            if not isinstance(inner, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(key, value, f"{where} is {inner!r}, not a table")
            table = inner
        if parts[-1] == "name" and table.get("name", value) != value:
            table.clear()
        table[parts[-1]] = value
    return result


def name_suffix(assignment: Assignment) -> str:
    """The part of an agent's name that says what was overridden: ``+replacement_rate-1e-4``.

    Each override is ``+key-value``. Keys are shortened to their last part unless two would read
    the same. The name is plain in a shell and a file name: characters other than letters, digits,
    ``.``, ``_`` and ``-`` become ``_`` (one for a run of them, so a name never holds the ``__``
    that separates the parts of a run directory's name).

    :param assignment: (key, value, text) triples; empty gives ``""``
    """
    last = [key.rsplit(".", 1)[-1] for key, _, _ in assignment]
    short = len(set(last)) == len(last)
    return "".join(
        f"+{_safe(name if short else key)}-{_safe(text)}"
        for name, (key, _, text) in zip(last, assignment, strict=True)
    )


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)
