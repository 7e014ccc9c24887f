"""Experiment tracking: a study's, a confirmation's and an ablation's trials read back from the
TensorBoard event files and the MLflow store they wrote (real Ray Tune, tiny models, synthetic data)."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from nas.ablation.config import AblationConfig
from nas.errors import ConfigError
from nas.search.config import StudyConfig
from nas.search.tracking import Tracking, genome_params, parse_tracking, trial_metrics

pytest.importorskip("tensorboardX")
pytest.importorskip("mlflow")

SPACE = {"name": "tiny", "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean"},
         "num_stages": 1, "stage": {"mixer": {"choices": ["attention", "shift", "conv"]}, "depth": 1,
                                    "dim": {"choices": [16, 32]}, "heads": 2, "mlp_ratio": 2}}
BUDGET = {"epochs": 2, "batch_size": 32, "subset": 64, "val_subset": 64, "lr": 3e-3}
STUDY = {"name": "t", "space": "space.yaml", "data": "synthetic", "budget": BUDGET,
         "objectives": {"val_acc": "maximize", "flops": "minimize"}, "n_trials": 2, "seed": 0, "max_concurrent": 2,
         "sampler": "random", "logging": ["tensorboard", "mlflow"]}


def _error(message: str) -> ConfigError:
    return ConfigError(f"s.yaml: {message}")


# -- reading the files back ------------------------------------------------------------------------
def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the event files in ``folder``: tag -> {step: value} (TFRecord framing:
    length u64, its crc u32, the Event proto, its crc u32)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    assert event.step not in out.get(value.tag, {}), f"{value.tag} drawn twice at step {event.step}"
                    out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def mlflow_runs(uri: str, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    return client.search_runs([exp.experiment_id])


def metric_steps(uri: str, run_id: str, name: str) -> dict[int, float]:
    from mlflow.tracking import MlflowClient

    return {m.step: m.value for m in MlflowClient(uri).get_metric_history(run_id, name)}


# -- the field -------------------------------------------------------------------------------------
def test_the_logging_field() -> None:
    assert parse_tracking(None, _error) == Tracking() and not Tracking()
    both = parse_tracking(["tensorboard", "mlflow"], _error)
    assert both.tensorboard and both.mlflow and both.mlflow_uri is None and both.to_doc() == ["tensorboard", "mlflow"]
    remote = parse_tracking([{"mlflow": "http://127.0.0.1:5000"}], _error)
    assert remote.mlflow_store("/x") == "http://127.0.0.1:5000" and remote.to_doc() == [{"mlflow": "http://127.0.0.1:5000"}]
    assert both.mlflow_store("/runs/q") == "sqlite:////runs/q/mlflow.db"
    with pytest.raises(ConfigError, match=r"^s.yaml: logging: unknown logger 'wandb'; known: tensorboard, mlflow"):
        parse_tracking(["wandb"], _error)
    with pytest.raises(ConfigError, match=r"^s.yaml: logging: mlflow's tracking URI must be a URI"):
        parse_tracking([{"mlflow": "runs/x"}], _error)


def test_what_is_logged() -> None:
    genome = {"image_size": 16, "stages": [{"mixer": "shift", "depth": 1, "dim": 16}], "dims": [16, 32]}
    assert genome_params(genome) == {"image_size": 16, "stages.0.mixer": "shift", "stages.0.depth": 1,
                                     "stages.0.dim": 16, "dims": "16,32"}
    report = {"val_acc": 0.5, "flops": 100, "epoch": 2, "final": True, "status": "complete", "seed": 0,
              "training_iteration": 3, "versions/torch": "2", "val_loss": float("nan"), "ok": True}
    assert trial_metrics(report) == {"val_acc": 0.5, "flops": 100.0}
    from nas.search.tracking import _new_points

    last: dict = {}
    assert _new_points(last, "t", {"epoch": 1, "val_acc": 0.4}) == (1, {"val_acc": 0.4})
    assert _new_points(last, "t", {"epoch": 2, "val_acc": 0.5, "img_per_s": 8.0}) == (2, {"val_acc": 0.5,
                                                                                        "img_per_s": 8.0})
    final = {"epoch": 2, "val_acc": 0.5, "img_per_s": 9.0, "duration_s": 3.0, "final": True}  # epoch 2 again
    assert _new_points(last, "t", final) == (2, {"duration_s": 3.0})


def test_configs_round_trip_the_field(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    cfg = StudyConfig.from_dict(STUDY, base_dir=tmp_path)
    assert cfg.logging == Tracking(tensorboard=True, mlflow=True)
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    assert StudyConfig.from_dict({**STUDY, "logging": None}, base_dir=tmp_path).logging == Tracking()  # as before


# -- end to end ------------------------------------------------------------------------------------
def test_study_and_its_confirmation_write_curves(tmp_path: Path, ray_session: None) -> None:
    from mlflow.tracking import MlflowClient

    from nas.confirm import confirm_study
    from nas.search.runner import run_study

    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    config = StudyConfig.from_dict(STUDY, base_dir=tmp_path)
    study = tmp_path / "study"
    run_study(config, study, quiet=True)

    # TensorBoard: one folder per trial, every epoch's metrics at step = epoch, the cost beside them
    runs = sorted((study / "tensorboard").iterdir())
    assert len(runs) == 2
    for run in runs:
        scalars = read_scalars(run)
        assert set(scalars["val_acc"]) == {1, 2} and set(scalars["train_loss"]) == {1, 2}
        assert all(0.0 <= v <= 1.0 for v in scalars["val_acc"].values())
        assert scalars["flops"][2] > 0 and scalars["params"][2] > 0
        assert scalars["final/val_acc"][0] == scalars["val_acc"][2]  # the HParams tab's metric

    # MLflow: SQLite in the study folder, one run per trial: genome as params, curves, cost
    uri = f"sqlite:///{study / 'mlflow.db'}"
    runs = mlflow_runs(uri, "t")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert run.data.params["stages.0.mixer"] in ("attention", "shift", "conv")
        assert run.data.params["stages.0.dim"] in ("16", "32") and run.data.tags["status"] == "complete"
        assert run.info.run_name == f"{run.data.tags['key']}-{run.data.tags['ray_trial_id']}"
        assert set(metric_steps(uri, run.info.run_id, "val_acc")) == {1, 2}
        assert len(MlflowClient(uri).get_metric_history(run.info.run_id, "val_acc")) == 2  # the final report adds none
        assert run.data.metrics["flops"] > 0 and run.data.metrics["duration_s"] > 0

    # The confirmation (an ablation of the study's front: the ablation runner, as `nas ablate`) logs as its
    # study does: into the study's MLflow store, and its own TensorBoard folder
    confirm_study(study, epochs=1, seeds=[0], quiet=True)
    confirmed = mlflow_runs(uri, "t-confirm")
    assert len(confirmed) == len(list((study / "confirm" / "tensorboard").iterdir())) >= 1
    assert all(r.data.tags["seed"] == "0" and set(metric_steps(uri, r.info.run_id, "val_acc")) == {1}
               for r in confirmed)


def test_an_ablation_logs_its_cells_by_variant_and_seed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    doc = {"name": "abl", "base": {"image_size": 16, "num_classes": 10, "patch_size": 4, "layout": "S",
                                   "depths": 1, "dims": 16, "mlp_ratio": 2},
           "axes": [{"field": "stages.0.dim", "values": [16, 32]}], "seeds": [0], "data": "synthetic",
           "logging": ["tensorboard", {"mlflow": uri}]}
    ablation = AblationConfig.from_dict(doc)
    assert ablation.logging == Tracking(tensorboard=True, mlflow=True, mlflow_uri=uri)
    assert AblationConfig.from_dict(ablation.to_dict()).logging == ablation.logging
    cells = {c.key: {"variant": c.variant, "seed": c.seed, "genome": c.genome, "key": c.genome_key}
             for c in ablation.cells()}
    tb, mlflow = ablation.logging.callbacks(tmp_path, ablation.name, cells)
    assert type(tb).__mro__[1].__name__ == "TBXLoggerCallback" and mlflow.tracking_uri == uri

    class Trial:  # what the callbacks read of a Ray Tune trial
        trial_id = "abc_00000"
        config = {"cell": next(iter(cells))}

    from nas.search.tracking import _describe

    name, params, tags = _describe(Trial(), cells)
    assert name == "dim=16-seed0" and params["stages.0.dim"] == 16 and params["variant"] == "dim=16"
    assert tags["variant"] == "dim=16" and tags["seed"] == "0"
