"""SIGINT and SIGTERM during training: the first checkpoints and stops, a second stops at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rl_plasticity.experiment.checkpoint import Checkpointer


@contextmanager
def stop_on_signals(*checkpointers: Checkpointer) -> Iterator[None]:
    """While training: the first SIGINT or SIGTERM asks every checkpointer to checkpoint and
    stop; a second one raises KeyboardInterrupt. Only in the main thread (elsewhere, nothing
    changes).

    :param checkpointers: the run's checkpointer (a population's: one per member)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if any(c.stop_signal is not None for c in checkpointers):
            raise KeyboardInterrupt
        for checkpointer in checkpointers:
            checkpointer.stop_signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def signal_name(signum: int | None) -> str:
    """The signal's name (``SIGTERM``); SIGINT when none was recorded (a KeyboardInterrupt).

    :param signum: the signal number, or None
    """
    return signal.Signals(signum).name if signum is not None else "SIGINT"
