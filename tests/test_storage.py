"""Opening a study's storage: a process that loses the race to create a new storage retries."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc

from nas.errors import ConfigError
from nas.search import storage as storage_mod


def test_losing_the_race_to_create_a_new_sqlite_storage_retries(tmp_path: Path, monkeypatch) -> None:
    """A second process (a driver, `nas study status`, a test polling the file) can create the tables and
    stamp the schema version between this one's check and its write: SQLite then says UNIQUE constraint
    failed on ``alembic_version``, which used to end the study at its start."""
    real, calls = optuna.storages.RDBStorage, []

    def racing(url: str, **kwargs):  # noqa: ANN202 - the stand-in for Optuna's class
        calls.append(url)
        if len(calls) == 1:
            real(url, **kwargs)  # the other process wins the race...
            raise sqlalchemy.exc.IntegrityError(  # ...and this one's own stamp collides with it
                "INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed: alembic_version.version_num"))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    opened = storage_mod.open_storage(url)
    assert len(calls) == 2 and isinstance(opened, real)
    monkeypatch.setattr(optuna.storages, "RDBStorage", real)
    optuna.create_study(study_name="s", storage=opened)  # the storage works

    def broken(url: str, **kwargs):  # noqa: ANN202
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed: studies.name"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)  # any other error is not a race: no retry
    with pytest.raises(ConfigError, match="cannot be opened: IntegrityError"):
        storage_mod.open_storage(url)
