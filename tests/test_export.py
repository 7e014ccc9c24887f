"""``nas export``: genome + metadata, rebuild with identical counts, drift detection, weights round trip."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import create_trial

import nas
from nas.analysis.export import ExportError, export_trial, load_weights, verify_export
from nas.cli.main import main
from nas.cost import count_cost
from nas.models import build_model
from nas.search.config import StudyConfig
from nas.search.runner import prepare_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = Path(__file__).resolve().parents[1] / "nas" / "configs" / "search_spaces" / "vit_family.yaml"


def make_study_dir(path: Path, genomes, *, keep: str = "all", checkpoints: bool = True, flops_offset: int = 0) -> Path:
    """A study whose trials store the given genomes with their true params and FLOPs (plus ``flops_offset``)."""
    config = StudyConfig.from_dict({"name": "exp", "space": str(SPACE), "data": "mnist5k", "n_trials": 4,
                                    "objectives": {"val_acc": "maximize", "flops": "minimize"},
                                    "keep_checkpoints": keep})
    study = prepare_study(config, path)
    for i, genome in enumerate(genomes):
        cost = count_cost(genome)
        checkpoint = None
        if checkpoints:
            torch.manual_seed(i)
            checkpoint = path / "checkpoints" / f"{genome.key}.pt"
            checkpoint.parent.mkdir(exist_ok=True)
            torch.save(build_model(genome).state_dict(), checkpoint)
        attrs = {"genome": genome.to_dict(), "key": genome.key, "params": cost.params,
                 "flops": cost.flops + flops_offset, "flops_unit": cost.unit, "val_acc": 0.5 + 0.2 * i,
                 "train_acc": 0.6, "train_loss": 1.2, "val_loss": 1.1, "epochs": 1, "status": "complete",
                 "checkpoint": None if checkpoint is None else str(checkpoint)}
        study.add_trial(create_trial(values=[attrs["val_acc"], attrs["flops"]], user_attrs=attrs))
    return path


@pytest.fixture
def genomes(tiny_genome):
    return [tiny_genome(layout="S", dims=16), tiny_genome(layout="A", dims=32)]


def test_export_build_identical_counts(tmp_path: Path, genomes, capsys) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes)
    out = tmp_path / "best.yaml"
    assert main(["export", str(study_dir), "--pick", "max:val_acc", "--out", str(out), "--verify"]) == 0
    assert "verified: rebuilt" in capsys.readouterr().out
    doc = yaml.safe_load(out.read_text())
    meta = doc["metadata"]
    assert (meta["study"], meta["trial"], meta["rule"]) == ("exp", 1, "max:val_acc")
    assert meta["objectives"] == {"val_acc": pytest.approx(0.7), "flops": meta["flops"]}
    assert meta["metrics"]["train_loss"] == 1.2 and meta["flops_unit"].startswith("MACs")
    assert {"torch", "optuna", "nas"} <= set(meta["versions"]) and meta["date"][:2] == "20"
    rebuilt = nas.load_genome(out)  # the metadata block is ignored when loading
    assert rebuilt.key == genomes[1].key == meta["key"]
    cost = count_cost(rebuilt)
    assert (cost.params, cost.flops) == (meta["params"], meta["flops"])
    assert sum(p.numel() for p in nas.build_model(out).parameters()) == meta["params"]
    assert main(["build", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == meta["params"]


def test_verify_catches_drift(tmp_path: Path, genomes) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes, checkpoints=False)
    out = export_trial(study_dir, "min:flops", tmp_path / "best.yaml").path
    assert verify_export(out).params == yaml.safe_load(out.read_text())["metadata"]["params"]
    doc = yaml.safe_load(out.read_text())
    doc["metadata"]["params"] += 1
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    drift = r"drifted from the study's record: params: stored [\d,]+, rebuilt [\d,]+ \(-1\)"
    with pytest.raises(ExportError, match=drift):
        verify_export(out)


def test_export_verify_fails_when_the_study_recorded_other_counts(tmp_path: Path, genomes, capsys) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes, checkpoints=False, flops_offset=7)
    out = tmp_path / "best.yaml"
    assert main(["export", str(study_dir), "--pick", "knee", "--out", str(out), "--verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "drifted from the study's record: flops: stored" in err and "(-7)" in err
    with pytest.raises(ExportError, match=r"flops: stored [\d,]+, rebuilt [\d,]+ \(-7\)"):
        verify_export(out)


def test_weights_round_trip(tmp_path: Path, genomes) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes)
    result = export_trial(study_dir, "max:val_acc", tmp_path / "best.yaml", weights=tmp_path / "best.pt", verify=True)
    assert result.verified is not None and result.verified.weights_loaded
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    reference = build_model(genomes[1])  # the trial's own genome, with the same state dict
    reference.load_state_dict(state, strict=True)
    reference.eval()
    rebuilt = load_weights(result.path, tmp_path / "best.pt")  # rebuilt from the exported file
    assert not rebuilt.training
    x = torch.randn(3, genomes[1].in_channels, genomes[1].image_size, genomes[1].image_size)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), reference(x))
    assert len(result.metadata["weights_sha256"]) == 64


def test_weights_need_a_checkpoint(tmp_path: Path, genomes) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes, keep="none", checkpoints=False)
    with pytest.raises(ExportError, match="kept no weights .*keep_checkpoints: none.*keep_checkpoints: pareto or all"):
        export_trial(study_dir, "knee", tmp_path / "best.yaml", weights=tmp_path / "best.pt")
    assert not (tmp_path / "best.yaml").exists()  # nothing half-written


def test_weights_that_do_not_fit_are_refused(tmp_path: Path, genomes) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes)
    ckpt = Path(optuna.load_study(study_name="exp", storage=f"sqlite:///{study_dir / 'study.db'}")
                .trials[1].user_attrs["checkpoint"])
    torch.save(build_model(genomes[0]).state_dict(), ckpt)  # the other genome's weights
    with pytest.raises(ExportError, match="does not fit the genome"):
        export_trial(study_dir, "max:val_acc", tmp_path / "best.yaml", weights=tmp_path / "best.pt")


def test_bad_rule_from_the_cli(tmp_path: Path, genomes, capsys) -> None:
    study_dir = make_study_dir(tmp_path / "study", genomes, checkpoints=False)
    assert main(["export", str(study_dir), "--pick", "max:accuracy", "--out", str(tmp_path / "b.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: rule 'max:accuracy' names no objective or metric of this study: 'accuracy'; "
                          "known: val_acc (0.5–0.7), flops (")
