"""The study's clock: seconds since the command started, and where its start-up time went.

A user times a study from the moment they press Enter, so the progress lines count from the start
of the process (read from ``/proc`` on Linux: interpreter start and imports included), not from the
moment Ray is up. :class:`StartupProfile` keeps named marks on that clock; ``nas study run
--profile`` prints them with the first trial's own marks (worker start, imports, data, first epoch,
first result), which is how the start-up breakdown of ``docs/search_efficiency.md`` was measured.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

__all__ = ["command_start", "since_start", "StartupProfile", "PROFILE"]

_FALLBACK = time.time()  # this module's import: the best guess where /proc is missing


def _process_start() -> float | None:
    """The process's start time (seconds since the epoch) from ``/proc``; None elsewhere.

    ``/proc/self/stat`` gives the start in clock ticks after boot. The boot moment is taken from
    ``CLOCK_BOOTTIME`` (the clock those ticks count on), not from ``btime`` in ``/proc/stat``: that one
    is whole seconds, and its truncation put the start up to a second early.
    """
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime (field 22), in clock ticks after boot; fields[0] is field 3
        since_boot = ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


_START = _process_start() or _FALLBACK


def command_start() -> float:
    """When this command started (``time.time()`` units)."""
    return _START


def since_start(when: float | None = None) -> float:
    """Seconds from the command's start to ``when`` (default: now)."""
    return (time.time() if when is None else when) - _START


class StartupProfile:
    """Named moments of the start-up on the command's clock, kept in the order they happened."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []
        self.enabled = False
        self._lock = threading.Lock()

    def mark(self, name: str, when: float | None = None) -> None:
        with self._lock:
            self.marks.append((name, since_start(when)))

    def report(self, trial_marks: dict[str, Any] | None = None, out: Any = None) -> None:
        """Print one ``profile`` line per mark (seconds since the command), the first trial's too."""
        if not self.enabled:
            return
        out = out or sys.stderr
        rows = list(self.marks)
        for name, when in (trial_marks or {}).items():
            if isinstance(when, (int, float)):
                rows.append((name, since_start(float(when))))
        rows.sort(key=lambda r: r[1])
        previous = 0.0
        for name, at in rows:
            print(f"profile {at:7.2f} s  (+{max(0.0, at - previous):5.2f})  {name}", file=out, flush=True)
            previous = max(previous, at)


PROFILE = StartupProfile()
