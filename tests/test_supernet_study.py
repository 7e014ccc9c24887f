"""One-shot studies: supernet training resumes bitwise after kill -9, a study end to end (2 supernet
epochs, 50 scored subnets, confirmation, status/report/export), and bad one-shot configs in one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"name": "tiny_one_shot", "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean"},
         "num_stages": {"choices": [1, 2]},
         "stage": {"mixer": {"choices": ["attention", "reattention", "shift", "conv"]}, "depth": {"int": [1, 2]},
                   "dim": {"choices": [16, 32]}, "dim_growth": {"choices": [1, 2]}, "heads": {"choices": [1, 2]},
                   "mlp_ratio": {"choices": [1, 2], "tied": True}, "expansion": {"choices": [1, 2], "tied": True},
                   "shift_ratio": {"choices": [0.125, 0.25], "tied": True}}}

TRAIN = """
import os, signal, sys, torch
from nas.data import load_dataset
from nas.search.space import load_space
from nas.supernet.model import Supernet, skeleton_of
from nas.supernet.train import train_supernet
from nas.train.config import TrainConfig
space_file, checkpoint, out, kill = sys.argv[1:5]
torch.set_num_threads(1)
space = load_space(space_file)
data = load_dataset("mnist5k", seed=0)
fixed = {"in_channels": 1, "num_classes": 10}
torch.manual_seed(0)
net = Supernet(skeleton_of(space, fixed))
def on_step(s):
    if kill == "kill" and s["epoch"] == 2 and s["batch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)   # mid-epoch, after epoch 1's checkpoint
config = TrainConfig.from_dict({"batch_size": 32, "lr": 2e-3, "subset": 96, "mixup_alpha": 0.2})
train_supernet(net, space, data, config, epochs=3, seed=3, sandwich_rule=True, checkpoint=checkpoint,
               fixed=fixed, on_step=on_step)
torch.save(net.state_dict(), out)
"""


def _train(tmp_path: Path, name: str, kill: bool) -> subprocess.CompletedProcess:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return subprocess.run([sys.executable, "-c", TRAIN, str(space), str(tmp_path / f"{name}.ckpt"),
                           str(tmp_path / f"{name}.pt"), "kill" if kill else "run"],
                          capture_output=True, text=True, timeout=600)


def test_supernet_training_resumes_after_kill_9_with_the_same_final_weights(tmp_path: Path) -> None:
    killed = _train(tmp_path, "a", kill=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "a.ckpt").is_file() and not (tmp_path / "a.pt").exists()
    assert torch.load(tmp_path / "a.ckpt", weights_only=False)["epoch"] == 1
    resumed = _train(tmp_path, "a", kill=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    plain = _train(tmp_path, "b", kill=False)
    assert plain.returncode == 0, plain.stderr[-2000:]
    a, b = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    last = torch.load(tmp_path / "b.ckpt", weights_only=False)  # the last epoch's checkpoint holds the final weights
    assert last["epoch"] == 3 and all(torch.equal(last["supernet"][k], b[k]) for k in b)


def _study(tmp_path: Path, **strategy: object) -> Path:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    doc = {"name": "os", "space": str(tmp_path / "space.yaml"), "data": "mnist5k",
           "budget": {"epochs": 1, "batch_size": 64, "lr": 2e-3, "subset": 128, "val_subset": 100},
           "objectives": {"val_acc": "maximize", "flops": "minimize"}, "constraints": {"flops": 1.0e5},
           "sampler": "tpe", "n_trials": 50, "max_concurrent": 2,
           "strategy": {"one_shot": {"supernet_epochs": 2, "batch_trials": 25, "calibration_batches": 1,
                                     "confirm_top": 0, "confirm_seeds": [0, 1], **strategy}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_one_shot_study_end_to_end(tmp_path: Path, ray_session: None, capsys: pytest.CaptureFixture) -> None:
    import optuna

    from nas.search.storage import load_optuna_study

    out = tmp_path / "run"
    assert main(["study", "run", str(_study(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "supernet epoch 2/2" in printed and "Rank agreement" in printed and "Pareto front" in printed
    study = load_optuna_study(out, "os", None)
    trials = study.get_trials(deepcopy=False)
    assert all(t.user_attrs["scored_by"] == "supernet" for t in trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    infeasible = [t for t in trials if t.user_attrs.get("status") == "infeasible"]
    assert complete and len(complete) + len(infeasible) == len(trials)
    # n_trials counts scored architectures: copies and infeasible ones are free
    scored = {t.user_attrs["key"] for t in complete if t.user_attrs.get("reused_from") is None}
    assert len(scored) == 50 == sum(1 for t in complete if t.user_attrs.get("reused_from") is None)
    copies = [t for t in trials if t.user_attrs.get("reused_from") is not None]
    # a copy names its original by the number it has in the storage
    assert all(trials[t.user_attrs["reused_from"]].user_attrs["key"] == t.user_attrs["key"] for t in copies)
    assert all(trials[t.user_attrs["reused_from"]].user_attrs.get("reused_from") is None for t in copies)
    assert all(t.user_attrs["flops"] <= 1.0e5 for t in complete)
    assert all(t.user_attrs["flops"] > 1.0e5 and "val_acc" not in t.user_attrs for t in infeasible)
    assert (out / "supernet" / "weights.pt").is_file() and not (out / "supernet" / "checkpoint.pt").exists()
    confirm = json.loads((out / "confirm" / "confirm.json").read_text())
    assert confirm["seeds"] == [0, 1] and "val_acc" in confirm["correlations"]
    # status, export of inherited weights (a plain network, strict load) and of the confirmed result
    assert main(["study", "status", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pareto"] and len(status["trials"]) == len(trials)
    assert status["strategy"] == "one_shot" and status["supernet"]["epochs"] == 2
    assert status["outcomes"]["scored"] == sum(1 for t in complete if t.user_attrs.get("reused_from") is None)
    assert status["outcomes"]["trained"] == 0 and status["confirmation"]["correlations"]["val_acc"]
    assert main(["study", "status", str(out)]) == 0  # the words say the scores are inherited, not trained
    words = capsys.readouterr().out
    assert "scored" in words and "trained" not in words.splitlines()[0].split("(")[0]
    assert "one-shot study: val_acc below is inherited-weight accuracy from the supernet (2 epoch(s)" in words
    assert "confirmed by stand-alone retraining" in words
    assert main(["export", str(out), "--pick", "max:val_acc", "--out", str(tmp_path / "best.yaml"),
                 "--weights", str(tmp_path / "best.pt"), "--verify"]) == 0
    assert main(["export", str(out), "--pick", "max:val_acc", "--confirmed", "--out", str(tmp_path / "c.yaml")]) == 0
    assert "confirmed" in yaml.safe_load((tmp_path / "c.yaml").read_text())["metadata"]
    # a rerun finds everything done: nothing is trained or scored again
    assert main(["study", "run", str(_study(tmp_path)), "--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert "supernet epoch" not in again and "scoring" not in again and "0 to run" in again


@pytest.mark.parametrize("strategy, message", [
    ({"one_shot": {"supernet_epochs": 0}}, "strategy.one_shot.supernet_epochs must be"),
    ({"one_shot": {"sandwitch": True}}, "unknown key 'sandwitch' in strategy.one_shot; did you mean 'sandwich'?"),
    ({"one_shot": {"sandwich": "yes"}}, "strategy.one_shot.sandwich must be"),
    ({"one_shot": {"confirm_seeds": []}}, "confirm_seeds must be a non-empty list"),
    ({"one_shoot": {}}, "unknown strategy 'one_shoot'"),
    ({"one_shot": [1]}, "strategy.one_shot must be a mapping"),
])
def test_bad_one_shot_configs_get_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 strategy: dict, message: str) -> None:
    path = _study(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["strategy"] = strategy
    path.write_text(yaml.safe_dump(doc))
    assert main(["study", "run", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.parametrize("change, message", [
    ({"objectives": {"val_acc": "maximize", "train_loss": "minimize"}},
     "objective 'train_loss' cannot be scored with inherited weights"),
    ({"scheduler": "asha"}, "scheduler applies to multi-trial studies"),
    ({"budget": {"epochs": 1, "seconds": 30}}, "budget.seconds is not supported by supernet training"),
])
def test_settings_a_one_shot_study_cannot_follow_get_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                     change: dict, message: str) -> None:
    path = _study(tmp_path)
    doc = {**yaml.safe_load(path.read_text()), **change}
    path.write_text(yaml.safe_dump(doc))
    assert main(["study", "run", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_the_shipped_one_shot_config_loads() -> None:
    from nas.search.config import load_study_config

    config = load_study_config(ROOT / "nas" / "configs" / "studies" / "one_shot.yaml")
    assert config.strategy is not None and config.n_trials == 2000
    assert load_study_config(ROOT / "nas" / "configs" / "studies" / "quickstart.yaml").strategy is None


def test_the_in_memory_search_study_keeps_the_stored_numbers(tmp_path: Path) -> None:
    """``reused_from`` names a trial by its stored number: the sampler's in-memory copy of the study must
    number trials as the storage does, failed ones included, and refuses a storage someone else writes."""
    import optuna

    from nas.errors import ConfigError
    from nas.search.config import load_study_config
    from nas.supernet.study import _memory_study

    config = load_study_config(_study(tmp_path))
    stored = optuna.create_study(directions=config.directions())
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i, state in enumerate([optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                               optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]):
        values = [0.5, 1.0] if state == optuna.trial.TrialState.COMPLETE else None
        stored.add_trial(optuna.trial.create_trial(state=state, values=values, params={"x": 0.1 * i},
                                                   distributions=dist, user_attrs={"key": f"k{i}"}))
    memory = _memory_study(config, stored)
    assert [(t.number, t.user_attrs["key"]) for t in memory.trials] == [(t.number, t.user_attrs["key"])
                                                                         for t in stored.trials]
    assert memory.ask().number == len(stored.trials)
    stored.ask()  # a trial left running: another driver writes to this storage
    with pytest.raises(ConfigError, match="still running or waiting"):
        _memory_study(config, stored)
