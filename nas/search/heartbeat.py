"""The driver's heartbeat: proof, stored with the study, that this driver's trials are alive.

Optuna records heartbeats only inside ``study.optimize``; here trials are asked and told around Ray
Tune, so the driver keeps its own thread. Every ``interval`` seconds it records a heartbeat for each
trial the driver owns (asked and not yet told, whichever node Ray runs it on), then fails the stale
trials of dead drivers through Optuna's ``fail_stale_trials``, whose callback
(:func:`nas.search.claims.requeue_stale`) queues them again. A live driver's trials always have a
fresh heartbeat, so other drivers never touch them.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import optuna

__all__ = ["Heartbeat", "beat", "fail_stale"]


def beat(study: optuna.Study, trial_ids: Iterable[int]) -> None:
    """Record a heartbeat now for each of ``trial_ids`` (no-op on a storage without heartbeats)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    if is_heartbeat_enabled(storage):
        for trial_id in list(trial_ids):
            storage.record_heartbeat(trial_id)


def fail_stale(study: optuna.Study) -> None:
    """Fail and re-queue the RUNNING trials whose heartbeat is older than the grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class Heartbeat:
    """A daemon thread beating for ``owned()`` trials and reaping stale ones until :meth:`stop`."""

    def __init__(self, study: optuna.Study, owned: Callable[[], Iterable[int]], interval: float) -> None:
        self.study, self.owned, self.interval = study, owned, float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-heartbeat", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                beat(self.study, self.owned())
                fail_stale(self.study)
            except Exception as exc:  # a storage hiccup must not kill the driver; the next beat retries
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)
