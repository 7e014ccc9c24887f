"""A nas study is recognisable in its Optuna storage; a study or storage that is not one is refused.

An Optuna storage may hold studies made by plain Optuna (or another tool) under any name. Without a
mark, ``nas study run --out DIR`` would write its trials into a ``DIR/study.db`` that Optuna made, and
``status``/``report`` would show plain-Optuna trials as a front with blank layouts. So a study is
marked when nas creates it, with the system attributes ``nas:kind`` (``"study"``) and ``nas:format``
(:data:`FORMAT`), and every command that opens a study checks the mark first. Studies written before
the mark existed are recognised by the user attributes nas has always written (``config`` and
``objectives``), and marked on their next run.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import optuna

from nas.errors import ConfigError

__all__ = ["KIND_ATTR", "FORMAT_ATTR", "FORMAT", "ForeignStudyError", "is_nas_study", "require_nas_study",
           "create_nas_study", "check_folder_storage", "check_sqlite_storage"]

KIND_ATTR = "nas:kind"
FORMAT_ATTR = "nas:format"
FORMAT = 1


class ForeignStudyError(ConfigError):
    """An Optuna study or storage that nas did not make."""


def system_attrs(study: Any) -> dict[str, Any]:
    """A study's system attributes (``FrozenStudy`` has them; an ``optuna.Study`` asks its storage)."""
    if hasattr(study, "system_attrs"):
        return dict(study.system_attrs)
    return dict(study._storage.get_study_system_attrs(study._study_id))


def is_nas_study(study: Any) -> bool:
    """Whether ``study`` (an ``optuna.Study`` or a ``FrozenStudy``) was made by nas."""
    if system_attrs(study).get(KIND_ATTR) == "study":
        return True
    user = study.user_attrs
    return isinstance(user.get("config"), dict) and isinstance(user.get("objectives"), list)


def require_nas_study(study: optuna.Study, url: str) -> optuna.Study:
    """``study``, or :class:`ForeignStudyError` when nas did not make it."""
    if not is_nas_study(study):
        raise ForeignStudyError(
            f"storage {url}: study {study.study_name!r} was not made by nas (it has no {KIND_ATTR} mark and no "
            f"nas config); nas reads and writes only its own studies: give the study another name, or another "
            f"storage or --out")
    return study


def create_nas_study(storage: optuna.storages.BaseStorage, url: str, name: str, directions: list[str], *,
                     own_file: bool) -> optuna.Study:
    """Create (or open) the nas study ``name`` in ``storage`` and mark it; refuse a foreign one.

    ``own_file``: the storage is the study folder's own SQLite file, which must hold nothing but this
    study (on a shared server, other studies of any kind may live beside it).
    """
    summaries = storage.get_all_studies()
    same = [s for s in summaries if s.study_name == name]
    if same and not is_nas_study(same[0]) and (own_file or not _empty(storage, same[0])):
        raise ForeignStudyError(
            f"storage {url} already holds a study {name!r} that nas did not make (no {KIND_ATTR} mark); nas "
            f"never writes into it: give the study another name, or another storage or --out")
    if own_file:
        other = sorted(s.study_name for s in summaries if s.study_name != name)
        if other:
            shown = ", ".join(repr(n) for n in other[:3]) + (", ..." if len(other) > 3 else "")
            raise ForeignStudyError(
                f"storage {url} already holds other studies ({shown}); a study folder's study.db holds its own "
                f"study only: choose a new --out")
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    for attempt in range(5):  # drivers started together mark the study at the same moment
        if system_attrs(study).get(FORMAT_ATTR) == FORMAT:
            break
        try:
            storage.set_study_system_attr(study._study_id, KIND_ATTR, "study")
            storage.set_study_system_attr(study._study_id, FORMAT_ATTR, FORMAT)
        except Exception:  # noqa: BLE001 - another driver's insert of the same attribute won: look again
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    return study


def _empty(storage: Any, summary: Any) -> bool:
    """A study with no trials and no attributes: on a shared storage, one another nas driver has just
    created and not yet marked (or an empty study of no one's), which is safe to adopt. A study folder's
    own ``study.db`` has one driver at a time (the folder lock), so there an unmarked study is foreign."""
    return not summary.user_attrs and not storage.get_all_trials(summary._study_id, deepcopy=False)


def check_folder_storage(study_dir: str | Path, name: str, storage: str | None) -> None:
    """Before a run writes anything into ``study_dir``: its own ``study.db``, if there, must be nas's.

    Read with SQLite in read-only mode, so a foreign folder is refused without a byte written to it
    (no marker, no ``study.yaml``, no lock file).
    """
    if storage is not None:
        return  # a shared storage is checked when it is opened (create_nas_study)
    check_sqlite_storage(Path(study_dir) / "study.db", name, own_file=True)


def check_sqlite_storage(db: Path, name: str, *, own_file: bool) -> None:
    """Refuse an SQLite file (read in read-only mode) that holds a study nas did not make, or, when it is
    a study folder's ``own_file``, any other study; a missing file passes (nothing to check yet)."""
    import json
    import sqlite3

    if not db.is_file():
        return
    url = f"sqlite:///{db.resolve()}"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True, timeout=60)) as con:
            rows = con.execute("SELECT study_id, study_name FROM studies").fetchall()
            system = con.execute("SELECT study_id, key, value_json FROM study_system_attributes").fetchall()
            user = con.execute("SELECT study_id, key FROM study_user_attributes").fetchall()
            with_trials = {sid for (sid,) in con.execute("SELECT DISTINCT study_id FROM trials").fetchall()}
    except sqlite3.DatabaseError as exc:
        raise ForeignStudyError(f"{db} is not an Optuna storage made by nas ({exc}); nas never writes into it: "
                                f"choose a new --out") from None
    marked = {sid for sid, key, value in system if key == KIND_ATTR and json.loads(value) == "study"}
    legacy = {sid for sid, key in user if key == "config"} & {sid for sid, key in user if key == "objectives"}
    # on a shared storage, a study another driver has just created and not yet marked; never in a folder's own file
    empty = set() if own_file else {sid for sid, _ in rows} - with_trials - {sid for sid, _ in user}
    for sid, study_name in rows:
        if sid not in marked | legacy | empty:
            raise ForeignStudyError(f"storage {url} already holds a study {study_name!r} that nas did not make (no "
                                    f"{KIND_ATTR} mark); nas never writes into it: choose a new --out")
    other = sorted(n for _, n in rows if n != name)
    if other and own_file:
        shown = ", ".join(repr(n) for n in other[:3]) + (", ..." if len(other) > 3 else "")
        raise ForeignStudyError(f"storage {url} already holds other studies ({shown}); a study folder's study.db "
                                f"holds its own study only: choose a new --out")
