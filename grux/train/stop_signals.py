"""SIGTERM and SIGINT (Ctrl-C) as requests to stop cleanly: finish the step, save, exit.

The handlers are installed as early as possible (``grux-train`` installs them before importing
JAX, the trainer again when used as a library), so a signal that arrives during start-up,
dataset preparation or compilation is recorded instead of killing the process; the training
loop reads :func:`requested` after every step. A second Ctrl-C interrupts at once
(``KeyboardInterrupt``), for a user who does not want to wait for the save.
"""
from __future__ import annotations

import signal
import threading

EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130}   # 128 + signal number, as a shell reports it

_requested: str | None = None
_previous: dict[int, object] = {}


def _handle(signum, frame) -> None:
    global _requested
    name = signal.Signals(signum).name
    if _requested == "SIGINT" and name == "SIGINT":
        raise KeyboardInterrupt  # the second Ctrl-C: stop now, without saving
    _requested = _requested or name


def install() -> bool:
    """Install the handlers (idempotent); False where signals cannot be handled (not the
    main thread), where the default behaviour stays."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in (signal.SIGTERM, signal.SIGINT):
        if sig not in _previous:
            _previous[sig] = signal.signal(sig, _handle)
    return True


def uninstall() -> None:
    """Restore the handlers that were there before :func:`install` and forget requests."""
    global _requested
    for sig, previous in list(_previous.items()):
        signal.signal(sig, previous)
        del _previous[sig]
    _requested = None


def installed() -> bool:
    return bool(_previous)


def requested() -> str | None:
    """``"SIGTERM"`` / ``"SIGINT"`` once one arrived, else ``None``."""
    return _requested
