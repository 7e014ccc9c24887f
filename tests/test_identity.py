"""A nas study is marked in its Optuna storage; a study or storage nas did not make is refused."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.search.identity import (KIND_ATTR, ForeignStudyError, check_folder_storage, check_sqlite_storage,
                                 create_nas_study, is_nas_study, require_nas_study)
from nas.search.storage import load_optuna_study, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _url(folder: Path) -> str:
    return f"sqlite:///{folder / 'study.db'}"


def test_a_study_nas_creates_is_marked_and_reopened(tmp_path: Path) -> None:
    url = _url(tmp_path)
    study = create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=True)
    assert is_nas_study(study)
    assert optuna.load_study(study_name="s", storage=url)._storage.get_study_system_attrs(study._study_id)[KIND_ATTR] == "study"
    check_folder_storage(tmp_path, "s", None)
    assert load_optuna_study(tmp_path, "s", None).study_name == "s"
    create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=True)  # a resume opens it again


def test_a_plain_optuna_study_is_refused_by_every_way_in(tmp_path: Path) -> None:
    url = _url(tmp_path)
    plain = optuna.create_study(study_name="s", storage=url)
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)  # a plain study with its own trials
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ForeignStudyError, match=r"already holds a study 's' that nas did not make \(no nas:kind mark\)"):
        check_folder_storage(tmp_path, "s", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # read-only: nothing written
    with pytest.raises(ForeignStudyError, match=r"already holds a study 's' that nas did not make"):
        load_optuna_study(tmp_path, "s", None)  # checked read-only, before Optuna opens (and alters) the file
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    storage = open_storage(url)
    with pytest.raises(ForeignStudyError, match=r"study 's' was not made by nas"):  # a storage opened elsewhere
        require_nas_study(optuna.load_study(study_name="s", storage=storage), url)
    with pytest.raises(ForeignStudyError, match=r"already holds a study 's' that nas did not make"):
        create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=False)


@pytest.mark.parametrize("other", ["other", "s-2"])
def test_a_study_folders_own_file_holds_its_study_only(tmp_path: Path, other: str) -> None:
    url = _url(tmp_path)
    create_nas_study(open_storage(url), url, other, ["maximize"], own_file=True)
    with pytest.raises(ForeignStudyError, match=rf"already holds other studies \('{other}'\)"):
        check_folder_storage(tmp_path, "s", None)
    with pytest.raises(ForeignStudyError, match="already holds other studies"):
        create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=True)
    create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=False)  # a shared storage: side by side


def test_an_empty_unmarked_study_on_a_shared_storage_is_adopted_as_another_driver_may_have_just_made_it(
        tmp_path: Path) -> None:
    url = _url(tmp_path)
    optuna.create_study(study_name="s", storage=url)  # created, not yet marked: what a racing driver leaves
    check_sqlite_storage(tmp_path / "study.db", "s", own_file=False)
    assert is_nas_study(create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=False))


def test_an_empty_unmarked_study_in_a_folders_own_file_is_refused(tmp_path: Path) -> None:
    url = _url(tmp_path)
    optuna.create_study(study_name="s", storage=url)  # plain Optuna made the folder's study.db: one driver per folder
    before = (tmp_path / "study.db").read_bytes()
    with pytest.raises(ForeignStudyError, match=r"already holds a study 's' that nas did not make"):
        check_folder_storage(tmp_path, "s", None)
    assert (tmp_path / "study.db").read_bytes() == before  # read-only: not a byte written
    with pytest.raises(ForeignStudyError, match=r"already holds a study 's' that nas did not make"):
        create_nas_study(open_storage(url), url, "s", ["maximize"], own_file=True)
    assert not is_nas_study(optuna.load_study(study_name="s", storage=url))


def test_studies_written_before_the_mark_are_recognised_by_their_attributes(tmp_path: Path) -> None:
    url = _url(tmp_path)
    old = optuna.create_study(study_name="s", storage=url)
    old.set_user_attr("config", {"name": "s"})
    old.set_user_attr("objectives", ["val_acc"])
    check_folder_storage(tmp_path, "s", None)
    assert load_optuna_study(tmp_path, "s", None).study_name == "s"


@pytest.mark.parametrize("content", [b"not a database", b"SQLite format 3\x00" + b"\x00" * 200])
def test_a_file_that_is_no_optuna_storage_is_refused_without_writing(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "study.db").write_bytes(content)
    with pytest.raises(ForeignStudyError, match=r"study\.db is not an Optuna storage made by nas"):
        check_folder_storage(tmp_path, "s", None)
    assert (tmp_path / "study.db").read_bytes() == content
