"""Spec files: found by name or path, read as TOML, merged over their ``base`` spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rl_plasticity.errors import ConfigError, did_you_mean

KINDS = ("envs", "agents", "studies")


def spec_dirs(kind: str) -> list[Path]:
    """Folders holding the shipped specs of ``kind`` (``"envs"``, ``"agents"`` or ``"studies"``).

    Inside an installed wheel they are ``rl_plasticity/_specs/<kind>``; in a source checkout
    (editable install) they are ``<repo>/<kind>``.
    """
    package = Path(__file__).resolve().parent.parent  # rl_plasticity/
    candidates = [package / "_specs" / kind, package.parent / kind]
    return [d for d in candidates if d.is_dir()]


def available_specs(kind: str) -> dict[str, Path]:
    """Shipped spec names of ``kind`` mapped to their files, sorted by name."""
    found: dict[str, Path] = {}
    for folder in spec_dirs(kind):
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def find_spec(kind: str, name_or_path: str | Path) -> Path:
    """The file of a spec given by shipped name or by path.

    :raises ConfigError: if there is no such spec
    """
    key = kind.rstrip("s")
    text = str(name_or_path)
    looks_like_path = text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text)
        if path.is_file():
            return path
        raise ConfigError(key, text, "no such file; give an existing .toml path or a spec name")
    shipped = available_specs(kind)
    if text in shipped:
        return shipped[text]
    raise ConfigError(
        key,
        text,
        f"a spec name (one of: {', '.join(shipped)}) or a .toml path{did_you_mean(text, shipped)}",
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A spec file's table, as written (no ``base`` merged).

    :param path: the TOML file
    :raises ConfigError: if it is not valid UTF-8 TOML or cannot be read
    """
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", path.name, f"not valid TOML ({e})", str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            "",
            path.name,
            f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); save it as "
            "UTF-8",
            str(path),
        ) from None
    except OSError as e:
        raise ConfigError("", str(path), f"cannot be read ({e.strerror})", str(path)) from None


def merge_tables(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, table by table.

    A key of ``override`` replaces the base's value, except that tables merge key by key. A
    table with a ``name`` (``[optimizer]``, ``[method]``) that names something else is replaced
    whole: the base's settings belong to the base's method.
    """
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            renamed = "name" in value and value["name"] != old.get("name")
            merged[key] = value if renamed else merge_tables(old, value)
        else:
            merged[key] = value
    return merged


def load_table(
    kind: str, name_or_path: str | Path, seen: tuple[Path, ...] = ()
) -> tuple[Path, dict[str, Any]]:
    """The spec's file and its table, with its ``base`` spec (if any) merged under it.

    :param kind: ``"envs"`` or ``"agents"``
    :param name_or_path: a shipped spec name or a TOML path
    :param seen: the files that led here through ``base`` (a spec leading back is refused)
    :raises ConfigError: for a missing or unreadable file or a bad ``base``
    """
    path = find_spec(kind, name_or_path)
    data = read_toml(path)
    if "base" not in data:
        return path, data
    base = given = data.pop("base")
    try:
        if not isinstance(base, str):
            raise ConfigError("base", base, "a spec name or a .toml path (relative to this file)")
        if (base.endswith(".toml") or "/" in base) and not Path(base).is_absolute():
            base = str(path.parent / base)
        try:
            base_path = find_spec(kind, base)
        except ConfigError as e:
            raise ConfigError("base", given, e.allowed) from None
        if base_path.resolve() in (*seen, path.resolve()):
            raise ConfigError("base", given, "a spec that does not lead back here")
    except ConfigError as e:
        raise e.with_file(str(path)) from None
    _, base_data = load_table(kind, base_path, (*seen, path.resolve()))
    base_data.pop("gym_id", None)  # the id under which the base is registered is the base's
    return path, merge_tables(base_data, data)
