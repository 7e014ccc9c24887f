"""Command-line paths are checked before any work: files vs directories, long names, a run's own files."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.errors import ConfigError, GenomeError
from nas.genome import load_genome
from nas.genome.io import read_document
from nas.paths import check_input_file, check_output_dir, check_output_file, refuse_run_file


def test_output_file_checks(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"--save .* is a directory; give a file path"):
        check_output_file(tmp_path, "--save")
    with pytest.raises(ConfigError, match=r"--save .*plain\.txt/w\.pt: .*plain\.txt is a file, not a directory"):
        check_output_file(tmp_path / "plain.txt" / "w.pt", "--save")
    with pytest.raises(ConfigError, match=r"--save a+\.\.\.a+ \(5,000 characters\): too long"):
        check_output_file("a" * 5000, "--save")
    assert check_output_file(tmp_path / "new" / "w.pt", "--save") == tmp_path / "new" / "w.pt"


def test_output_dir_and_input_file_checks(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .*plain\.txt is a file; give a directory"):
        check_output_dir(tmp_path / "plain.txt", "--out")
    with pytest.raises(ConfigError, match=r"plain\.txt is a file, not a directory"):
        check_output_dir(tmp_path / "plain.txt" / "sub", "--out")
    with pytest.raises(ConfigError, match=r"FILE .* is a directory; give a file"):
        check_input_file(tmp_path, "FILE")
    with pytest.raises(GenomeError, match=r"is a directory; give a YAML or JSON file"):
        read_document(tmp_path)
    with pytest.raises(GenomeError, match=r"genome file a+\.\.\.a+ \(5,000 characters\): too long"):
        load_genome("a" * 5000)


@pytest.mark.parametrize("name", ["study.db", "study.db-wal", "study.yaml", "trials.csv", "cost.jsonl",
                                  "cells.jsonl", "ablation.yaml", "references.json"])
def test_a_run_folders_own_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "study.yaml").write_text("name: s\n")
    with pytest.raises(ConfigError, match=rf"--out .*{name} is a file of the study or ablation"):
        refuse_run_file(tmp_path / name, "--out")
    other = tmp_path / "elsewhere"
    other.mkdir()
    refuse_run_file(other / name, "--out")  # the same name outside a run folder is fine
    with pytest.raises(ConfigError, match="is a file of the study"):
        refuse_run_file(other / name, "--out", run_dir=other)  # ... unless it is the given run's folder
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match="is a checkpoint of the study"):
        refuse_run_file(tmp_path / "checkpoints" / "abc.pt", "--weights")
    refuse_run_file(tmp_path / "best.yaml", "--out")
