"""Study-wide key claims, driver ranks, stale-trial re-queue and ``retry_failed``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.search.claims import KeyClaims, engine_of, requeue_stale
from nas.search.storage import finished_count, open_storage
from test_study import TINY_BUDGET, TINY_SPACE, make_config, trials


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=2)
    return optuna.create_study(study_name="s", storage=storage)


def test_a_key_is_claimed_once_and_handed_over_only_by_compare_and_swap(study: optuna.Study) -> None:
    claims = KeyClaims(engine_of(study._storage), "s")
    assert claims.claim("k", 1).trial_id == 1
    assert claims.claim("k", 2).trial_id == 1  # held: the second trial learns the owner
    assert KeyClaims(engine_of(study._storage), "other").claim("k", 9).trial_id == 9  # per study
    assert not claims.take_over("k", 5, 2)  # not the owner named: refused
    assert claims.take_over("k", 1, 2) and claims.get("k").trial_id == 2
    claims.finish("k", 2)
    assert claims.get("k").state == "done"
    claims.release([2])
    assert claims.get("k") is None and claims.claim("k", 3).trial_id == 3


def test_driver_ranks_count_the_study_s_driver_starts(study: optuna.Study) -> None:
    engine = engine_of(study._storage)
    assert [KeyClaims(engine, "s").register_driver() for _ in range(3)] == [0, 1, 2]
    assert KeyClaims(engine, "other").register_driver() == 0


def test_a_stale_trial_is_queued_again_its_claim_released_and_not_counted(study: optuna.Study) -> None:
    claims = KeyClaims(engine_of(study._storage), "s")
    trial = study.ask()
    trial.suggest_int("x", 0, 9)
    trial.set_user_attr("key", "k")
    claims.claim("k", trial._trial_id)
    study.tell(study.ask(), 1.0)  # one finished trial
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    requeue_stale(study, study._storage.get_trial(trial._trial_id))
    got = study.get_trials()
    copy = got[-1]
    assert copy.state == TrialState.WAITING and copy.params == got[0].params and copy.user_attrs["key"] == "k"
    assert copy.system_attrs["retry_history"] == [got[0].number]
    assert claims.get("k") is None
    assert finished_count(study) == 1  # the stale FAIL is replaced by its copy, not counted


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to make trials fail")
def test_a_failed_key_is_reused_as_a_failure_unless_retry_failed(tmp_path: Path, ray_cluster: Any) -> None:
    from test_distributed import _driver

    space = {**TINY_SPACE, "stage": {"mixer": "shift", "depth": 1, "dim": 16, "mlp_ratio": 2}}  # one architecture
    runs = {}
    for retry in (False, True):  # two studies at once, one driver each
        folder = tmp_path / f"retry_{retry}"
        folder.mkdir()
        config, path = make_config(folder, space=space, n_trials=3, max_concurrent=1, retry_failed=retry,
                                   budget={**TINY_BUDGET, "device": "cuda"}, ray_address=ray_cluster.address,
                                   n_trials_counts="trials")  # copies count here: three trials in all
        runs[retry] = (config, folder / "run", _driver(path, folder / "run", dry_run=False))
    for retry, (config, out, proc) in runs.items():
        assert proc.wait(timeout=300) == 2, out.with_suffix(".log").read_text()[-3000:]  # nothing succeeded: said
        assert "error: study " in out.with_suffix(".log").read_text() and "all 3 finished trial(s) failed" in \
            out.with_suffix(".log").read_text()
        got = trials(out, config)
        assert [t.state for t in got] == [TrialState.FAIL] * 3
        assert all("sees no CUDA device" in t.user_attrs["error"] for t in got)
        statuses = [t.user_attrs["status"] for t in got]
        if retry:
            assert statuses == ["failed"] * 3  # trained (and failed) each time
        else:
            assert statuses.count("failed") == 1 and statuses.count("reused_failure") == 2
            first = next(t for t in got if t.user_attrs["status"] == "failed")
            assert all(t.user_attrs["reused_from"] == first.number for t in got if t is not first)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_budget_lock_serialises_drivers(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    import threading
    import time

    url = f"sqlite:///{tmp_path / 'b.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = engine_of(open_storage(url))
    held, order = threading.Event(), []

    def first() -> None:
        with KeyClaims(engine, "b").budget_lock():
            held.set()
            time.sleep(0.5)
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    with KeyClaims(engine, "b").budget_lock():  # waits for the first holder
        order.append("second")
    thread.join()
    assert order == ["first", "second"]
