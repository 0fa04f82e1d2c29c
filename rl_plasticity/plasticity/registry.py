"""The registry of plasticity methods: one line registers a :class:`~.protocol.Method` subclass.

``@register_method("cbp")`` names a method for agent specs (``[method] name = "cbp"``) and the
SB3 callback (``MethodCallback("cbp", ...)``); :func:`make_method` builds one, unattached, from its
settings, which are the keyword-only parameters of its ``__init__`` (:func:`method_settings`).

Where methods come from (:func:`registered_methods` imports them all):

* the built-in ones: every module of this package (:func:`builtin_modules`, no list kept by
  hand); ``rlp docs`` writes them into ``docs/methods.md``;
* an installed package's: the modules named by its entry points in the group
  :data:`ENTRY_POINT_GROUP` (``rl_plasticity.methods``), imported once;
* a user's own file or module: :func:`import_methods` (an agent spec's ``method_modules``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import pkgutil
import sys
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rl_plasticity.errors import ConfigError, one_of

if TYPE_CHECKING:
    from rl_plasticity.plasticity.protocol import Method

#: Entry-point group of packages that bring methods (in their pyproject.toml:
#: ``[project.entry-points."rl_plasticity.methods"]`` ``my_methods = "my_package.methods"``); each
#: entry's module is imported, which registers its ``@register_method`` classes.
ENTRY_POINT_GROUP = "rl_plasticity.methods"

_REGISTRY: dict[str, type[Method]] = {}
#: Modules (built-in or an entry point's) whose import failed (a missing dependency), by name.
_FAILED: dict[str, ImportError] = {}
#: Entry points already loaded (each once per process).
_LOADED_ENTRY_POINTS: set[str] = set()


def builtin_modules() -> list[str]:
    """Every module of this package, in name order: those that define methods register them on
    import, the others (the protocol, layers, optimizers) are imported anyway by the methods.

    :return: dotted module names
    """
    folder = str(Path(__file__).parent)
    return [f"{__package__}.{m.name}" for m in pkgutil.iter_modules([folder]) if not m.ispkg]


M = TypeVar("M", bound="type[Method]")


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`Method` subclass under ``name`` (its spec name).

    :param name: lower-case name used in agent specs (``[method] name = "cbp"``) and by
        ``rl_plasticity.sb3.callbacks.MethodCallback``
    :return: the decorator; it sets the class's :attr:`Method.name`
    :raises ValueError: if another class is registered under ``name``
    """

    def register(cls: M) -> M:
        known = _REGISTRY.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"method name {name!r} is taken by {known.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return register


def registered_methods() -> dict[str, type[Method]]:
    """Every registered method by name (the built-in ones and the entry points' imported first).

    A module whose own dependency is missing (e.g. ``trac-optimizer``) is skipped with a
    warning, so one method that cannot load does not take every other one with it; asking for it
    by name raises the import error (:func:`method_class`).

    :return: name -> class
    """
    for module in builtin_modules():
        _import_once(module, module)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _LOADED_ENTRY_POINTS:
            _LOADED_ENTRY_POINTS.add(entry.name)
            _import_once(entry.module, f"{entry.module} (entry point {entry.name})")
    return dict(_REGISTRY)


def _import_once(module: str, label: str) -> None:
    """Import ``module`` (which registers its methods); a missing dependency is warned about."""
    if module in _FAILED:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if exc.name == module:  # the module itself is missing: a bug, not a dependency
            raise
        _FAILED[module] = exc
        warnings.warn(
            f"plasticity method module {label} could not be imported ({exc}); "
            "its methods are unavailable",
            stacklevel=3,
        )


def import_methods(source: str) -> str:
    """Import a user's module of methods, so that its ``@register_method`` classes register.

    :param source: a ``.py`` file or an importable module name (``my_package.methods``)
    :return: the module's name (a file is imported under a name made from its resolved path, so
        importing it again, from any process, finds the same module)
    :raises ConfigError: for a file that does not exist or a module that cannot be imported
    """
    if not source.endswith(".py"):
        try:
            importlib.import_module(source)
        except ImportError as exc:
            raise ConfigError("method_modules", source, f"an importable module ({exc})") from None
        return source
    path = Path(source).resolve()
    if not path.is_file():
        raise ConfigError("method_modules", source, f"a .py file; {path} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"rlp_methods_{path.stem}_{digest}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it, as import does (dataclasses need it)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return name


def method_class(name: str | type[Method]) -> type[Method]:
    """The class registered under ``name`` (a class is returned as it is).

    :param name: a registered name, or a :class:`Method` subclass
    :return: the class
    :raises ConfigError: for an unknown name (key ``method.name``)
    :raises ImportError: for a built-in method whose module could not be imported
    """
    # imported here: protocol re-exports this module, so a module-level import would be a circle
    from rl_plasticity.plasticity.protocol import Method

    if isinstance(name, type) and issubclass(name, Method):
        return name
    methods = registered_methods()
    if name not in methods:
        for module, exc in _FAILED.items():
            if module.rpartition(".")[2] == name:
                raise ImportError(f"method {name!r} could not be imported: {exc}") from exc
        raise ConfigError("method.name", name, one_of(name, sorted(methods)))
    return methods[name]


def method_settings(cls: type[Method]) -> dict[str, inspect.Parameter]:
    """A method's settings: the keyword parameters of its ``__init__``.

    :param cls: the method's class
    :return: name -> parameter (with its default), in signature order
    """
    params = inspect.signature(cls.__init__).parameters
    return {name: p for name, p in params.items() if p.kind == p.KEYWORD_ONLY}


def make_method(name: str | type[Method], settings: Mapping[str, Any]) -> Method:
    """An unattached method built from ``settings`` (validated by its ``__init__``).

    :param name: registered name or class
    :param settings: keyword settings
    :return: the method
    :raises ConfigError: for an unknown setting or a value the method does not allow
    """
    cls = method_class(name)
    allowed = method_settings(cls)
    for key, value in settings.items():
        if key not in allowed:
            raise ConfigError(
                key,
                value,
                f"a setting of {cls.name or cls.__name__}: " + (", ".join(allowed) or "none"),
            )
    return cls(**settings)
