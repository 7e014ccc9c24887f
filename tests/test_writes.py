"""The write policy: folders know their owner, commands write only new files or their own, atomically."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.writes import (OWNER_FILE, DiskFullError, Owner, OwnershipError, atomic_copy, atomic_open, atomic_write,
                        check_target, claim_folder, owner_of)

KINDS = ("study", "ablation", "confirmation", "report")
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- atomic writes ------------------------------------------------------------------------------------
@FAST
@given(old=st.binary(max_size=2000), new=st.one_of(st.binary(max_size=5000), st.text(max_size=2000)))
def test_an_atomic_write_leaves_the_new_content_and_no_temporary_file(tmp_path: Path, old: bytes,
                                                                       new: bytes | str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(old)
    atomic_write(path, new)
    assert path.read_bytes() == (new.encode() if isinstance(new, str) else new)
    assert _leftovers(tmp_path) == []


@FAST
@given(old=st.binary(min_size=1, max_size=2000), written=st.integers(min_value=0, max_value=3000))
def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path: Path, old: bytes, written: int) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(old)
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_open(path, "wb") as fh:
            fh.write(b"x" * written)
            raise RuntimeError("killed")
    assert path.read_bytes() == old and _leftovers(tmp_path) == []


def test_a_full_disk_names_the_target_and_the_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"old weights")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=rf"^cannot write {path}: the disk is full \([\d.]+ [KMG]?B? ?(bytes )?free\)"):
        atomic_write(path, b"new weights")
    assert path.read_bytes() == b"old weights" and _leftovers(tmp_path) == []


def _fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KB tmpfs, filled up: ENOSPC from the kernel, not a mock (needs root and mount)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        _fill(mnt / "filler")
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_real_full_disk_leaves_nothing_partial(full_disk: Path, tmp_path: Path) -> None:
    (full_disk / "filler").unlink()
    (full_disk / "keep.txt").write_text("before")
    _fill(full_disk / "filler")  # full again, with keep.txt on it
    with pytest.raises(DiskFullError, match=r"cannot write .*keep\.txt: the disk is full \(0 bytes free\)"):
        atomic_write(full_disk / "keep.txt", "x" * 100_000)
    assert (full_disk / "keep.txt").read_text() == "before"
    source = tmp_path / "source.pt"
    source.write_bytes(os.urandom(300_000))
    with pytest.raises(DiskFullError, match=r"cannot write .*copy\.pt"):  # the destination, not the source
        atomic_copy(source, full_disk / "copy.pt")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "keep.txt"]


# -- folders and their owners -------------------------------------------------------------------------
owners = st.builds(Owner, st.sampled_from(KINDS), st.sampled_from(("a", "b")))


@FAST
@given(first=owners, second=owners)
def test_a_folder_is_claimed_by_one_owner_only(tmp_path: Path, first: Owner, second: Owner) -> None:
    folder = tmp_path / uuid.uuid4().hex
    claim_folder(folder, first)
    assert owner_of(folder) == first
    if second == first:
        claim_folder(folder, second)  # its own folder: a rerun, a resume
    else:
        with pytest.raises(OwnershipError, match=rf"--out .* belongs to {first.kind} '{first.name}'; "
                                                 rf"{second.kind} '{second.name}' writes only to a new or empty"):
            claim_folder(folder, second)
    assert json.loads((folder / OWNER_FILE).read_text())["kind"] == first.kind


@pytest.mark.parametrize("files, kind", [
    (["study.yaml"], "study"), (["study.db"], "study"), (["trials.csv"], "study"),
    (["ablation.yaml"], "ablation"), (["cells.jsonl"], "ablation"), (["report.html"], "report"),
])
def test_folders_made_before_markers_are_recognised_by_their_files(tmp_path: Path, files: list[str], kind: str) -> None:
    for name in files:
        (tmp_path / name).write_text("name: old\n")
    assert owner_of(tmp_path).kind == kind
    claim_folder(tmp_path, Owner(kind, "old" if files[0].endswith(".yaml") else ""))  # adopted, marker written
    assert (tmp_path / OWNER_FILE).is_file()
    other = next(k for k in KINDS if k != kind)
    with pytest.raises(OwnershipError, match=f"belongs to {kind}"):
        claim_folder(tmp_path, Owner(other, "x"))


def test_a_study_sets_aside_report_and_confirm_for_their_kinds(tmp_path: Path) -> None:
    study = claim_folder(tmp_path / "s", Owner("study", "s"))
    claim_folder(study / "report", Owner("report", "s"))
    claim_folder(study / "confirm", Owner("confirmation", "s-confirm"))
    with pytest.raises(OwnershipError, match=r"s/checkpoints is part of study 's'"):
        claim_folder(study / "checkpoints", Owner("ablation", "x"))
    with pytest.raises(OwnershipError, match=r"s/report is part of study 's'|belongs to report"):
        claim_folder(study / "report", Owner("ablation", "x"))
    claim_folder(study / "my_ablation", Owner("ablation", "x"))  # a new folder of the user's choosing


def test_a_users_folder_holding_a_file_the_kind_writes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "table.md").write_text("my notes")
    with pytest.raises(OwnershipError, match=r"already holds table\.md, which no nas ablation made"):
        claim_folder(tmp_path, Owner("ablation", "a"))
    assert (tmp_path / "table.md").read_text() == "my notes" and not (tmp_path / OWNER_FILE).exists()


@pytest.mark.parametrize("rel, kind", [
    ("study.db", "study"), ("study.db-wal", "study"), ("trials.csv", "study"), ("checkpoints/k.pt", "study"),
    ("ray/x.json", "study"), ("report/report.html", "study"), ("confirm/confirm.json", "study"),
])
def test_a_studys_own_files_are_refused_even_with_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str,
                                                        kind: str) -> None:
    monkeypatch.chdir(tmp_path)
    claim_folder("s", Owner("study", "s"))
    with pytest.raises(OwnershipError, match=rf"^--out s/{rel} is a file of study 's' in .*/s; only that study writes"):
        check_target(Path("s") / rel, "--out", force=True)
    assert check_target("s/best.yaml", "--out") == Path("s/best.yaml")  # a new file of the user's


@FAST
@given(kind=st.sampled_from(("ablation", "confirmation", "report")), name=st.sampled_from(("table.md", "x.pt", "a")))
def test_every_file_in_an_ablation_confirmation_or_report_is_its_owners(tmp_path: Path, kind: str, name: str) -> None:
    folder = tmp_path / uuid.uuid4().hex
    claim_folder(folder, Owner(kind, "a"))
    with pytest.raises(OwnershipError, match=rf"is a file of {kind} 'a'"):
        check_target(folder / name, "--weights", force=True)


def test_a_users_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    mine = tmp_path / "my.pt"
    mine.write_text("mine")
    with pytest.raises(OwnershipError, match=r"--weights .*my\.pt already exists; pass --force to replace it"):
        check_target(mine, "--weights")
    assert check_target(mine, "--weights", force=True) == mine
    assert check_target(tmp_path / "new.pt", "--weights") == tmp_path / "new.pt"
