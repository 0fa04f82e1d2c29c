"""The one error type for bad configuration, shared by every layer."""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any

#: Characters of the offending value's repr shown in a message (the message is one line).
MAX_VALUE_CHARS = 80


class ConfigError(ValueError):
    """A configuration value that is not allowed.

    Raised by the layer that knows what is allowed; the spec loader adds the file. The message is
    one line: ``<file>: <key>: got <value>; <allowed>``.

    :param key: dotted key of the offending value (``"method.replacement_rate"``), or ``""``
    :param value: what was given
    :param allowed: what is allowed, in words (``"one of: ppo, sac"``)
    :param file: the spec file, when known
    """

    def __init__(self, key: str, value: Any, allowed: str, file: str | None = None) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.file = file
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.file}: " if self.file else ""
        key = f"{self.key}: " if self.key else ""
        value = repr(self.value)
        if len(value) > MAX_VALUE_CHARS:  # a 400-digit integer or a whole table
            value = value[: MAX_VALUE_CHARS - 3] + "..."
        return f"{where}{key}got {value}; {self.allowed}"

    def with_file(self, file: str) -> ConfigError:
        """The same error, naming ``file``."""
        return ConfigError(self.key, self.value, self.allowed, file)

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` put before its key (``"method"`` + ``"rho"``)."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.value, self.allowed, self.file)


def did_you_mean(given: Any, options: Iterable[str]) -> str:
    """``" (did you mean ppo-cbp?)"`` when ``given`` is close to one of ``options``, else ``""``.

    :param given: what was given (a typo of an option, or anything else)
    :param options: the allowed names
    """
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, list(options), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def one_of(given: Any, options: Iterable[str]) -> str:
    """``"one of: a, b, c"``, with ``" (did you mean b?)"`` when ``given`` is close to an option:
    the words for :class:`ConfigError`'s ``allowed`` when a name is not one of a list.

    :param given: what was given
    :param options: the allowed names
    """
    options = list(options)
    return "one of: " + ", ".join(options) + did_you_mean(given, options)


#: Packages whose frames a warning skips to reach the user's line (those rl_plasticity runs
#: inside: SB3 calls our callbacks, torch our hooks, gymnasium our wrappers).
_LIBRARIES = ("rl_plasticity", "stable_baselines3", "gymnasium", "torch")


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the user's line: the first caller outside rl_plasticity and
    the libraries it runs inside (e.g. the line calling ``model.learn``, not SB3's
    ``callbacks.py`` that calls a callback). With no such caller (``rlp``), the outermost frame.

    :param message: the warning
    :param category: its class
    """
    prefixes = tuple(
        os.path.dirname(module.__file__) + os.sep
        for module in map(sys.modules.get, _LIBRARIES)
        if module is not None and getattr(module, "__file__", None)
    )
    frame, level = sys._getframe(1), 2  # stacklevel 2: warn_user's caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(prefixes):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
