"""Study configs: the shipped quickstart, --set overrides, and errors that name the key."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from nas.errors import ConfigError
from nas.search.config import SAMPLERS, StudyConfig, apply_overrides, load_study_config

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "nas" / "configs" / "studies" / "quickstart.yaml"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _load(*overrides: str) -> StudyConfig:
    return load_study_config(QUICKSTART, overrides)


def test_quickstart_loads() -> None:
    cfg = _load()
    assert cfg.name == "quickstart" and cfg.data == "mnist5k"
    assert Path(cfg.space) == ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml"
    assert cfg.budget == {"epochs": 3, "batch_size": 64, "lr": 2.0e-3}
    assert cfg.objectives == {"val_acc": "maximize", "flops": "minimize"}
    assert cfg.directions() == ["maximize", "minimize"]
    assert cfg.constraints == {"flops": 5.0e6} and isinstance(cfg.constraints["flops"], float)
    assert (cfg.sampler, cfg.n_trials, cfg.seed, cfg.max_concurrent) == ("tpe", 24, 0, 2)
    assert cfg.resources == {"cpu": 1.0, "gpu": 0.0}
    assert cfg.scheduler == {"kind": "moasha", "grace_period": 1, "reduction_factor": 2.0, "selection": "epsnet",
                             "startup_trials": 4}
    assert cfg.storage is None and cfg.ray_address is None
    assert cfg.keep_checkpoints == "none" and cfg.reference_presets == ()
    assert cfg.load_space().name == "vit_family"


def test_to_dict_round_trips(tmp_path: Path) -> None:
    cfg = _load("scheduler=asha", "reference_presets=[vit_cifar]", "resources.gpu=0.25")
    doc = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
    assert StudyConfig.from_dict(doc) == cfg
    saved = tmp_path / "study.yaml"  # as a study directory keeps it
    saved.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    assert load_study_config(saved) == cfg
    assert cfg.to_dict()["scheduler"] == {"asha": {"grace_period": 1, "reduction_factor": 2.0}}  # as before
    moasha = _load("scheduler.moasha.reduction_factor=3", "scheduler.moasha.selection=crowding")
    assert moasha.scheduler == {"kind": "moasha", "grace_period": 1, "reduction_factor": 3.0, "selection": "crowding",
                                "startup_trials": 4}
    assert StudyConfig.from_dict(yaml.safe_load(yaml.safe_dump(moasha.to_dict()))) == moasha


def test_set_overrides_nested_keys() -> None:
    cfg = _load("n_trials=4", "budget.epochs=1", "budget.lr=1e-3", "objectives.params=minimize",
                "objectives.flops=maximize", "scheduler.asha.grace_period=1", "constraints.flops=null",
                "ray_address=auto", "storage=sqlite:///x.db")
    assert cfg.n_trials == 4 and cfg.budget == {"epochs": 1, "batch_size": 64, "lr": 0.001}
    assert cfg.objectives == {"val_acc": "maximize", "flops": "maximize", "params": "minimize"}
    assert cfg.scheduler == {"kind": "asha", "grace_period": 1, "reduction_factor": 2.0}
    assert cfg.constraints == {} and cfg.ray_address == "auto" and cfg.storage == "sqlite:///x.db"


def test_apply_overrides_copies_and_replaces_scalars() -> None:
    doc = {"scheduler": "none", "budget": {"epochs": 2}}
    out = apply_overrides(doc, ["scheduler.asha.reduction_factor=3", "budget.epochs=5"])
    assert out == {"scheduler": {"asha": {"reduction_factor": 3}}, "budget": {"epochs": 5}}
    assert doc == {"scheduler": "none", "budget": {"epochs": 2}}
    with pytest.raises(ConfigError, match=r"--set expects key.sub=value, got 'n_trials'"):
        apply_overrides(doc, ["n_trials"])


@pytest.mark.parametrize("override,message", [
    ("n_trial=4", r"unknown key 'n_trial' in study config; did you mean 'n_trials'\? \(from --set n_trial=4\)"),
    ("resources.cpus=2", r"unknown key 'cpus' in resources; did you mean 'cpu'\?"),
    ("budget.epoch=1", r"budget: unknown field 'epoch'; did you mean 'epochs'\?"),
    ("objectives.val_accuracy=maximize", r"unknown objective 'val_accuracy' in objectives; did you mean 'val_acc'\?"),
    ("objectives.flops=minimise", r"objectives.flops must be one of maximize, minimize; got 'minimise'; "
                                  r"did you mean 'minimize'\?"),
    ("sampler=nsga", r"sampler must be one of nsga2, tpe, random, gp, qmc; got 'nsga'; did you mean 'nsga2'\?"),
    ("constraints.flops=lots", r"constraints.flops must be a number > 0, got 'lots'"),
    ("constraints.flops=.nan", r"constraints.flops must be a finite number > 0, got nan"),
    ("budget.lr=.inf", r"budget: lr must be a finite number > 0, got inf"),
    ("budget.rrc_max_ratio=.nan", r"budget: rrc_max_ratio must be a finite number >= 1, got nan"),
    ("n_trials=" + "9" * 30, r"n_trials must be a whole number >= 1 and at most 2,147,483,647, got a 30-digit integer"),
    ("seed=4294967296", r"seed must be a whole number in \[0, 4,294,967,295\], got 4294967296"),
    ("seed=1e20", r"seed must be a whole number in \[0, 4,294,967,295\], got 1e\+20"),
    ("seed=true", r"seed must be a whole number in \[0, 4,294,967,295\], got True"),
    ("max_concurrent=2.5", r"max_concurrent must be a whole number >= 1, got 2.5"),
    ("heartbeat_interval=1e300", r"heartbeat_interval must be a number >= 1 and at most 3600, got 1e\+300"),
    ("resources.cpu=.inf", r"resources.cpu must be a finite number > 0, got inf"),
    ("prescreen={proxy: naswot, keep: .nan}", r"prescreen.keep must be a finite number > 0, got nan"),
    ("sampler=[tpe]", r"sampler must be one of nsga2, tpe, random, gp, qmc; got \['tpe'\]$"),
    ("constraints.latency=3", r"unknown constraint 'latency' in constraints; did you mean 'latency_ms'\?"),
    ("space=nowhere.yaml", r"space: search-space file 'nowhere.yaml' not found"),
    ("n_trials=0", r"n_trials must be a whole number >= 1, got 0"),
    ("resources.gpu=1.5", r"resources.gpu above 1 must be a whole number"),
    ("scheduler=hyperband", r"scheduler must be one of none, asha, moasha; got 'hyperband'"),
    ("scheduler.asha.grace_period=4", r"scheduler.asha.grace_period 4 exceeds budget.epochs 3"),
    ("ray_address=localhost", r"ray_address must be null, local, auto, host:port \(a cluster's head\) or ray://host:port"),
    ("storage=study.db", r"storage must be null .* or an SQLAlchemy URL"),
    ("keep_checkpoints=best", r"keep_checkpoints must be one of pareto, all, none"),
    ("reference_presets=[vit_cifr]", r"unknown preset 'vit_cifr'; did you mean 'vit_cifar'\?"),
    ("data=cifar11", r"data: unknown dataset 'cifar11'"),
    ("objectives={}", r"objectives is empty"),
    ("scheduler.moasha.selection=nsga", r"scheduler.moasha.selection must be one of epsnet, crowding; got 'nsga'"),
    ("scheduler.moasha.grace_period=4", r"scheduler.moasha.grace_period 4 exceeds budget.epochs 3"),
    ("scheduler.moasha.eta=3", r"unknown key 'eta' in scheduler.moasha"),
    ("scheduler.moasha.startup_trials=-1", r"scheduler.moasha.startup_trials must be a whole number >= 0, got -1"),
    ("scheduler.moasha.startup_trials=2.5", r"scheduler.moasha.startup_trials must be a whole number >= 0, got 2.5"),
    ("retry_failed=yes please", r"retry_failed must be true or false, got 'yes please'"),
    ("grace_period=3", r"grace_period \(3 s\) must exceed heartbeat_interval \(5 s\)"),
    ("heartbeat_interval=0", r"heartbeat_interval must be a number >= 1, got 0"),
])
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^quickstart.yaml: (.*: )?" + message):
        _load(override)


def test_unknown_key_in_file_and_asha_needs_a_training_objective(tmp_path: Path) -> None:
    doc = yaml.safe_load(QUICKSTART.read_text())
    doc["space"] = str(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**doc, "n_trial": 3}))
    with pytest.raises(ConfigError, match=r"unknown key 'n_trial' in study config; did you mean 'n_trials'\?"):
        load_study_config(path)
    path.write_text(yaml.safe_dump({**doc, "objectives": {"flops": "minimize"}, "scheduler": "asha"}))
    with pytest.raises(ConfigError, match=r"scheduler asha stops trials by a training metric"):
        load_study_config(path)


def test_numeric_strings_and_yaml_floats(tmp_path: Path) -> None:
    doc = {"space": "vit_family.yaml", "data": "mnist5k", "objectives": ["val_acc", "params"],
           "constraints": {"flops": "5.0e7", "params": 2e6}}
    cfg = StudyConfig.from_dict({**doc, "name": "t"}, base_dir=ROOT / "nas" / "configs" / "search_spaces")
    assert cfg.constraints == {"flops": 5.0e7, "params": 2.0e6}
    assert cfg.objectives == {"val_acc": "maximize", "params": "minimize"} and cfg.sampler == "nsga2"
    path = tmp_path / "t.yaml"
    path.write_text("space: ../x/vit_family.yaml\ndata: mnist5k\nobjectives: {val_acc: maximize}\n"
                    "constraints: {flops: 5.0e7}\nbudget: {lr: 1e-3}\n")
    with pytest.raises(ConfigError, match=r"^t.yaml: space: search-space file '../x/vit_family.yaml' not found"):
        load_study_config(path)
    path.write_text(path.read_text().replace("../x/", str(ROOT / "nas" / "configs" / "search_spaces") + "/"))
    cfg = load_study_config(path)
    assert cfg.name == "t" and cfg.constraints == {"flops": 5.0e7} and cfg.budget == {"lr": 0.001}
    assert cfg.sampler == "tpe"  # one objective


def test_space_path_falls_back_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("space: nas/configs/search_spaces/deepvit.yaml\ndata: mnist5k\nobjectives: {val_acc: maximize}\n")
    monkeypatch.chdir(ROOT)
    assert load_study_config(path).space == str(ROOT / "nas" / "configs" / "search_spaces" / "deepvit.yaml")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_a_multi_objective_study(sampler: str) -> None:
    cfg = _load(f"sampler={sampler}", "n_trials=3")  # a third of 3 trials: the model-based ones model from trial 2

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        k = trial.suggest_int("k", 1, 3)
        extra = trial.suggest_categorical("c", [1, 2]) if k > 1 else 0  # conditional, like heads
        return x * k + extra, (1.0 - x) ** 2

    study = optuna.create_study(directions=cfg.directions(), sampler=cfg.make_sampler())
    study.optimize(objective, n_trials=3)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 3
    assert study.best_trials


def test_distributed_fields_default_and_round_trip() -> None:
    config = _load()
    assert (config.retry_failed, config.heartbeat_interval, config.grace_period, config.storage_path) == (
        False, 5.0, 30.0, None)
    config = _load("ray_address=10.0.0.5:6379", "storage_path=s3://bucket/nas", "retry_failed=true")
    assert config.ray_address == "10.0.0.5:6379" and config.storage_path == "s3://bucket/nas" and config.retry_failed
    assert StudyConfig.from_dict(config.to_dict()) == config
