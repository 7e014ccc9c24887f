"""MO-ASHA: rung decisions on hand-made populations, and one small real study with it."""
from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from nas.search.moasha import MOASHAScheduler, milestones, promotes, rung_order

ACC_FLOPS = ["maximize", "minimize"]
# A rung at epoch 1: two accurate, costly networks and a dominated one (worse than 0.85 @ 3.0M in both).
RUNG = [[0.90, 4.0e6], [0.85, 3.0e6], [0.80, 3.5e6]]


def test_milestones_stay_below_the_budget() -> None:
    assert milestones(1, 2, 3) == [1, 2]
    assert milestones(1, 3, 9) == [1, 3]
    assert milestones(2, 2, 3) == [2]
    assert milestones(1, 2, 1) == []


@pytest.mark.parametrize("selection", ["epsnet", "crowding"])
def test_a_cheap_slow_learner_on_the_front_is_promoted(selection: str) -> None:
    cheap = [0.40, 0.5e6]  # by far the worst accuracy at this rung, but nothing is cheaper
    assert promotes(RUNG, cheap, ACC_FLOPS, reduction_factor=2, selection=selection)
    # ranked by accuracy alone (single-objective ASHA) the same network is stopped
    assert not promotes([[r[0]] for r in RUNG], [cheap[0]], ["maximize"], reduction_factor=2, selection=selection)


@pytest.mark.parametrize("selection", ["epsnet", "crowding"])
def test_a_dominated_trial_is_stopped(selection: str) -> None:
    assert not promotes(RUNG, [0.70, 4.5e6], ACC_FLOPS, reduction_factor=2, selection=selection)


def test_the_first_trial_at_a_rung_goes_on() -> None:
    assert promotes([], [0.1, 4.9e6], ACC_FLOPS, reduction_factor=3)


def test_rung_order_is_fronts_then_spread() -> None:
    points = [[0.9, 4e6], [0.85, 3e6], [0.8, 3.5e6], [0.4, 0.5e6], [0.6, 1.0e6]]
    order = rung_order(points, ACC_FLOPS, "epsnet")
    assert set(order[:4]) == {0, 1, 3, 4} and order[4] == 2  # the dominated point comes last
    assert order[:2] == [0, 3]  # best accuracy first, then the point farthest from it: the cheapest
    crowd = rung_order(points, ACC_FLOPS, "crowding")
    assert set(crowd[:2]) == {0, 3} and crowd[4] == 2  # the two extremes of the front first


def test_scheduler_decides_once_per_rung_and_ignores_final_reports() -> None:
    sched = MOASHAScheduler({"val_acc": "maximize", "flops": "minimize"}, epochs=3)
    assert sorted(sched.rungs) == [1, 2]
    go = TrialScheduler.CONTINUE
    assert sched.decide("a", {"epoch": 1, "val_acc": 0.9, "flops": 4e6, "final": False}) == go
    assert sched.decide("b", {"epoch": 1, "val_acc": 0.7, "flops": 4.5e6, "final": False}) == TrialScheduler.STOP
    assert sched.decide("a", {"epoch": 1, "val_acc": 0.9, "flops": 4e6, "final": False}) == go  # recorded
    assert sched.decide("c", {"epoch": 3, "val_acc": 0.1, "flops": 4.9e6, "final": False}) == go  # last epoch
    assert sched.decide("d", {"epoch": 1, "val_acc": 0.0, "flops": 4.9e6, "final": True}) == go  # final word
    assert sched.decide("e", {"status": "infeasible", "flops": 6e6, "final": True}) == go
    assert sched.num_stopped == 1 and "stopped 1" in sched.debug_string()


def test_a_rung_stops_nothing_before_its_startup_trials() -> None:
    sched = MOASHAScheduler({"val_acc": "maximize", "flops": "minimize"}, epochs=3, startup_trials=3)
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    worse = [{"epoch": 1, "val_acc": 0.9 - 0.1 * i, "flops": 4e6 + 1e5 * i, "final": False} for i in range(5)]
    # each one dominated by all before it: the first three go on, then MO-ASHA decides as usual
    assert [sched.decide(f"t{i}", r) for i, r in enumerate(worse)] == [go, go, go, stop, stop]
    assert sched.decide("late", {"epoch": 2, "val_acc": 0.1, "flops": 4.9e6, "final": False}) == go  # rung 2: new
    assert sched.num_stopped == 2 and "startup 3" in sched.debug_string()
    plain = MOASHAScheduler({"val_acc": "maximize", "flops": "minimize"}, epochs=3)
    assert [plain.decide(f"t{i}", r) for i, r in enumerate(worse)] == [go, stop, stop, stop, stop]


def test_a_study_under_moasha_records_stopped_trials_pruned_with_their_rung(tmp_path: Path, ray_session: None) -> None:
    from test_study import TINY_BUDGET, TINY_SPACE, make_config

    from nas.search.runner import run_study
    from nas.search.storage import load_optuna_study

    budget = {**TINY_BUDGET, "epochs": 3, "subset": 128, "val_subset": 64}
    space = {**TINY_SPACE, "stage": {**TINY_SPACE["stage"], "depth": {"int": [1, 3]}}}
    config, _ = make_config(tmp_path, space=space, n_trials=8, max_concurrent=1, budget=budget, sampler="nsga2",
                            scheduler={"moasha": {"grace_period": 1, "reduction_factor": 2, "startup_trials": 0}})
    assert config.scheduler == {"kind": "moasha", "grace_period": 1, "reduction_factor": 2.0, "selection": "epsnet",
                                "startup_trials": 0}
    out = tmp_path / "run"
    run_study(config, out, quiet=True)
    study = load_optuna_study(out, config.name, config.storage)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "MO-ASHA stopped no trial"
    for t in pruned:
        a = t.user_attrs
        assert a["status"] == "pruned" and a["epoch_reached"] in (1, 2) and t.values is None
        assert a["sampler_values"] == [a["val_acc"], a["flops"]] and a["sampler_violation"] == 0.0
    for t in study.trials:
        if t.state == TrialState.COMPLETE and t.user_attrs["status"] != "reused":
            assert t.user_attrs["epochs"] == 3
    gens = [t.system_attrs["NSGAIISampler:generation"] for t in sorted(study.trials, key=lambda t: t.number)]
    assert gens[-1] >= 1  # pruned trials count towards NSGA-II's generations (population 4 of 8 trials)
    from nas.analysis.report import _stopper
    from nas.analysis.study import open_study

    assert _stopper(open_study(out)) == " by MO-ASHA"  # the report's legend names the scheduler that stopped them
