"""Many drivers, one study: a real PostgreSQL, a real two-node Ray cluster, drivers as subprocesses.

The servers start once per session (tests/servers.py). Drivers are ``python -m nas study run``
processes on the cluster; most run ``--dry-run`` (every step but the training), so a test takes
seconds of CPU, not minutes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nas.search.lock import StudyLockedError, study_lock
from nas.search.budget import spent
from servers import RAY_ENV
from test_study import TINY_BUDGET, make_config

TRAINED = ("complete", "dry_run")  # statuses of trials that trained (or dry-ran) their architecture


def _env() -> dict[str, str]:
    return {**os.environ, **RAY_ENV, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}


def _driver(path: Path, out: Path, *sets: str, dry_run: bool = True, log: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nas", "study", "run", str(path), "--out", str(out), "--json"]
    cmd += [arg for s in sets for arg in ("--set", s)] + (["--dry-run"] if dry_run else [])
    sink = open(log or out.with_suffix(".log"), "w")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(cmd, env=_env(), stdout=sink, stderr=subprocess.STDOUT)


def _shared_config(tmp_path: Path, url: str, cluster: Any, name: str, **fields: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    _, path = make_config(tmp_path, name=name, storage=url, ray_address=cluster.address, max_concurrent=1,
                          heartbeat_interval=1, grace_period=4, **fields)
    return path


def _check_study(url: str, name: str, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials()
    states = Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0, states
    assert spent(study) == n_trials, states  # architectures trained; copies are free
    trained = [t.user_attrs["key"] for t in trials if t.user_attrs.get("status") in TRAINED]
    assert len(trained) == len(set(trained)), Counter(trained).most_common(3)  # no key trained twice
    return trials


def test_a_second_driver_on_one_study_folder_is_refused(tmp_path: Path) -> None:
    _, path = make_config(tmp_path)
    out = tmp_path / "run"
    with study_lock(out):
        with pytest.raises(StudyLockedError, match=f"PID {os.getpid()}"):
            with study_lock(out):
                pass
        done = subprocess.run([sys.executable, "-m", "nas", "study", "run", str(path), "--out", str(out)],
                              env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: study folder") and f"PID {os.getpid()}" in lines[0]
    assert not (out / "study.db").exists()  # refused before touching the storage
    with study_lock(out):  # released: the next driver gets it
        pass


def test_two_and_three_drivers_in_parallel_share_one_postgres_study(tmp_path: Path, postgres_url: str,
                                                                     ray_cluster: Any) -> None:
    # two studies at once on one server and one cluster: 2 drivers on one, 3 on the other
    groups = {f"shared{n}": n for n in (2, 3)}
    procs = {}
    for name, n in groups.items():
        path = _shared_config(tmp_path / name, postgres_url, ray_cluster, name, n_trials=6)
        procs[name] = [_driver(path, tmp_path / name / f"d{i}") for i in range(n)]
    for name, drivers in procs.items():
        for i, proc in enumerate(drivers):
            assert proc.wait(timeout=300) == 0, (tmp_path / name / f"d{i}.log").read_text()[-3000:]
    for name, n in groups.items():
        trials = _check_study(postgres_url, name, 6)
        assert len({t.user_attrs["driver"] for t in trials}) == n  # every driver took part


def test_each_driver_of_a_study_samples_with_its_own_seed(tmp_path: Path) -> None:
    from nas.search.runner import _sampler

    config, _ = make_config(tmp_path, sampler="random")
    firsts = []
    for rank in (0, 1, 2):
        study = optuna.create_study(directions=config.directions(), sampler=_sampler(config, optuna.create_study(), rank))
        firsts.append(study.ask().suggest_float("x", 0, 1))
    assert len(set(firsts)) == 3


def test_a_killed_driver_is_replaced_via_heartbeat(tmp_path: Path, postgres_url: str, ray_cluster: Any) -> None:
    name = "killed"
    budget = {**TINY_BUDGET, "subset": 256, "val_subset": 64}
    path = _shared_config(tmp_path, postgres_url, ray_cluster, name, n_trials=6, budget=budget)
    victim = _driver(path, tmp_path / "victim", dry_run=False)
    survivor = _driver(path, tmp_path / "survivor", dry_run=False)
    mark = f":{victim.pid}"
    deadline = time.time() + 240
    storage = optuna.storages.RDBStorage(postgres_url)
    while time.time() < deadline and victim.poll() is None:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # the drivers have not created the study yet
            trials = []
        if any(str(t.user_attrs.get("driver", "")).endswith(mark) and "genome" in t.user_attrs for t in trials):
            break
        time.sleep(0.3)
    assert victim.poll() is None, "the victim finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=300) == 0, (tmp_path / "survivor.log").read_text()[-3000:]
    trials = _check_study(postgres_url, name, 6)
    requeued = [t for t in trials if "failed_trial" in t.system_attrs]
    assert requeued, "no trial of the killed driver was queued again"
    stale = {n for t in requeued for n in t.system_attrs["retry_history"]}
    assert all(trials[n].state == TrialState.FAIL and trials[n].user_attrs["driver"].endswith(mark) for n in stale)
    assert all(t.state != TrialState.FAIL or t.number in stale for t in trials)


def test_a_study_on_a_two_node_cluster_uses_both_nodes_and_exports_weights(tmp_path: Path,
                                                                           ray_cluster: Any) -> None:
    # two CPUs per node and two per trial: two trials at once must run on different nodes
    _, path = make_config(tmp_path, name="cluster", n_trials=4, max_concurrent=2, resources={"cpu": 2},
                          ray_address=ray_cluster.address, keep_checkpoints="all",
                          storage_path=str(tmp_path / "shared"))
    out = tmp_path / "run"
    driver = _driver(path, out, dry_run=False)
    assert driver.wait(timeout=300) == 0, out.with_suffix(".log").read_text()[-3000:]
    study = optuna.load_study(study_name="cluster", storage=f"sqlite:///{out / 'study.db'}")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len({t.user_attrs["node_id"] for t in done}) == 2
    for t in done:  # persisted by Ray Tune under storage_path, not in a driver-only folder
        assert t.user_attrs["checkpoint"].startswith(str(tmp_path / "shared")) and Path(t.user_attrs["checkpoint"]).is_file()
    weights = tmp_path / "best.pt"
    export = subprocess.run([sys.executable, "-m", "nas", "export", str(out), "--pick", "max:val_acc", "--out",
                             str(tmp_path / "best.yaml"), "--weights", str(weights), "--verify"],
                            env=_env(), capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr[-2000:]
    assert weights.is_file() and weights.stat().st_size > 1000
