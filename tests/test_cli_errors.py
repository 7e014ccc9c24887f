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
        "name": "s", "space": str(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml"), "data": "synthetic",
        "budget": {"epochs": 1}, "objectives": {"val_acc": "maximize"}, "n_trials": 2}))
    (study / "trials.csv").write_text("number\n")
    files["study"] = str(study)
    (tmp_path / "plain.txt").write_text("not a folder")
    x = np.zeros((12, 8, 8), np.uint8)
    np.savez(tmp_path / "stray.npz", x=x, y=np.array([0, 1, 2] * 3 + [99, 1, 2]))
    np.savez(tmp_path / "empty.npz", x=x[:0], y=np.zeros(0, int))
    np.savez(tmp_path / "one.npz", x=x, y=np.zeros(12, int))
    (tmp_path / "study_cfg.yaml").write_text(yaml.safe_dump({
        "name": "r", "space": str(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml"), "data": "synthetic",
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


# Numbers finite and in range, YAML read strictly: every config kind, flag and environment variable.
BOMB = ("image_size: 32\nnum_classes: 10\npatch_size: 4\nstages: [{mixer: attention, depth: ["
        + ", ".join(["&a [" + ",".join(["lol"] * 9) + "]"]
                    + [f"&{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi")])
        + "], dim: 64, heads: 4}]\n")
SHORT = "image_size: 32\nnum_classes: 10\npatch_size: 4\nlayout: {layout}\ndepths: {depths}\ndims: {dims}\n"
STRICT_FILES = {
    "dup": SHORT.format(layout="A", depths="[1]", dims="[64]") + "heads: [4]\ndepths: [8]\n",
    "bomb": BOMB,
    "self": "image_size: 32\nnum_classes: 10\nstages: &s [{mixer: attention, depth: 1, dim: 64, heads: *s}]\n",
    "mlp_str": SHORT.format(layout="A", depths="[1]", dims="[64]") + "heads: [4]\nmlp_ratio: '1e400'\n",
    "mlp_inf": SHORT.format(layout="A", depths="[1]", dims="[64]") + "heads: [4]\nmlp_ratio: 1e400\n",
    "mlp_digits": SHORT.format(layout="A", depths="[1]", dims="[64]") + f"heads: [4]\nmlp_ratio: {'9' * 401}\n",
    "drop_digits": SHORT.format(layout="A", depths="[1]", dims="[64]") + f"heads: [4]\ndrop_path: {'9' * 401}\n",
    "image_digits": SHORT.format(layout="A", depths="[1]", dims="[64]").replace("32", "1" + "0" * 400, 1)
                    + "heads: [4]\n",
    "int_5000": SHORT.format(layout="A", depths="[1]", dims="[64]") + f"heads: [4]\nmlp_ratio: {'9' * 5000}\n",
    "tm_list": SHORT.format(layout="T", depths="[1]", dims="[64]") + "heads: [4]\ntransformer_mixer: [attention]\n",
    "tm_dict": SHORT.format(layout="T", depths="[1]", dims="[64]") + "heads: [4]\ntransformer_mixer: {a: 1}\n",
    "ctt": "image_size: 32\nnum_classes: 10\nstem: conv\nlayout: C--T\ndepths: [1, 1]\ndims: [32, 64]\n"
           "heads: [null, 2]\n",
    "json_dup": '{"image_size": 32, "num_classes": 10, "image_size": 64, "stages": []}',
}
RUN = ["study", "run", "study_cfg.yaml", "--out", "R", "--set"]
STRICT_CASES: list[tuple[str, list[str], str, dict[str, str]]] = [
    # non-finite and out-of-range numbers in the training budget and the study
    *[(f"--set budget.{k}={v}", [*RUN, f"budget.{k}={v}"], rf"study_cfg\.yaml: budget: {k} must be a finite number "
       rf"{allowed}, got {v.lstrip('.')}$", {})
      for k, v, allowed in (("lr", ".inf", "> 0"), ("weight_decay", ".nan", ">= 0"),
                            ("label_smoothing", ".nan", r"in \[0, 0\.999\]"), ("mixup_alpha", ".nan", ">= 0"),
                            ("rrc_max_ratio", ".nan", ">= 1"), ("warmup_epochs", ".inf", ">= 0"))],
    ("heartbeat_interval=1e300", [*RUN, "heartbeat_interval=1e300"],
     r"heartbeat_interval must be a number >= 1 and at most 3600, got 1e\+300$", {}),
    ("n_trials with 30 digits", [*RUN, "n_trials=" + "9" * 30],
     r"n_trials must be a whole number >= 1 and at most 2,147,483,647, got a 30-digit integer$", {}),
    ("seed=4294967296", [*RUN, "seed=4294967296"], r"seed must be a whole number in \[0, 4,294,967,295\], got 4294967296$", {}),
    ("seed=1e20", [*RUN, "seed=1e20"], r"seed must be a whole number in \[0, 4,294,967,295\], got 1e\+20$", {}),
    ("seed=true", [*RUN, "seed=true"], r"seed must be a whole number in \[0, 4,294,967,295\], got True$", {}),
    ("--set alias bomb", [*RUN, "n_trials=" + BOMB.split("depth: ")[1].split(", dim")[0]],
     r"--set .*: the value is not valid YAML: its aliases \(\*name\) expand it to more than 100,000 values", {}),
    ("--set duplicate key", [*RUN, "budget={epochs: 1, epochs: 2}"], r"duplicate key 'epochs' \(first at line 1\)", {}),
    ("NAS_MAX_MEMORY_GB=1e300", ["validate", "{ok}"],
     r"^error: NAS_MAX_MEMORY_GB must be a number of gigabytes in \(0, 1,000,000\], got '1e300'$", {LIMIT_ENV: "1e300"}),
    ("NAS_MAX_MEMORY_GB=nan", ["build", "{ok}"], r"NAS_MAX_MEMORY_GB must be a number of gigabytes", {LIMIT_ENV: "nan"}),
    # huge integers in a genome
    ("mlp_ratio '1e400'", ["validate", "{mlp_str}"], r"mlp_str\.yaml: stages\[0\]\.mlp_ratio must be a number > 0 and "
                                                     r"at most 1e\+12, got '1e400'$", {}),
    ("mlp_ratio 1e400", ["validate", "{mlp_inf}"], r"stages\[0\]\.mlp_ratio must be a finite number > 0, got inf$", {}),
    ("401-digit mlp_ratio", ["cost", "{mlp_digits}"], r"mlp_ratio must be a number > 0 and at most 1e\+12, got a "
                                                       r"401-digit integer$", {}),
    ("401-digit drop_path", ["build", "{drop_digits}"], r"drop_path must be a number in \[0, 1\), got a 401-digit integer$", {}),
    ("401-digit image_size", ["validate", "{image_digits}"],
     r"image_size must be a whole number >= 1 and at most 2,147,483,647, got a 401-digit integer$", {}),
    ("5,000-digit integer", ["validate", "{int_5000}"], r"int_5000\.yaml: malformed YAML at line 8, column 12: an "
                                                        r"integer of 5,000 digits is not a usable value$", {}),
    # YAML and JSON read strictly
    ("duplicate key", ["build", "{dup}"], r"dup\.yaml: malformed YAML at line 8, column 1: duplicate key 'depths' "
                                          r"\(first at line 5\); a key may appear once in a mapping$", {}),
    ("JSON duplicate key", ["validate", "{json_dup}"], r"json_dup\.json: malformed JSON: duplicate key 'image_size'", {}),
    ("alias bomb", ["validate", "{bomb}"], r"bomb\.yaml: malformed YAML at line 4, column \d+: its aliases \(\*name\) "
                                           r"expand it to more than 100,000 values", {}),
    ("recursive alias", ["validate", "{self}"], r"self\.yaml: malformed YAML .*an alias refers to the node that contains it", {}),
    ("50 MB genome", ["validate", "{huge}"], r"huge\.yaml: 50\.0 MB is too large for a genome or config file; at most 4 MB$", {}),
    ("50 MB study config", ["study", "run", "{huge}"], r"huge\.yaml: 50\.0 MB is too large", {}),
    # genome types
    ("transformer_mixer list", ["validate", "{tm_list}"],
     r"transformer_mixer must be one of attention, reattention; got \['attention'\]$", {}),
    ("transformer_mixer dict", ["validate", "{tm_dict}"],
     r"transformer_mixer must be one of attention, reattention; got \{'a': 1\}$", {}),
    ("layout C--T", ["validate", "{ctt}"], r"ctt\.yaml: layout 'C--T' is not a layout: write one letter per stage", {}),
    # command-line flags
    ("cost --threads 0", ["cost", "vit_cifar", "--latency", "--threads", "0"], r"^error: --threads must be a whole number "
                                                                             r">= 1, got 0$", {}),
    ("cost --threads -3", ["cost", "vit_cifar", "--latency", "--threads", "-3"], r"--threads must be a whole number >= 1, "
                                                                               r"got -3$", {}),
    ("cost --threads 1e6", ["cost", "vit_cifar", "--threads", "1e6"], r"--threads must be a whole number >= 1 and at "
                                                                     r"most 1,024, got 1000000\.0$", {}),
    ("cost --latency --batch 100000", ["cost", "vit_cifar", "--latency", "--batch", "100000"],
     r"too large for this device: ~[\d.]+ GB for a batch of 100,000 images", {}),
    ("cost --batch 0", ["cost", "vit_cifar", "--latency", "--batch", "0"], r"--batch must be a whole number >= 1, got 0$", {}),
    ("cost --repeats nan", ["cost", "vit_cifar", "--repeats", "nan"], r"--repeats must be a finite whole number >= 1, got nan$", {}),
    ("cost --warmup -1", ["cost", "vit_cifar", "--warmup", "-1"], r"--warmup must be a whole number >= 0, got -1$", {}),
    ("cost --image-size 401 digits", ["cost", "vit_cifar", "--image-size", "9" * 401],
     r"--image-size must be a whole number >= 1 and at most 2,147,483,647, got a 401-digit integer$", {}),
    ("build --num-classes 1", ["build", "vit_cifar", "--num-classes", "1"], r"--num-classes must be a whole number >= 2, got 1$", {}),
    ("train --lr nan", ["train", "{ok}", "--data", "synthetic", "--lr", "nan"], r"--lr must be a finite number > 0, got nan$", {}),
    ("train --lr inf", ["train", "{ok}", "--data", "synthetic", "--lr", "inf"], r"--lr must be a finite number > 0, got inf$", {}),
    ("train --seconds -1", ["train", "{ok}", "--data", "synthetic", "--seconds", "-1"], r"--seconds must be a number > 0, got -1", {}),
    ("train --epochs 2.5", ["train", "{ok}", "--data", "synthetic", "--epochs", "2.5"], r"--epochs must be a whole number >= 1, "
                                                                                       r"got 2\.5$", {}),
    ("train --seed 2**32", ["train", "{ok}", "--data", "synthetic", "--seed", str(2**32)],
     r"--seed must be a whole number in \[0, 4,294,967,295\], got 4294967296$", {}),
    ("train --batch-size 0", ["train", "{ok}", "--data", "synthetic", "--batch-size", "0"], r"--batch-size must be a whole "
                                                                                           r"number >= 1, got 0$", {}),
    ("train --subset abc", ["train", "{ok}", "--data", "synthetic", "--subset", "abc"], r"--subset must be a whole number "
                                                                                       r">= 1, got 'abc'$", {}),
    ("proxy --seed -1", ["proxy", "{ok}", "--data", "synthetic", "--seed", "-1"], r"--seed must be a whole number in \[0, ", {}),
    ("proxy --threads 0", ["proxy", "{ok}", "--data", "synthetic", "--threads", "0"], r"--threads must be a whole number >= 1", {}),
    ("unknown flag", ["cost", "vit_cifar", "--colour", "2"], r"^error: nas: unrecognized arguments: --colour 2", {}),
    ("missing argument", ["cost"], r"^error: nas cost: the following arguments are required: spec", {}),
]


@pytest.mark.parametrize("argv, message, env", [c[1:] for c in STRICT_CASES], ids=[c[0] for c in STRICT_CASES])
def test_numbers_yaml_and_flags_are_checked_in_one_error_line(world: dict[str, str], capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                              message: str, env: dict[str, str]) -> None:
    for name, text in STRICT_FILES.items():
        Path(f"{name}.{'json' if name.startswith('json') else 'yaml'}").write_text(text)
    if any("{huge}" in a for a in argv):  # 50 MB: refused on its size, before it is read
        Path("huge.yaml").write_text("image_size: 32\ndescription: '" + "x" * (50 << 20) + "'\n")
    files = {**world, **{n: f"{n}.{'json' if n.startswith('json') else 'yaml'}" for n in STRICT_FILES}, "huge": "huge.yaml"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = main([re.sub(r"\{(\w+)\}", lambda m: files.get(m.group(1), m.group(0)), a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert len(err[0]) < 400, err[0]  # a huge value is shortened, never printed whole
    assert not Path("R").exists()  # a refused study config started nothing


def test_a_tampered_or_garbage_cost_cache_is_said_and_not_used(world: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    import json

    assert main(["cost", "vit_cifar", "--cache", "C", "--json"]) == 0
    true_flops = json.loads(capsys.readouterr().out)["flops"]
    cache = Path("C/cost_cache.jsonl")
    record = json.loads(cache.read_text())
    cache.write_text(json.dumps({**record, "flops": 1}) + "\n" + "{garbage\n")  # edited without its checksum
    assert main(["cost", "vit_cifar", "--cache", "C", "--json"]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: cost cache C/cost_cache.jsonl: 2 unusable record(s) (line 1: "
                                               f"does not match its checksum (key {record['key']}): edited or corrupt; "
                                               "line 2: not a JSON record"), err
    assert json.loads(captured.out)["flops"] == true_flops  # counted again, the tampered value never used
    assert cache.read_text().count("\n") == 3  # the recount is stored: later reads find a good record


@pytest.mark.parametrize("call, message", [
    (lambda: __import__("nas").load_study(123), r"^load_study\(study_dir\): study_dir must be the path of a study "
                                                r"directory \(str or Path\), got int 123$"),
    (lambda: __import__("nas").load_study(None), r"got NoneType None$"),
    (lambda: __import__("nas").build_model("vit_cifar")(__import__("torch").zeros(1, 3, 64, 64)),
     r"^this network was built for inputs \[B, 3, 32, 32\] \(genome image_size 32, in_channels 3\), got \[1, 3, 64, 64\]"),
    (lambda: __import__("nas").build_model("vit_cifar")(__import__("torch").zeros(2, 1, 32, 32)),
     r"built for inputs \[B, 3, 32, 32\] .*got \[2, 1, 32, 32\]"),
], ids=["load_study(123)", "load_study(None)", "64x64 into a 32x32 network", "one channel into three"])
def test_the_python_api_raises_one_line_nas_errors(call: Any, message: str) -> None:
    from nas.errors import NasError

    with pytest.raises(NasError, match=message):
        call()


def test_numpy_scalars_in_a_genome_dict_are_accepted() -> None:
    import nas

    doc = {"image_size": np.int64(32), "num_classes": np.int32(10), "patch_size": np.uint8(4),
           "stages": [{"mixer": "attention", "depth": np.int16(1), "dim": np.int64(64), "heads": 4,
                       "mlp_ratio": np.float32(2.0)}]}
    plain = {**ISSUE, "stages": [{**ISSUE["stages"][0], "mlp_ratio": 2.0}]}
    assert nas.load_genome(doc).key == nas.load_genome(plain).key


def test_disk_full_while_saving_weights_names_the_file(world: dict[str, str], capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(obj: Any, path: Any, *_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("torch.save", full)
    rc = main(["train", world["ok"], "--data", "synthetic", "--epochs", "1", "--subset", "16", "--save", "w.pt"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and re.fullmatch(
        r"error: cannot write w\.pt: the disk is full \([\d.]+ [KMG]B free\); free some space and run the same "
        r"command again \(nothing partial was left; finished work is kept\)", err[0]), err
    assert sorted(p.name for p in Path(".").iterdir() if "w.pt" in p.name) == []  # no temporary or partial file


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


@pytest.mark.parametrize("sig, status, by", [(signal.SIGINT, 130, ""), (signal.SIGTERM, 143, " by SIGTERM")],
                         ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_during_a_study_exits_128_plus_signal_with_one_line_in_seconds(
        tmp_path: Path, sig: int, status: int, by: str) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "i", "space": str(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml"), "data": "synthetic",
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
        proc.send_signal(sig)
        start = time.time()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == status and time.time() - start < 30, (proc.returncode, err)
    assert len(lines) == 1 and lines[0].startswith(f"interrupted{by}: ") and "nas study resume" in lines[0], lines
    assert "Tuner.restore" not in out + err



def test_a_refused_resume_says_what_it_would_change_and_leaves_study_yaml_alone(
        world: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna
    import ray

    from nas.search.config import load_study_config

    study = Path(world["study"])
    resolved = load_study_config(study / "study.yaml").to_dict()  # as a run stores it
    (study / "study.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    made = optuna.create_study(study_name="s", storage=f"sqlite:///{study / 'study.db'}", direction="maximize")
    made.set_user_attr("config", resolved)  # as nas has always marked its studies
    made.set_user_attr("objectives", ["val_acc"])
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


# Nothing a command writes lands on another's files; foreign storages, dead services and bad data in one line.
def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape; a few bytes on disk)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def owned(world: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A nas study with no trials, an ablation folder, a plain-Optuna folder, a user's file, bad images."""
    import optuna
    from PIL import Image

    from nas.search.identity import create_nas_study
    from nas.search.storage import open_storage
    from nas.writes import Owner, claim_folder

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    nas_study = claim_folder(tmp_path / "N", Owner("study", "r"))
    cfg = yaml.safe_load(Path("study_cfg.yaml").read_text())
    (nas_study / "study.yaml").write_text(yaml.safe_dump(cfg))
    url = f"sqlite:///{nas_study / 'study.db'}"
    create_nas_study(open_storage(url), url, "r", ["maximize"], own_file=True)
    abl = claim_folder(tmp_path / "A", Owner("ablation", "abl"))
    (abl / "cells.jsonl").write_text("")
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump({
        "name": "other", "base": "vit_cifar", "variants": [{"name": "a"}], "baseline": "a", "seeds": [0],
        "data": "synthetic", "budget": {"epochs": 1}}))
    plain = tmp_path / "P"
    plain.mkdir()
    optuna.create_study(study_name="s", storage=f"sqlite:///{plain / 'study.db'}")
    (plain / "study.yaml").write_text(Path(world["study"], "study.yaml").read_text())
    (tmp_path / "mine.pt").write_text("my weights")
    for name, special in (("bomb", _png_header(30000, 30000)), ("big", _png_header(9000, 9000))):
        for cls in ("a", "b"):
            (tmp_path / name / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / cls / f"{i}.png")
        (tmp_path / name / "a" / "x.png").write_bytes(special)
    for cls in ("a", "b"):
        (tmp_path / "nan" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "nan" / cls / "0.png")
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "nan" / "a" / "nan.tif")
    np.savez(tmp_path / "u64.npz", x=np.zeros((12, 8, 8), np.uint8),
             y=np.array([0, 1] * 5 + [2**63 + 5, 1], dtype=np.uint64))
    (tmp_path / "space.yaml").write_text("num_stages: {choices: [1, 2]}\nstage:\n  mixer: {choices: [attention]}\n"
                                         "  depth: [{int: [1, 2]}]\n  dim: {choices: [32]}\n  heads: {choices: [2]}\n")
    return {**world, "nas": "N", "abl": "A", "plain": "P"}  # relative (the cwd is tmp_path): short messages


OWNERSHIP_CASES: list[tuple[str, list[str], str]] = [
    # 1. one write policy
    *[(f"{cmd} budget.save_path", [*argv, "--set", f"budget.save_path={{{target}}}/{name}"],
       r"budget: save_path .* is not allowed here: a study, ablation or confirmation keeps its weights in its own")
      for cmd, argv, target, name in (
          ("study run", ["study", "run", "study_cfg.yaml", "--out", "R"], "nas", "study.db"),
          ("study run other's csv", ["study", "run", "study_cfg.yaml", "--out", "R"], "study", "trials.csv"),
          ("ablate", ["ablate", "abl.yaml", "--out", "R"], "abl", "cells.jsonl"),
          ("confirm", ["study", "confirm", "{nas}"], "nas", "study.db"))],
    ("ablate into another ablation", ["ablate", "abl.yaml", "--out", "{abl}"],
     r"--out .*A belongs to ablation 'abl'; ablation 'other' writes only to a new or empty folder or its own"),
    ("study run into an ablation", ["study", "run", "study_cfg.yaml", "--out", "{abl}"], r"belongs to ablation 'abl'"),
    ("report into an ablation", ["study", "report", "{nas}", "--out", "{abl}"], r"--out .*A belongs to ablation 'abl'; report 'r'"),
    ("report into its study", ["study", "report", "{nas}", "--out", "{nas}"], r"--out .*N belongs to study 'r'; report 'r'"),
    ("confirm into an ablation", ["study", "confirm", "{nas}", "--out", "{abl}"],
     r"--out .*A belongs to ablation 'abl'; confirmation 'r-confirm'"),
    ("export over a confirmation", ["export", "{nas}", "--pick", "knee", "--out", "{nas}/confirm/confirm.json"],
     r"--out .*confirm\.json is a file of study 'r'"),
    ("export into an ablation", ["export", "{nas}", "--pick", "knee", "--out", "{abl}/best.yaml"],
     r"--out .*best\.yaml is a file of ablation 'abl'"),
    ("export --weights over mine", ["export", "{nas}", "--pick", "knee", "--weights", "mine.pt"],
     r"--weights mine\.pt already exists; pass --force to replace it"),
    ("train --save over mine", ["train", "{ok}", "--data", "synthetic", "--save", "mine.pt"],
     r"--save mine\.pt already exists; pass --force"),
    ("train --save into a study", ["train", "{ok}", "--data", "synthetic", "--save", "{nas}/trials.csv", "--force"],
     r"--save N/trials\.csv is a file of (the study or ablation|study 'r')"),
    # 2. foreign storages
    *[(f"plain Optuna: {' '.join(argv[:2])}", argv, rf"study 's' (was not made by nas|that nas did not make)")
      for argv in (["study", "status", "{plain}"], ["study", "report", "{plain}"], ["study", "resume", "{plain}"],
                   ["study", "confirm", "{plain}"], ["export", "{plain}", "--pick", "knee", "--out", "e.yaml"],
                   ["study", "run", "{plain}/study.yaml", "--out", "{plain}"])],
    # 3. an unreachable Ray cluster
    ("ray_address 127.0.0.1:1", ["study", "run", "study_cfg.yaml", "--out", "R", "--set", "ray_address=127.0.0.1:1"],
     r"ray_address '127\.0\.0\.1:1': cannot reach a Ray cluster there \(Connection refused"),
    # 4. data
    ("decompression bomb", ["train", "{ok}", "--data", "imagefolder:bomb"], r"imagefolder: image bomb/a/x\.png is too large"),
    ("9000x9000 header", ["train", "{ok}", "--data", "imagefolder:big"],
     r"imagefolder: image big/a/x\.png is 9000x9000 pixels; at most 50,000,000"),
    ("all-NaN float TIFF", ["train", "{ok}", "--data", "imagefolder:nan"],
     r"image nan/a/nan\.tif has 64 of 64 pixels that are NaN or infinite"),
    ("uint64 label 2^63+5", ["train", "{ok}", "--data", "npz:u64.npz"],
     r"array y \(uint64\) has labels \[9223372036854775813\] beyond 2\^63 - 1"),
    ("study on a bomb", ["study", "run", "study_cfg.yaml", "--out", "R", "--set", "data=imagefolder:bomb"],
     r"image bomb/a/x\.png is too large"),
    # 7. messages that mislead
    ("storage in memory", ["study", "run", "study_cfg.yaml", "--out", "R", "--set", "storage=sqlite:///:memory:"],
     r"storage 'sqlite:///:memory:' is an in-memory database"),
    ("name étude", ["study", "run", "study_cfg.yaml", "--out", "R", "--set", "name=étude"],
     r"name must be ASCII letters \(a-z, A-Z\), digits, '_', '\.' or '-', starting with a letter or digit .*'étude'"),
    ("name ..", ["study", "run", "study_cfg.yaml", "--out", "R", "--set", "name=.."], r"starting with a letter or digit .*'\.\.'"),
    ("space list of specs", ["study", "run", "study_cfg.yaml", "--out", "R", "--set", "space=space.yaml"],
     r"needs 2 entries .*got 1; for one spec for every stage write it without the list: \{int: \[1, 2\]\}$"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in OWNERSHIP_CASES], ids=[c[0] for c in OWNERSHIP_CASES])
def test_nothing_lands_on_anothers_files_and_every_failure_is_one_line(owned: dict[str, str],
                                                                       capsys: pytest.CaptureFixture,
                                                                       argv: list[str], message: str) -> None:
    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for key in ("nas", "abl", "plain", "study") for p in Path(owned[key]).rglob("*")
                if p.is_file() and p.name != ".driver.lock"  # SQLite's own files change when nas reads its study:
                and not (key == "nas" and p.name.startswith("study.db"))}  # its content is compared below

    before = snapshot()
    mine = Path("mine.pt").read_bytes()
    rc = main([a.format(**owned) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert snapshot() == before and Path("mine.pt").read_bytes() == mine  # nothing of anyone's was changed
    assert not list(Path(".").glob("**/.*.tmp"))  # and nothing partial left behind
    import optuna

    trials = optuna.load_study(study_name="r", storage=f"sqlite:///{Path(owned['nas']) / 'study.db'}").trials
    assert trials == []  # the nas study was only read
