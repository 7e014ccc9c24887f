"""A study folder's integrity: a study is never silently replaced, and reading one never creates it.

A folder holding ``study.yaml`` or ``trials.csv`` once held a study; without its storage (someone
deleted ``study.db``, or the SQLite URL points elsewhere) ``optuna.create_study(load_if_exists=True)``
would start an empty study in it and the next ``trials.csv`` would overwrite the only remaining record
of the old one. Read-only commands (``status``, ``report``, ``export``) must also not create the
SQLite file just by opening it, which is what SQLAlchemy does for a missing path.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from nas.errors import ConfigError

__all__ = ["sqlite_path", "check_storage_present", "check_readable_storage"]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (``None`` for in-memory databases and other back ends)."""
    if not url.startswith("sqlite"):
        return None
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    rest = rest.split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(unquote(rest))


def check_storage_present(study_dir: Path, url: str) -> None:
    """Before a run opens ``url``: a folder that held a study must still have its SQLite storage."""
    db = sqlite_path(url)
    if db is None or db.exists():
        return
    traces = [name for name in ("study.yaml", "trials.csv") if (Path(study_dir) / name).exists()]
    if traces:
        raise ConfigError(
            f"{study_dir} holds a study ({', '.join(traces)}) but its storage {db} is missing; restore it "
            f"(the trials are recorded there), or run the study in a new folder with --out"
        )


def check_readable_storage(study_dir: Path, url: str) -> None:
    """Before a read-only command opens ``url``: a missing SQLite file is an error, never created."""
    db = sqlite_path(url)
    if db is not None and not db.exists():
        raise ConfigError(f"{study_dir}: the study's storage {db} does not exist; nothing to read "
                          f"(a study that never started its first trial has none yet)")
    if db is not None and db.is_dir():
        raise ConfigError(f"{study_dir}: the study's storage {db} is a directory, not an SQLite file")
