"""Every bad or hostile input a new user can type gets one ``error:`` line and exit status 2 (130 for Ctrl+C).

The table runs each reproduction in-process through ``nas.cli.main.main`` (fast, and a traceback
would fail the test); only the interrupt needs a real process to signal.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nas.cli.main import main
from nas.models.footprint import LIMIT_ENV

ROOT = Path(__file__).resolve().parents[1]
ISSUE = {"image_size": 32, "num_classes": 10, "patch_size": 4,
         "stages": [{"mixer": "attention", "depth": 1, "dim": 64, "heads": 4}]}


def genome_file(folder: Path, name: str, **stage: Any) -> str:
    top = {k: stage.pop(k) for k in list(stage) if k in ("image_size",)}
    doc = {**ISSUE, **top, "stages": [{**ISSUE["stages"][0], **stage}]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Files the reproductions point at: genomes, a study folder, a plain file, bad datasets."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(LIMIT_ENV, "4")  # the size guard's limit, the same on every machine
    files = {f"dim{v}": genome_file(tmp_path, f"dim{v}", dim=v) for v in (10**9, 16384)}
    files["image"] = genome_file(tmp_path, "image", image_size=10**6)
    files["mlp"] = genome_file(tmp_path, "mlp", mlp_ratio=1e9)
    files["deep"] = genome_file(tmp_path, "deep", depth=10**6)
    files["ok"] = genome_file(tmp_path, "ok")
    study = tmp_path / "S"
    study.mkdir()
    (study / "study.yaml").write_text(yaml.safe_dump({
        "name": "s", "space": str(ROOT / "search_spaces" / "vit_family.yaml"), "data": "synthetic",
        "budget": {"epochs": 1}, "objectives": {"val_acc": "maximize"}, "n_trials": 2}))
    (study / "trials.csv").write_text("number\n")
    files["study"] = str(study)
    (tmp_path / "plain.txt").write_text("not a folder")
    x = np.zeros((12, 8, 8), np.uint8)
    np.savez(tmp_path / "stray.npz", x=x, y=np.array([0, 1, 2] * 3 + [99, 1, 2]))
    np.savez(tmp_path / "empty.npz", x=x[:0], y=np.zeros(0, int))
    np.savez(tmp_path / "one.npz", x=x, y=np.zeros(12, int))
    (tmp_path / "study_cfg.yaml").write_text(yaml.safe_dump({
        "name": "r", "space": str(ROOT / "search_spaces" / "vit_family.yaml"), "data": "synthetic",
        "budget": {"epochs": 1, "subset": 16}, "objectives": {"val_acc": "maximize"}, "n_trials": 1}))
    return files


CASES: list[tuple[str, list[str], str]] = [
    # 1. size guard
    ("validate dim 1e9", ["validate", "{dim1000000000}"], r"too large for this device: ~.* dim 1000000000"),
    ("build dim 1e9", ["build", "{dim1000000000}"], r"too large for this device"),
    ("cost dim 16384", ["cost", "{dim16384}"], r"too large for this device: ~1\d(\.\d)? GB .*dim 16384"),
    ("cost image_size 1e6", ["cost", "{image}"], r"too large for this device: .*image_size 1000000"),
    ("cost mlp_ratio 1e9", ["cost", "{mlp}"], r"too large for this device: .*mlp_ratio 1e\+09"),
    ("validate depth 1e6", ["validate", "{deep}"], r"stages\[0\]\.depth 1000000 makes 1,000,000 blocks"),
    # 2. a study's own files
    ("export over study.db", ["export", "{study}", "--pick", "knee", "--out", "{study}/study.db"],
     r"--out .*study\.db is a file of the study or ablation"),
    ("export over study.yaml", ["export", "{study}", "--pick", "knee", "--out", "{study}/study.yaml"],
     r"study\.yaml is a file of the study"),
    ("resume without storage", ["study", "resume", "{study}"], r"holds a study .* but its storage .*study\.db is missing"),
    ("status without storage", ["study", "status", "{study}"], r"storage .*study\.db does not exist"),
    ("report without storage", ["study", "report", "{study}"], r"storage .*study\.db does not exist"),
    # 3. paths
    ("train --save DIR", ["train", "{ok}", "--data", "synthetic", "--save", "{study}"], r"--save .* is a directory"),
    ("train --save under a file", ["train", "{ok}", "--data", "synthetic", "--save", "plain.txt/w.pt"],
     r"plain\.txt is a file, not a directory"),
    ("study --out a file", ["study", "run", "study_cfg.yaml", "--out", "plain.txt"], r"--out plain\.txt is a file"),
    ("validate DIR", ["validate", "{study}"], r"is a directory; give a YAML or JSON file"),
    ("5,000-character argument", ["validate", "a" * 5000], r"\(5,000 characters\): too long"),
    # 4. data
    ("npz label 99", ["train", "{ok}", "--data", "npz:stray.npz"], r"labels 99 are outside 0\.\.3"),
    ("empty npz", ["train", "{ok}", "--data", "npz:empty.npz"], r"the dataset is empty"),
    ("one-class npz", ["train", "{ok}", "--data", "npz:one.npz"], r"one\.npz: every image has label 0"),
    # 8. smaller ones
    ("resume --set budget", ["study", "resume", "{study}", "--set", "budget.epochs=1"],
     r"a resumed study keeps its 'budget'; resume may change only n_trials"),
    ("--train-step alone", ["cost", "vit_cifar", "--train-step"], r"--train-step times a training step for --latency"),
    ("coatnet_O", ["cost", "coatnet_O"], r"did you mean 'coatnet_0'"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_error_line_and_status_2(world: dict[str, str], capsys: pytest.CaptureFixture,
                                                     argv: list[str], message: str) -> None:
    rc = main([a.format(**world) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    if "storage" in message:  # a read-only command created nothing
        assert not (Path(world["study"]) / "study.db").exists()


def test_disk_full_while_saving_weights_names_the_file(world: dict[str, str], capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(obj: Any, path: Any, *_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("torch.save", full)
    rc = main(["train", world["ok"], "--data", "synthetic", "--epochs", "1", "--subset", "16", "--save", "w.pt"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: cannot use w.pt: the disk is full; free some space and run the same "
                               "command again (finished work is kept)"]


def test_version_and_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("nas ")
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert "search studies" in capsys.readouterr().out.split("positional arguments")[0].split("\n", 2)[2]


def test_resources_the_cluster_lacks_are_refused_before_any_trial(world: dict[str, str], capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    # A one-CPU cluster without GPUs, as ray.cluster_resources() reports it right after Ray starts.
    monkeypatch.setattr("nas.search.runner.init_ray", lambda address: False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1.0, "memory": 1e9})
    rc = main(["study", "run", "study_cfg.yaml", "--out", "R", "--set", "resources.gpu=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: resources.gpu 1: the Ray cluster has 0 GPU(s) in all, so a trial could "
                               "never start; lower it (e.g. --set resources.gpu=0)"]
    assert not list(Path("R").glob("ray/run-*"))  # refused before Tune started


def test_ctrl_c_during_a_study_exits_130_with_one_line_in_seconds(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "i", "space": str(ROOT / "search_spaces" / "vit_family.yaml"), "data": "synthetic",
        "budget": {"epochs": 50}, "objectives": {"val_acc": "maximize"}, "n_trials": 20, "max_concurrent": 1}))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "nas", "study", "run", str(cfg), "--out", str(tmp_path / "I")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "study 'i': 20 trial(s) to run ...": Ray starts next
        deadline = time.time() + 60
        while not any((tmp_path / "I" / "ray").glob("run-*")) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # Tune is running its loop now
        proc.send_signal(signal.SIGINT)
        start = time.time()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and time.time() - start < 30, (proc.returncode, err)
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "nas study resume" in lines[0], lines
    assert "Tuner.restore" not in out + err



def test_a_refused_resume_says_what_it_would_change_and_leaves_study_yaml_alone(
        world: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna
    import ray

    from nas.search.config import load_study_config

    study = Path(world["study"])
    resolved = load_study_config(study / "study.yaml").to_dict()  # as a run stores it
    (study / "study.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    optuna.create_study(study_name="s", storage=f"sqlite:///{study / 'study.db'}", direction="maximize")
    capsys.readouterr()  # Optuna's own note on creating the study
    monkeypatch.setattr("nas.search.runner.init_ray", lambda address: False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1.0})
    before = (study / "study.yaml").read_text()
    rc = main(["study", "resume", str(study), "--set", "n_trials=5", "--set", "resources.gpu=1"])
    captured = capsys.readouterr()
    assert rc == 2 and "updating study.yaml: n_trials 2 -> 5" in captured.out
    assert captured.err.strip().splitlines() == [
        "error: resources.gpu 1: the Ray cluster has 0 GPU(s) in all, so a trial could never start; "
        "lower it (e.g. --set resources.gpu=0)"]
    assert (study / "study.yaml").read_text() == before  # the refused change did not take effect
