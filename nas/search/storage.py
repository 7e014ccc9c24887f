"""The study directory and its Optuna storage.

A study directory holds everything needed to resume or analyse a study after any crash:
``study.yaml`` (the resolved config), ``study.db`` (the default SQLite storage; any SQLAlchemy URL
may replace it), ``cost.jsonl`` (the cost cache), ``trials.csv``, ``checkpoints/`` and ``ray/``.
"""
from __future__ import annotations

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


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage for ``url``; SQLite gets a generous lock timeout for concurrent readers."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        storage = optuna.storages.RDBStorage(url, **kwargs)
    except Exception as exc:  # bad URL, missing driver, unreachable server
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""  # not SQLAlchemy's "Background" line
        raise ConfigError(f"storage {url!r} cannot be opened: {type(exc).__name__}: {first}") from None
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
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in storage {url}") from None


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Put trials left RUNNING by a killed driver back in the queue (WAITING) and return their numbers.

    Their sampled parameters stay stored, so the next ``ask()`` replays the same architecture:
    an interrupted trial is re-run, not lost and not duplicated.
    """
    storage = study._storage
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
        numbers.append(trial.number)
    return numbers


def finished_count(study: optuna.Study) -> int:
    """Trials that count against ``n_trials``: every finished one except candidates that pre-screening
    recorded without training (``status: prescreened``); infeasible trials count."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED)
               if t.user_attrs.get("status") != "prescreened")
