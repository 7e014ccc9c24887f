"""A study's start-up, overlapped: Ray starts on a thread while the driver reads the study and data.

From the command to the first trial result, a study pays for Ray's start (its GCS, raylet and
worker processes: seconds), the driver's imports (torch, Optuna, Ray Tune), reading the dataset,
and then the first workers' own imports before the first training begins. Done one after the other
they add up; most of them do not depend on each other. :class:`BackgroundRay` starts Ray (and checks
the cluster's resources) on a thread of its own while the main thread opens the study, loads the
space, the dataset and Ray Tune, and joins it only when the first trial is about to be scheduled.
``nas study run --profile`` shows the marks of each step (:mod:`nas.search.clock`).

The thread stays alive, idle, until :meth:`BackgroundRay.release` (after ``ray.shutdown``): Ray
ties its GCS and raylet to the thread that started them (Linux's parent-death signal fires when
that *thread* exits), so a thread that ended after ``ray.init`` would take the local cluster with it.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from nas.search.clock import PROFILE

__all__ = ["BackgroundRay", "drop_log_message", "import_tune_telemetry", "PRESTART_ENV", "no_prestart_env"]

PRESTART_ENV = "RAY_prestart_worker_first_driver"  # Ray's system config, read by the raylet at its start


def no_prestart_env() -> dict[str, str]:
    """The environment a local Ray must start with so that it starts no idle workers for tasks.

    When the first driver connects, Ray starts one idle Python worker per CPU for the tasks it may send.
    A study's trials run in Ray Tune actors, which never take them (each trainable has a runtime
    environment of its own, see docs/search_efficiency.md), so on a small machine the two idle workers
    only take CPU (0.7 s of a 2-core machine) from the driver and the first trial workers while the
    first result waits on them: about 0.4 s of it on the quickstart. Empty when the user set the
    variable (``RAY_prestart_worker_first_driver=1 nas study run ...`` restores Ray's default).
    """
    if PRESTART_ENV in os.environ:
        return {}
    return {PRESTART_ENV: "0"}


def import_tune_telemetry() -> None:
    """Import the logger integrations Ray Tune's telemetry would import at the start of ``Tuner.fit``.

    A study that passes callbacks (checkpoint locations, the trackers of ``logging``) makes Tune import its
    MLflow, W&B, Comet and Aim logger modules before the first trial is launched, to count the callbacks
    for its usage statistics (``ray.air._internal.usage._count_callbacks``): with MLflow installed (the
    ``tracking`` extra) that is about 0.75 s on the path to the first result. Calling that same function
    here, while Ray starts on its thread, does those imports early and follows Ray's own list; a Ray
    release without it is left alone.
    """
    try:
        from ray.air._internal.usage import _count_callbacks
    except ImportError:
        return
    _count_callbacks([])


class _DropMessage(logging.Filter):
    """Drops a logger's records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def drop_log_message(logger: str, text: str) -> None:
    """Silence one message of one of Ray's loggers (once per process, however often it is asked) that
    says nothing to a study's user; every other record of that logger still goes through."""
    log = logging.getLogger(logger)
    if not any(isinstance(f, _DropMessage) and f.text == text for f in log.filters):
        log.addFilter(_DropMessage(text))


class BackgroundRay:
    """``start_ray_checked(init_ray, address, resources)`` on a thread; :meth:`join` returns its result
    (True when this run started Ray) or raises its error, as the plain call would."""

    def __init__(self, start: Callable[..., bool], init_ray: Callable[[str | None], bool], address: str | None,
                 resources: Mapping[str, Any]) -> None:
        self._call = lambda: start(init_ray, address, resources)
        self._started: bool | None = None
        self._error: BaseException | None = None
        self._release = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-ray-start", daemon=True)

    def start(self) -> "BackgroundRay":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # what ray.init does on the main thread
        # Ray warns that it sets no SIGTERM handler when started off the main thread; we set it above
        drop_log_message("ray._private.worker", "SIGTERM handler is not set")
        PROFILE.mark("Ray start-up begins (on a thread)")
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._started = self._call()
            PROFILE.mark("Ray is up")
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by join()
            self._error = exc
        self._ready.set()
        if self._started:
            self._release.wait()  # Ray's processes live as long as this thread (see the module docstring)

    def join(self) -> bool:
        """Wait for Ray; raise what its start raised."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return bool(self._started)

    def release(self) -> None:
        """Ray was shut down: the thread may end."""
        self._release.set()

    def abandon(self) -> None:
        """The run failed before it needed Ray: wait for the start, then stop a Ray this run started."""
        self._ready.wait()
        if self._started:
            import ray

            ray.shutdown()
        self.release()
