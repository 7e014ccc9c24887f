"""The write policy: who may write where, and how every file is written.

Every command that writes goes through this module, so that nothing a command writes can land on
another's files:

- **A folder knows its owner.** A study, an ablation, a confirmation and a report each claim their
  folder with :func:`claim_folder`, which writes a small marker, ``.nas-owner`` (``{"kind": "study",
  "name": "quickstart"}``). A claim of a folder that another owns (another kind, or another study's or
  ablation's name) is refused in one line naming the folder and its owner. Folders made before the
  marker existed are recognised by their files (``study.yaml``, ``ablation.yaml``, ...) and adopted.
- **A command writes only new files or its own.** A command that writes single files where the user
  says (``nas export --out/--weights``, ``nas train --save``) goes through :func:`check_target`: a file
  that belongs to a study, ablation, confirmation or report is refused whatever the flags; an existing
  file of the user's is replaced only with ``--force``.
- **Every file is written atomically** (:func:`atomic_open`): a temporary file in the same folder,
  flushed and ``fsync``-ed, then ``os.replace``-d over the target. A failure (a full disk, a kill)
  leaves the old file or none, never a truncated or 0-byte one; a full disk is one
  :class:`DiskFullError` line naming the file and the free space.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nas.errors import ConfigError, NasError

__all__ = ["OWNER_FILE", "KINDS", "Owner", "OwnershipError", "DiskFullError", "owner_of", "claim_folder",
           "check_target", "atomic_open", "atomic_write", "atomic_copy", "free_space", "disk_full_error"]

OWNER_FILE = ".nas-owner"
KINDS = ("study", "ablation", "confirmation", "report")

# The files a study writes at its top level, and its sub-folders (``report`` and ``confirm`` are claimed
# by a report and a confirmation of the study). Anything else in a study folder (an exported
# ``best.yaml``) is the user's. Ablation, confirmation and report folders are wholly their owner's.
STUDY_FILES = frozenset({
    OWNER_FILE, ".driver.lock", "study.db", "study.db-wal", "study.db-shm", "study.db-journal", "study.yaml",
    "study.tmp", "trials.csv", "trials.tmp", "cost.jsonl", "references.json", "references.tmp", "study.db.budget-lock",
})
STUDY_FOLDERS = {"checkpoints": "study", "ray": "study", "report": "report", "confirm": "confirmation"}
# A driver's lock files: made by nas itself (a refused second driver leaves one), never a user's data.
LOCKS = frozenset({".driver.lock", "study.db.budget-lock"})
# Files whose presence marks a folder made before ``.nas-owner`` existed, by kind (checked in this order).
LEGACY = (("study", ("study.yaml", "study.db", "trials.csv")),
          ("ablation", ("ablation.yaml", "cells.jsonl")),
          ("report", ("report.html", "trials.md", "pareto.png")))


class OwnershipError(ConfigError):
    """A path belongs to a study, ablation, confirmation or report other than the writer."""


class DiskFullError(NasError):
    """A file could not be written because its file system is full (nothing partial was left)."""


@dataclass(frozen=True)
class Owner:
    """Who owns a folder: its kind (one of :data:`KINDS`) and its name (a study's or ablation's)."""

    kind: str
    name: str

    def describe(self) -> str:
        return f"{self.kind} {self.name!r}" if self.name else self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "format": 1}


def _short(path: str | Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]} ({len(text):,} characters)"


def _legacy_owner(folder: Path) -> Owner | None:
    """The owner of a folder written before markers existed, recognised by its files."""
    for kind, names in LEGACY:
        if any((folder / n).exists() for n in names):
            config = folder / ("study.yaml" if kind == "study" else "ablation.yaml")
            name = _yaml_name(config)
            if kind == "ablation" and (name.endswith("-confirm") or (
                    folder.name == "confirm" and (folder.parent / "study.yaml").exists())):
                kind = "confirmation"
            return Owner(kind, name)
    return None


def _yaml_name(path: Path) -> str:
    try:
        import yaml

        doc = yaml.safe_load(path.read_text()) if path.is_file() and path.stat().st_size < 4 << 20 else None
    except Exception:  # noqa: BLE001 - an unreadable config still marks the folder; its name is unknown
        return ""
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) else ""


def owner_of(folder: str | Path) -> Owner | None:
    """The owner recorded in ``folder`` (its ``.nas-owner``, else its files), or ``None``."""
    folder = Path(folder)
    marker = folder / OWNER_FILE
    if marker.is_file():
        try:
            doc = json.loads(marker.read_text())
            if isinstance(doc, dict) and doc.get("kind") in KINDS:
                return Owner(str(doc["kind"]), str(doc.get("name") or ""))
        except (OSError, ValueError):
            pass
        return Owner("unknown", "")  # a damaged marker still says: not the user's folder
    if folder.is_dir():
        return _legacy_owner(folder)
    return None


def _owning_folder(path: Path) -> tuple[Path, Owner, Path] | None:
    """The nearest folder at or above ``path`` that has an owner: (folder, owner, path relative to it)."""
    path = Path(os.path.abspath(path))
    for folder in [path, *path.parents]:
        if folder.is_dir():
            owner = owner_of(folder)
            if owner is not None:
                return folder, owner, path.relative_to(folder)
    return None


def _is_owned_part(owner: Owner, rel: Path) -> bool:
    """Whether ``rel`` (inside a folder of ``owner``) is a file or folder the owner writes."""
    if owner.kind != "study":
        return True
    parts = rel.parts
    if not parts:
        return True
    return parts[0] in STUDY_FOLDERS or (len(parts) == 1 and parts[0] in STUDY_FILES)


def claim_folder(folder: str | Path, owner: Owner, option: str = "--out", *, check_only: bool = False) -> Path:
    """Make ``folder`` ``owner``'s (creating it), or raise :class:`OwnershipError` naming its owner.

    Allowed: a new or empty folder; a folder this owner already claimed; a folder of the same kind and
    name made before markers existed; a sub-folder a study sets aside for this kind (``report``,
    ``confirm``). Refused: another owner's folder, a part of another owner's folder it writes itself
    (a study's ``checkpoints/``), and a folder of the user's that already holds a file this kind writes.
    ``check_only``: refuse as above, but write nothing (a command checks its folder before slow work).
    """
    folder = Path(folder)
    current = owner_of(folder) if folder.is_dir() else None
    if current is not None:
        if current.kind == owner.kind and (current.name == owner.name or not current.name):
            if not check_only and not (folder / OWNER_FILE).is_file():
                atomic_write(folder / OWNER_FILE, json.dumps(owner.to_dict()) + "\n")
            return folder
        raise OwnershipError(f"{option} {_short(folder)} belongs to {current.describe()}; {owner.kind} "
                             f"{owner.name!r} writes only to a new or empty folder or its own; choose another {option}")
    above = _owning_folder(folder.parent) if folder.parent != folder else None
    if above is not None:
        parent, parent_owner, rel = above
        rel = rel / folder.name
        kind_here = STUDY_FOLDERS.get(rel.parts[0]) if parent_owner.kind == "study" and len(rel.parts) == 1 else None
        if _is_owned_part(parent_owner, rel) and kind_here != owner.kind:
            raise OwnershipError(f"{option} {_short(folder)} is part of {parent_owner.describe()} in "
                                 f"{_short(parent)}; choose a folder outside it")
    if folder.is_dir():
        taken = sorted(p.name for p in folder.iterdir() if p.name in _names_of(owner.kind) - LOCKS)
        if taken:
            raise OwnershipError(f"{option} {_short(folder)} already holds {', '.join(taken)}, which no nas "
                                 f"{owner.kind} made; choose a new or empty folder")
    if not check_only:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / OWNER_FILE, json.dumps(owner.to_dict()) + "\n")
    return folder


def _names_of(kind: str) -> frozenset[str]:
    """File names a kind writes at the top of its folder (a user's file of that name is never replaced)."""
    if kind == "study":
        return STUDY_FILES | frozenset(STUDY_FOLDERS)
    return frozenset({"ablation.yaml", "cells.jsonl", "cost.jsonl", "table.md", "table.csv", "table.tex",
                      "table.png", "curves.png", "confirm.md", "confirm.csv", "confirm.png", "confirm.json",
                      "report.html", "trials.md", "trials.csv", "pareto.png", "hypervolume.png"})


def check_target(path: str | Path, option: str, *, force: bool = False) -> Path:
    """Check a file a user-facing command is about to write (``--out``, ``--weights``, ``--save``).

    Refused, whatever ``force`` says: a file of a study, ablation, confirmation or report (or a path
    in one of their own folders). Refused without ``force``: an existing file, which is the user's.
    """
    p = Path(path)
    found = _owning_folder(p.parent)
    if found is not None:
        folder, owner, rel = found
        rel = rel / p.name
        if _is_owned_part(owner, rel):
            raise OwnershipError(f"{option} {_short(path)} is a file of {owner.describe()} in {_short(folder)}; "
                                 f"only that {owner.kind} writes there; write to a path outside its own files "
                                 + (f"(e.g. {folder / 'best.yaml'})" if owner.kind == "study" else "(e.g. best.yaml)"))
    if p.is_file() and not force:
        raise OwnershipError(f"{option} {_short(path)} already exists; pass --force to replace it, or choose "
                             f"another path")
    return p


# -- atomic writes ----------------------------------------------------------------------------------
def free_space(path: str | Path) -> str:
    """The free space of the file system holding ``path`` (or its nearest existing parent), as text."""
    p = Path(os.path.abspath(path))
    for folder in [p, *p.parents]:
        if folder.exists():
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                return "unknown"
            for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
                if free >= size:
                    return f"{free / size:.1f} {unit}"
            return f"{free} bytes"
    return "unknown"


def disk_full_error(path: str | Path) -> DiskFullError:
    """The one line for a full disk: the file, the free space, what to do."""
    return DiskFullError(f"cannot write {_short(path)}: the disk is full ({free_space(path)} free); "
                         f"free some space and run the same command again (nothing partial was left; finished "
                         f"work is kept)")


def _full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` (fsync, then rename).

    On any failure the temporary file is removed and ``path`` is untouched; a full disk raises
    :class:`DiskFullError` naming ``path`` (not the temporary file) and the free space.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if _full(exc):
            raise disk_full_error(path) from None
        raise
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if _full(exc):
            raise disk_full_error(path) from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns ``path``."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return Path(path)


def atomic_copy(source: str | Path, dest: str | Path) -> Path:
    """Copy ``source`` to ``dest`` atomically: a full disk leaves no truncated copy, and names ``dest``."""
    with open(source, "rb") as src, atomic_open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return Path(dest)


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """``fig.savefig`` through :func:`atomic_open` (the format from the suffix, PNG by default)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=fmt, **kwargs)
    return Path(path)
