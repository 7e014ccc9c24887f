"""A study folder is never silently replaced, and reading a study never creates its storage."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.errors import ConfigError
from nas.search.folder import check_readable_storage, check_storage_present, sqlite_path
from nas.search.storage import load_optuna_study, storage_url


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:////abs/s.db") == Path("/abs/s.db")
    assert sqlite_path("sqlite:///rel.db?timeout=3") == Path("rel.db")
    assert sqlite_path("sqlite:///:memory:") is None and sqlite_path("postgresql://h/db") is None


def test_a_folder_with_a_study_but_no_storage_is_an_error(tmp_path: Path) -> None:
    url = storage_url(tmp_path, None)
    check_storage_present(tmp_path, url)  # an empty folder: a new study may start
    (tmp_path / "trials.csv").write_text("number\n")
    with pytest.raises(ConfigError, match=r"holds a study \(trials\.csv\) but its storage .*study\.db is missing"):
        check_storage_present(tmp_path, url)


def test_reading_never_creates_the_storage(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text("name: s\n")
    with pytest.raises(ConfigError, match=r"the study's storage .*study\.db does not exist"):
        load_optuna_study(tmp_path, "s", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
    (tmp_path / "study.db").mkdir()
    with pytest.raises(ConfigError, match="is a directory, not an SQLite file"):
        check_readable_storage(tmp_path, storage_url(tmp_path, None))
