"""The study directory and its Optuna storage.

A study directory holds everything needed to resume or analyse a study after any crash:
``study.yaml`` (the resolved config), ``study.db`` (the default SQLite storage; any SQLAlchemy URL
may replace it), ``cost.jsonl`` (the cost cache), ``trials.csv``, ``checkpoints/`` and ``ray/``, and
``.driver.lock`` while a driver runs it (:mod:`nas.search.lock`). Several drivers may share one storage
URL, each with its own directory (:mod:`nas.search.claims`, :mod:`nas.search.heartbeat`).
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.errors import ConfigError

__all__ = [
    "STUDY_FILE",
    "storage_url",
    "open_storage",
    "load_optuna_study",
    "requeue_interrupted",
    "finished_count",
]

STUDY_FILE = "study.yaml"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def storage_url(study_dir: Path, storage: str | None) -> str:
    """The configured SQLAlchemy URL, or a SQLite file inside the study directory."""
    return storage or f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"


# What a database says when another process created the study tables (or stamped their schema
# version) between this one's check and its own write: PostgreSQL, then SQLite.
_CREATION_RACES = ("already exists", "duplicate key", "UNIQUE constraint failed")


def open_storage(url: str, *, heartbeat_interval: float | None = None,
                 grace_period: float | None = None) -> optuna.storages.BaseStorage:
    """An RDB storage for ``url``; SQLite gets a generous lock timeout for concurrent readers.

    With ``heartbeat_interval`` the storage records drivers' heartbeats: a RUNNING trial whose
    heartbeat is older than ``grace_period`` belongs to a dead driver, and
    :func:`nas.search.claims.requeue_stale` queues it again.
    """
    import time
    import warnings

    from nas.reach import probe_storage_url

    probe_storage_url(url)  # a server that does not answer fails in seconds (nas.reach)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if heartbeat_interval:
        from nas.search.claims import requeue_stale

        kwargs.update(heartbeat_interval=int(max(1, round(heartbeat_interval))),
                      grace_period=None if grace_period is None else int(max(1, round(grace_period))),
                      heartbeat_stale_trial_callback=requeue_stale)
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are experimental in Optuna; chosen knowingly
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, **kwargs)
            break
        except Exception as exc:  # bad URL, missing driver, unreachable server
            text = str(exc).split("\n")[0]
            if attempt < 4 and any(race in text for race in _CREATION_RACES):
                time.sleep(0.3 * (attempt + 1))  # two processes opening a new storage race to create it
                continue
            raise ConfigError(f"storage {url!r} cannot be opened: {type(exc).__name__}: {text}") from None
    if url.startswith("sqlite"):
        _fast_sqlite(storage)
    return storage


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging with ``synchronous=NORMAL``: a trial's record is many small commits, and
    WAL makes each one cheap (no fsync per commit) while staying durable across a killed process;
    readers (``nas study status`` during a run) no longer block the writer."""
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections made before the listener existed are dropped


def load_optuna_study(study_dir: Path, name: str, storage: str | None) -> optuna.Study:
    """Open an existing study for reading."""
    from nas.search.folder import check_readable_storage

    url = storage_url(study_dir, storage)
    check_readable_storage(study_dir, url)  # reading never creates the storage
    from nas.search.folder import sqlite_path
    from nas.search.identity import check_sqlite_storage, require_nas_study

    db = sqlite_path(url)
    if db is not None:  # read-only first: a foreign SQLite file is never switched to WAL by opening it
        check_sqlite_storage(db, name, own_file=storage is None)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in storage {url}") from None
    return require_nas_study(study, url)  # a plain-Optuna study is never shown as a nas study


def requeue_interrupted(study: optuna.Study, only: Collection[int] | None = None) -> list[int]:
    """Put trials left RUNNING by a killed driver back in the queue (WAITING) and return their numbers.

    Their sampled parameters stay stored, so the next ``ask()`` replays the same architecture:
    an interrupted trial is re-run, not lost and not duplicated. ``only`` limits this to those trial
    ids (a driver's own trials: live trials of other drivers on a shared storage are never touched).
    """
    storage = study._storage
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if only is not None and trial._trial_id not in only:
            continue
        storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
        numbers.append(trial.number)
    return numbers


def finished_count(study: optuna.Study) -> int:
    """Trials that count against ``n_trials``: finished ones, except candidates that pre-screening
    recorded without training (``status: prescreened``) and a stale trial of a dead driver that was
    queued again (its copy, whose ``retry_history`` names it, counts instead). Infeasible trials count."""
    trials = study.get_trials(deepcopy=False)
    requeued = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return sum(1 for t in trials if t.state in FINISHED and t.user_attrs.get("status") != "prescreened"
               and not (t.state == TrialState.FAIL and t.number in requeued))
