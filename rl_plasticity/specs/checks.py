"""Checks of a spec's tables: known keys with the right types, keyword arguments of a target."""

from __future__ import annotations

import inspect
from typing import Any

from rl_plasticity.errors import ConfigError, one_of


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names |= {dict: "a table", list: "a list"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def _is_instance(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # TOML true is not the number 1
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def check_table(
    data: dict[str, Any], schema: dict[str, tuple[type | tuple[type, ...], str]]
) -> None:
    """Check a spec's top-level table: every key known to ``schema``, of the type it allows.

    :param data: the spec's table
    :param schema: key -> (allowed type or types, what is allowed, in words)
    :raises ConfigError: naming the first unknown or mistyped key
    """
    for key, value in data.items():
        if key not in schema:
            raise ConfigError(key, value, f"unknown key; allowed keys: {', '.join(schema)}")
        expected, allowed = schema[key]
        if not _is_instance(value, expected):
            raise ConfigError(key, value, f"expected {_type_name(expected)}: {allowed}")


def check_kwargs(
    target: Any,
    kwargs: dict[str, Any],
    skip: tuple[str, ...] = (),
    rules: dict[str, Any] | None = None,
) -> None:
    """Check ``kwargs`` against the keyword parameters of ``target`` (a class or function).

    Unknown names are errors listing the allowed ones. A value with a rule in ``rules`` (a
    ``check(key, value)`` from :mod:`rl_plasticity.validate`) is checked by it; any other value is
    type-checked against the parameter's default when that default is a plain scalar, list or
    tuple.

    :raises ConfigError: with the key of the offending argument
    """
    signature = inspect.signature(target)
    params = {
        name: p
        for name, p in signature.parameters.items()
        if name not in ("self", *skip)
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    for key, value in kwargs.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ConfigError(key, value, f"unknown setting; allowed: {allowed}")
        if rules and key in rules:
            rules[key](key, value)
            continue
        default = params[key].default
        if default is inspect.Parameter.empty or default is None:
            continue
        expected: type | tuple[type, ...]
        if isinstance(default, bool):
            expected = bool
        elif isinstance(default, (int, float)):
            # torch writes float parameters with int defaults (Adam's weight_decay=0)
            is_float = isinstance(default, float) or "float" in str(params[key].annotation)
            expected = (int, float) if is_float else int
        elif isinstance(default, (str, list, tuple)):
            expected = (list, tuple) if isinstance(default, (list, tuple)) else str
        else:
            continue
        if not _is_instance(value, expected):
            raise ConfigError(key, value, f"expected {_type_name(expected)}")


def check_named_table(
    table: dict[str, Any],
    key: str,
    registry: dict[str, Any],
    extra: tuple[str, ...] = (),
    rules: dict[str, Any] | None = None,
) -> None:
    """Check a table naming an entry of ``registry`` (``[optimizer]``, ``[method]``): its
    ``name`` is known and its other keys are that entry's keyword arguments.

    :param table: the table, with ``name``
    :param key: the table's key in the spec (errors are named under it)
    :param registry: name -> class or function taking the settings
    :param extra: names allowed besides the registry's, which take no settings (``none``)
    :param rules: value checks by setting name (see :func:`check_kwargs`)
    :raises ConfigError: for an unknown name or a setting the entry does not take
    """
    name = table.get("name")
    allowed = [*extra, *registry]
    if name not in allowed:
        raise ConfigError(f"{key}.name", name, one_of(name, allowed))
    settings = {k: v for k, v in table.items() if k != "name"}
    if name in extra:
        if settings:
            first = next(iter(settings))
            raise ConfigError(f"{key}.{first}", settings[first], f"'{name}' takes no settings")
        return
    target = registry[name]
    try:
        check_kwargs(target, settings, skip=("params", "lr", "verbose"), rules=rules)
    except ConfigError as e:
        raise e.under(key) from None
