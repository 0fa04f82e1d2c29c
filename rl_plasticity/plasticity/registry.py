"""The registry of plasticity methods: one line registers a :class:`~.protocol.Method` subclass.

``@register_method("cbp")`` names a method for agent specs (``[method] name = "cbp"``) and the
SB3 callback (``MethodCallback("cbp", ...)``); :func:`make_method` builds one, unattached, from its
settings, which are the keyword-only parameters of its ``__init__`` (:func:`method_settings`).
The built-in methods are the modules of :data:`BUILTIN_MODULES`; ``rlp docs`` writes their list
into ``docs/methods.md``.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from rl_plasticity.errors import ConfigError

if TYPE_CHECKING:
    from rl_plasticity.plasticity.protocol import Method

#: Modules that define the built-in methods; imported by :func:`registered_methods`.
BUILTIN_MODULES = (
    "rl_plasticity.plasticity.cbp",
    "rl_plasticity.plasticity.redo",
    "rl_plasticity.plasticity.snp",
    "rl_plasticity.plasticity.l2init",
    "rl_plasticity.plasticity.reset",
    "rl_plasticity.plasticity.layernorm",
    "rl_plasticity.plasticity.crelu",
    "rl_plasticity.plasticity.fourier",
    "rl_plasticity.plasticity.nap",
    "rl_plasticity.plasticity.layer_reset",
    "rl_plasticity.plasticity.injection",
    "rl_plasticity.plasticity.er",
    "rl_plasticity.plasticity.parseval",
    "rl_plasticity.plasticity.spectral",
    "rl_plasticity.plasticity.noisy_sgd",
    "rl_plasticity.plasticity.weight_clipping",
    "rl_plasticity.plasticity.regrama",
    "rl_plasticity.plasticity.upgd",
    "rl_plasticity.plasticity.trac",
)

_REGISTRY: dict[str, type[Method]] = {}
#: Built-in modules whose import failed (a missing dependency), by module name.
_FAILED: dict[str, ImportError] = {}

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
    """Every registered method by name (the built-in ones are imported first).

    A built-in module whose own dependency is missing (e.g. ``trac-optimizer``) is skipped with a
    warning, so one method that cannot load does not take every other one with it; asking for it
    by name raises the import error (:func:`method_class`).

    :return: name -> class
    """
    for module in BUILTIN_MODULES:
        if module in _FAILED:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if exc.name == module:  # the module itself is missing: a bug here, not a dependency
                raise
            _FAILED[module] = exc
            warnings.warn(
                f"plasticity method module {module} could not be imported ({exc}); "
                "its method is unavailable",
                stacklevel=2,
            )
    return dict(_REGISTRY)


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
        raise ConfigError("method.name", name, "one of: " + ", ".join(sorted(methods)))
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
