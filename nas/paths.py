"""Paths given on the command line, checked before any work starts.

A path is checked when it is given, not when it is finally used: ``nas train --save DIR`` used to
train for minutes and then lose the weights to ``IsADirectoryError``. Each check raises a
:class:`nas.errors.NasError` subclass naming the option, the path and what is allowed:

- a file expected where a directory is given (and the other way round);
- a path that lies under a plain file (``--out notes.txt/run``);
- a name longer than the file system allows (255 bytes per component, 4,096 in all on Linux);
- an output that is one of a study's or ablation's own files (``--out S/study.db`` would destroy
  the database): those files are written only by the commands that own them.
"""
from __future__ import annotations

import os
from pathlib import Path

from nas.errors import ConfigError, NasError

__all__ = ["RUN_FILES", "check_length", "check_input_file", "check_output_file", "check_output_dir",
           "refuse_run_file"]

# Files a study or ablation folder owns; SQLite's write-ahead log and shared memory sit beside the db.
RUN_FILES = frozenset({
    "study.db", "study.db-wal", "study.db-shm", "study.db-journal", "study.yaml", "trials.csv", "cost.jsonl",
    "cells.jsonl", "ablation.yaml", "references.json", "study.lock", "ablation.lock",
})
# Files whose presence marks a folder as a study's or an ablation's.
MARKERS = ("study.yaml", "study.db", "trials.csv", "ablation.yaml", "cells.jsonl")
NAME_MAX = 255
PATH_MAX = 4096


def _short(path: str | Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]} ({len(text):,} characters)"


def check_length(path: str | Path, option: str, error: type[NasError] = ConfigError) -> Path:
    """Refuse a path the file system cannot name (``OSError: File name too long`` otherwise)."""
    text = os.fsencode(str(path))
    longest = max((len(part) for part in text.split(b"/")), default=0)
    if longest > NAME_MAX or len(text) > PATH_MAX:
        raise error(f"{option} {_short(path)}: too long; a file name may have at most {NAME_MAX} bytes "
                    f"and a path {PATH_MAX}")
    return Path(path)


def _file_above(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` that exists and is not a directory, if any."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_input_file(path: str | Path, option: str, error: type[NasError] = ConfigError) -> Path:
    """An existing, readable file: a directory or a missing path is refused, each in its own words."""
    p = check_length(path, option, error)
    if p.is_dir():
        raise error(f"{option} {_short(p)} is a directory; give a file")
    if not p.exists():
        raise error(f"{option} {_short(p)}: file not found")
    return p


def check_output_file(path: str | Path, option: str, error: type[NasError] = ConfigError) -> Path:
    """A file that can be created: not a directory, not under a plain file, not a study's own file."""
    p = check_length(path, option, error)
    if p.is_dir():
        raise error(f"{option} {_short(p)} is a directory; give a file path such as {Path(p) / 'model.pt'}")
    above = _file_above(p)
    if above is not None:
        raise error(f"{option} {_short(p)}: {_short(above)} is a file, not a directory")
    refuse_run_file(p, option, error)
    return p


def check_output_dir(path: str | Path, option: str, error: type[NasError] = ConfigError) -> Path:
    """A directory that exists or can be created: not a plain file, not under one."""
    p = check_length(path, option, error)
    if p.exists() and not p.is_dir():
        raise error(f"{option} {_short(p)} is a file; give a directory")
    above = _file_above(p)
    if above is not None:
        raise error(f"{option} {_short(p)}: {_short(above)} is a file, not a directory")
    return p


def refuse_run_file(path: str | Path, option: str, error: type[NasError] = ConfigError,
                    run_dir: str | Path | None = None) -> None:
    """Refuse ``path`` when it is one of a study's or ablation's own files (or a checkpoint of one).

    A file counts as the run's own when it carries one of :data:`RUN_FILES`' names inside ``run_dir``
    or inside any folder that holds a study or ablation (one of :data:`MARKERS`), or lies in the
    ``checkpoints`` folder of one.
    """
    p = Path(path).absolute().resolve() if Path(path).exists() else Path(os.path.abspath(path))
    folder = p.parent
    runs = {Path(run_dir).resolve()} if run_dir is not None else set()
    owned = folder in runs or any((folder / m).exists() for m in MARKERS)
    if owned and p.name in RUN_FILES:
        raise error(f"{option} {_short(path)} is a file of the study or ablation in {folder}; "
                    f"write to a path outside its own files (e.g. {folder / 'best.yaml'})")
    if folder.name == "checkpoints" and (folder.parent in runs or any((folder.parent / m).exists() for m in MARKERS)):
        raise error(f"{option} {_short(path)} is a checkpoint of the study in {folder.parent}; write elsewhere")
