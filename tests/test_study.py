"""Search studies end to end: real Ray Tune, real Optuna (SQLite), tiny models, synthetic data."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from nas.genome import parse_genome
from nas.search.config import StudyConfig
from nas.search.runner import run_study
from nas.search.storage import load_optuna_study

TINY_SPACE = {
    "name": "tiny",
    "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean", "position": "absolute"},
    "num_stages": 1,
    "stage": {
        "mixer": {"choices": ["attention", "shift", "conv"]},
        "depth": {"int": [1, 2]},
        "dim": {"choices": [16, 32]},
        "heads": {"choices": [1, 2]},
        "mlp_ratio": 2,
    },
}
TINY_BUDGET = {"epochs": 1, "batch_size": 32, "subset": 64, "val_subset": 64, "lr": 3e-3}



def make_config(tmp_path: Path, space: dict[str, Any] | None = None, **fields: Any) -> tuple[StudyConfig, Path]:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space or TINY_SPACE))
    doc = {
        "name": "t", "space": "space.yaml", "data": "synthetic", "budget": dict(TINY_BUDGET),
        "objectives": {"val_acc": "maximize", "flops": "minimize"}, "n_trials": 3, "seed": 0,
        "max_concurrent": 2, "sampler": "random",
    }
    doc.update(fields)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return StudyConfig.from_dict(doc, base_dir=tmp_path), path


def trials(study_dir: Path, config: StudyConfig) -> list[optuna.trial.FrozenTrial]:
    return load_optuna_study(study_dir, config.name, config.storage).get_trials()


def test_end_to_end_study_records_everything(tmp_path: Path, ray_session: None,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    config, _ = make_config(tmp_path, n_trials=3)
    out = tmp_path / "run"
    summary = run_study(config, out, quiet=True)
    # a study writes no Tune result files (its records are the storage): Tune's result grid must not complain
    assert "Failed to fetch metrics" not in capfd.readouterr().err
    got = trials(out, config)
    assert len(got) == 3 and all(t.state == TrialState.COMPLETE for t in got)
    assert summary["states"] == {"COMPLETE": 3}
    assert load_optuna_study(out, config.name, config.storage).metric_names == ["val_acc", "flops"]  # dashboard names
    space = config.load_space()
    for t in got:
        a = t.user_attrs
        for key in ("genome", "key", "params", "flops", "flops_unit", "history", "val_acc", "train_loss",
                    "device", "seed", "versions", "duration_s"):
            assert key in a, key
        assert parse_genome(a["genome"]).key == a["key"]
        assert a["flops"] > 0 and a["params"] > 0 and "MAC" in a["flops_unit"]
        if a["status"] == "complete":
            assert len(a["history"]) == 1 and a["history"][0]["epoch"] == 1
        assert t.values == [a["val_acc"], a["flops"]]
        # the stored params replay to the same architecture (define-by-run through FixedTrial)
        replay = parse_genome(space.suggest(optuna.trial.FixedTrial(t.params)), in_channels=3, num_classes=10)
        assert replay.key == a["key"]
    frame = __import__("pandas").read_csv(out / "trials.csv")
    assert len(frame) == 3 and {"number", "state", "key", "flops", "val_acc", "s0.mixer"} <= set(frame.columns)
    assert (out / "study.yaml").exists() and (out / "cost.jsonl").exists()


def test_infeasible_genomes_are_recorded_with_cost_and_never_trained(tmp_path: Path, ray_session: None) -> None:
    config, _ = make_config(tmp_path, n_trials=2, constraints={"params": 10})
    out = tmp_path / "run"
    run_study(config, out, quiet=True)
    for t in trials(out, config):
        assert t.state == TrialState.PRUNED
        assert t.user_attrs["infeasible"] is True and t.user_attrs["status"] == "infeasible"
        assert t.user_attrs["violations"]["params"] == t.user_attrs["params"] > 10
        assert "history" not in t.user_attrs and "val_acc" not in t.user_attrs  # never trained


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to make trials fail")
def test_failing_trials_are_recorded_fail_and_the_study_goes_on(tmp_path: Path, ray_session: None) -> None:
    config, _ = make_config(tmp_path, n_trials=2, budget={**TINY_BUDGET, "device": "cuda"})
    out = tmp_path / "run"
    summary = run_study(config, out, quiet=True)
    assert summary["states"] == {"FAIL": 2}
    for t in trials(out, config):
        assert "sees no CUDA device" in t.user_attrs["error"]


def test_one_architecture_is_trained_once(tmp_path: Path, ray_session: None) -> None:
    space = {**TINY_SPACE, "stage": {"mixer": "shift", "depth": 1, "dim": 16, "mlp_ratio": 2}}
    config, _ = make_config(tmp_path, space=space, n_trials=4, max_concurrent=2, n_trials_counts="trials")
    out = tmp_path / "run"
    run_study(config, out, quiet=True)
    got = trials(out, config)
    assert len({t.user_attrs["key"] for t in got}) == 1
    trained = [t for t in got if t.user_attrs["status"] == "complete"]
    reused = [t for t in got if t.user_attrs["status"] == "reused"]
    assert len(trained) == 1 and len(reused) == 3
    for t in reused:
        assert t.state == TrialState.COMPLETE and t.user_attrs["reused_from"] == trained[0].number
        assert t.values == trained[0].values


def test_asha_stopped_trials_are_pruned_not_complete(tmp_path: Path, ray_session: None) -> None:
    budget = {**TINY_BUDGET, "epochs": 3, "subset": 256, "val_subset": 128}
    space = {**TINY_SPACE, "stage": {**TINY_SPACE["stage"], "depth": {"int": [1, 3]}, "dim": {"choices": [16, 32]}}}
    config, _ = make_config(tmp_path, space=space, n_trials=8, max_concurrent=1, budget=budget,
                            scheduler={"asha": {"grace_period": 1, "reduction_factor": 2}})
    out = tmp_path / "run"
    run_study(config, out, quiet=True)
    study = load_optuna_study(out, config.name, config.storage)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned, "ASHA stopped no trial"
    for t in pruned:
        assert t.user_attrs["status"] == "pruned" and 1 <= t.user_attrs["epoch_reached"] < 3
        assert t.values is None
    for t in complete:
        assert t.user_attrs["epochs"] == 3 or t.user_attrs["status"] == "reused"
    front = {t.number for t in study.best_trials}
    assert front and front.isdisjoint(t.number for t in pruned)


def _count(db: Path, state: TrialState) -> int:
    if not db.exists():
        return 0
    try:
        study = optuna.load_study(study_name="t", storage=f"sqlite:///{db}")
    except Exception:  # created but not yet written
        return 0
    return len(study.get_trials(states=(state,)))


def test_kill_9_then_resume_finishes_exactly_n_trials(tmp_path: Path) -> None:
    budget = {**TINY_BUDGET, "subset": 128}
    _, path = make_config(tmp_path, n_trials=6, max_concurrent=2, budget=budget)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "nas.cli.main", "study", "run", str(path), "--out", str(out)]
    log = tmp_path / "driver.log"
    with log.open("w") as sink:
        driver = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    db = out / "study.db"
    deadline = time.time() + 240
    while _count(db, TrialState.COMPLETE) < 2 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
    exited = driver.poll()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert exited is None and _count(db, TrialState.COMPLETE) >= 2, (
        f"the driver {'exited with ' + str(exited) if exited is not None else 'was still short of 2 trials'} "
        f"before the kill; its output ends:\n{log.read_text()[-3000:]}")
    storage = f"sqlite:///{db}"
    before = {t.number: (t.values, t.user_attrs["key"]) for t in
              optuna.load_study(study_name="t", storage=storage).get_trials(states=(TrialState.COMPLETE,))}
    assert len(before) >= 2
    done = subprocess.run([sys.executable, "-m", "nas.cli.main", "study", "resume", str(out), "--json"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    status = json.loads(done.stdout)
    after = optuna.load_study(study_name="t", storage=storage).get_trials()
    assert [t.state for t in after].count(TrialState.RUNNING) == 0
    outcomes = status["outcomes"]  # n_trials counts architectures trained; copies are free (nas.search.budget)
    assert outcomes["trained"] + outcomes["stopped"] + outcomes["failed"] == 6
    assert sum(outcomes.values()) == len(after)
    for number, (values, key) in before.items():  # nothing finished was lost or redone
        assert after[number].values == values and after[number].user_attrs["key"] == key
    trained = [t.user_attrs["key"] for t in after if t.user_attrs.get("status") == "complete"]
    assert len(trained) == len(set(trained))


def test_trials_csv_is_rewritten_after_every_finished_trial(tmp_path: Path, ray_session: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.search.runner as runner

    seen: list[int] = []
    original = runner.write_trials_csv

    def spy(study: Any, study_dir: Path, objectives: list[str]) -> Path:
        path = original(study, study_dir, objectives)
        seen.append(sum(1 for line in path.read_text().splitlines()[1:] if ",COMPLETE," in line))
        return path

    monkeypatch.setattr(runner, "write_trials_csv", spy)
    config, _ = make_config(tmp_path, n_trials=3, max_concurrent=1)
    run_study(config, tmp_path / "run", quiet=True, dry_run=True)
    assert seen[:3] == [1, 2, 3]  # one rewrite per finished trial, each as current as the storage
