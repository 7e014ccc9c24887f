"""SIGTERM and SIGHUP end a long command the way Ctrl+C does.

A batch system stops a job with SIGTERM, a closed terminal sends SIGHUP; both used to kill ``nas study
run`` or ``nas ablate`` with Ray's native dump, no summary line and trials left RUNNING. While a
command runs, :func:`handled` turns both into the :class:`KeyboardInterrupt` that Ctrl+C raises, so
every long command (``study run``/``resume``/``confirm``, ``ablate``, ``train``) runs the same
clean-up (:func:`nas.search.guard.fit_guarded`: trials queued again, ``trials.csv`` written, Ray
stopped) and prints the same one line with the resume command; the exit status is 128 + the signal's
number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP), as a shell reports a process the signal killed.

``ray.init`` installs its own SIGTERM handler in the driver (``sys.exit(15)``); :func:`reinstall` puts
ours back right after Ray starts.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["HANDLED", "handled", "reinstall", "received", "exit_status", "signal_name"]

HANDLED = (signal.SIGTERM, signal.SIGHUP)
_state: dict[str, Any] = {"active": False, "received": None}


def _handler(signum: int, _frame: FrameType | None) -> None:
    if _state["received"] is None:
        _state["received"] = signum
    raise KeyboardInterrupt


def _sigint(signum: int, frame: FrameType | None) -> None:
    if _state["received"] is None:
        _state["received"] = signum
    signal.default_int_handler(signum, frame)


def reinstall() -> None:
    """Install the handlers again (after a library such as Ray replaced them); only while active."""
    if not _state["active"] or threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        signal.signal(sig, _handler)
    signal.signal(signal.SIGINT, _sigint)


@contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` like SIGINT; restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (*HANDLED, signal.SIGINT)}
    _state.update(active=True, received=None)
    reinstall()
    try:
        yield
    finally:
        _state["active"] = False
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def received() -> int:
    """The signal that interrupted the command (SIGINT when none was recorded: a KeyboardInterrupt)."""
    return int(_state["received"] or signal.SIGINT)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status() -> int:
    """128 + the number of the signal that interrupted the command."""
    return 128 + received()
