"""Moved to :mod:`rl_plasticity.logger_keys` (shared by the metrics and the method callbacks)."""

from rl_plasticity.logger_keys import (
    LOGGER_KEY_LENGTH,
    SEQUENTIAL_LABELS,
    check_logger_keys,
    layer_labels,
    stdout_key,
)

__all__ = [
    "LOGGER_KEY_LENGTH",
    "SEQUENTIAL_LABELS",
    "check_logger_keys",
    "layer_labels",
    "stdout_key",
]
