"""One study folder, one driver: an advisory lock on the folder while a driver runs its study.

Two drivers writing one folder's SQLite file, ``trials.csv`` and checkpoints would race on table
creation and re-queue each other's live trials. ``fcntl.flock`` on ``<study>/.driver.lock`` is
released by the kernel when the holder dies (even by ``kill -9``), so a stale lock never blocks a
resume; the file's text names the holder so the refused driver can say who holds it.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nas.errors import ConfigError

__all__ = ["LOCK_FILE", "StudyLockedError", "study_lock", "lock_holder"]

LOCK_FILE = ".driver.lock"


class StudyLockedError(ConfigError):
    """Another live driver runs the study in this folder."""


def lock_holder(study_dir: str | Path) -> dict[str, object] | None:
    """The recorded holder of the folder's lock (host, pid, since), or None when nothing was recorded."""
    try:
        text = (Path(study_dir) / LOCK_FILE).read_text()
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


@contextmanager
def study_lock(study_dir: str | Path) -> Iterator[None]:
    """Hold the study folder's driver lock for the ``with`` block, or raise :class:`StudyLockedError`."""
    folder = Path(study_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(folder) or {}
            since = holder.get("since")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(since))) if since else "an unknown time"
            raise StudyLockedError(
                f"study folder {folder} is in use by another driver (host {holder.get('host', '?')}, "
                f"PID {holder.get('pid', '?')}, since {when}); wait for it to finish, or run more drivers on a "
                f"shared storage: URL, each with its own --out"
            ) from None
        record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
