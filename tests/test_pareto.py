"""Pareto fronts (Optuna's non-dominated sorting) and hypervolume against hand and reference values."""
from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.analysis.pareto import (
    HV_ATTR,
    dominates,
    front_trials,
    hv_reference,
    hypervolume,
    hypervolume_history,
    hypervolume_summary,
    pareto_mask,
    propose_reference,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
ACC_FLOPS = {"val_acc": "maximize", "flops": "minimize"}


def make_study(directions: list[str], points: list[list[float] | None], pruned: tuple[int, ...] = ()) -> optuna.Study:
    """An in-memory study: one trial per point (None or an index in ``pruned``: a PRUNED trial)."""
    study = optuna.create_study(directions=directions)
    for i, values in enumerate(points):
        if values is None or i in pruned:
            study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"status": "pruned"}))
        else:
            study.add_trial(create_trial(values=values))
    return study


def hv_2d_sweep(losses: np.ndarray, ref: np.ndarray) -> float:
    """Independent exact 2-D hypervolume (minimisation): sweep the points by the first objective."""
    pts = sorted(tuple(p) for p in losses if np.all(p <= ref))
    total, best_y = 0.0, ref[1]
    for x, y in pts:
        if y < best_y:
            total += (ref[0] - x) * (best_y - y)
            best_y = y
    return total


# -- dominance --------------------------------------------------------------------------------------
def test_dominates_ties_and_mixed_directions() -> None:
    d = ["maximize", "minimize"]
    assert dominates([0.9, 10], [0.8, 20], d)
    assert dominates([0.9, 10], [0.9, 20], d)  # tie in one objective, better in the other
    assert not dominates([0.9, 10], [0.9, 10], d)  # equal points never dominate each other
    assert not dominates([0.9, 30], [0.8, 20], d)  # a trade-off
    assert dominates([0.8, 20], [0.9, 30], ["minimize", "minimize"])
    assert not dominates([0.8, 20], [0.9, 30], ["maximize", "maximize"])


def test_front_with_duplicates_ties_and_mixed_directions() -> None:
    points = [
        [0.80, 100],  # 0 front
        [0.80, 100],  # 1 duplicate of 0: also on the front (neither dominates)
        [0.80, 200],  # 2 tied accuracy, more flops: dominated by 0
        [0.90, 300],  # 3 dominated by 4 (same flops, lower accuracy)
        [0.95, 300],  # 4 front
        [0.50, 50],  # 5 front
        [0.50, 60],  # 6 dominated by 5
        None,  # 7 pruned: never on the front
    ]
    study = make_study(["maximize", "minimize"], points)
    expected = [0, 1, 4, 5]
    assert [t.number for t in front_trials(study)] == expected
    values = [p for p in points if p is not None]
    assert list(np.flatnonzero(pareto_mask(values, ["maximize", "minimize"]))) == expected


def test_pareto_mask_agrees_with_optuna_on_tied_random_values() -> None:
    rng = np.random.default_rng(0)
    directions = ["maximize", "minimize", "minimize"]
    values = rng.integers(0, 4, size=(60, 3)).astype(float)  # few levels: many ties and duplicates
    study = make_study(directions, values.tolist())
    assert list(np.flatnonzero(pareto_mask(values, directions))) == [t.number for t in front_trials(study)]


def test_front_is_empty_without_complete_trials() -> None:
    assert front_trials(make_study(["maximize", "minimize"], [None, None])) == []


# -- hypervolume ------------------------------------------------------------------------------------
def test_hypervolume_hand_computed_2d() -> None:
    # losses (-0.5, 10) and (-0.8, 30) against (0, 50): 0.5*40 + 0.8*20 - 0.5*20 = 26
    d = ["maximize", "minimize"]
    assert hypervolume([[0.5, 10], [0.8, 30]], d, [0.0, 50]) == pytest.approx(26.0)
    # a dominated point and a point beyond the reference change nothing
    assert hypervolume([[0.5, 10], [0.8, 30], [0.4, 40], [0.99, 60]], d, [0.0, 50]) == pytest.approx(26.0)
    assert hypervolume([], d, [0.0, 50]) == 0.0


def test_hypervolume_matches_an_independent_sweep() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        pts = np.column_stack([rng.uniform(0, 1, 15), rng.uniform(1e5, 1e7, 15)])
        ref = np.array([0.0, 8e6])
        losses = pts * np.array([-1.0, 1.0])
        expected = hv_2d_sweep(losses, ref * np.array([-1.0, 1.0]))
        assert hypervolume(pts, ["maximize", "minimize"], ref) == pytest.approx(expected, rel=1e-12)


def test_hypervolume_3d_against_inclusion_exclusion() -> None:
    pts = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 2.5], [3.0, 3.0, 1.0]])
    ref = np.array([4.0, 4.0, 4.0])
    total = 0.0  # |union of boxes| by inclusion-exclusion over all subsets
    for k in range(1, len(pts) + 1):
        for subset in itertools.combinations(pts, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * float(np.prod(ref - corner))
    assert hypervolume(pts, ["minimize"] * 3, ref) == pytest.approx(total)


def test_hypervolume_against_pymoo() -> None:
    pymoo_hv = pytest.importorskip("pymoo.indicators.hv")
    rng = np.random.default_rng(2)
    pts = np.column_stack([rng.uniform(0, 1, 30), rng.uniform(0, 10, 30)])
    ref = np.array([0.0, 12.0])
    expected = pymoo_hv.HV(ref_point=ref * [-1, 1])(pts * [-1, 1])
    assert hypervolume(pts, ["maximize", "minimize"], ref) == pytest.approx(expected)


def test_hypervolume_history_is_cumulative_by_trial_number() -> None:
    study = make_study(["maximize", "minimize"], [[0.5, 10], None, [0.4, 20], [0.8, 30]])
    history = hypervolume_history(study, [0.0, 50])
    assert [n for n, _ in history] == [0, 1, 2, 3]
    assert [v for _, v in history] == pytest.approx([20.0, 20.0, 20.0, 26.0])


# -- reference point --------------------------------------------------------------------------------
def test_reference_point_rules() -> None:
    values = [[0.5, 100.0], [0.9, 300.0]]
    assert propose_reference(ACC_FLOPS, {"flops": 1000.0}, values) == {"val_acc": 0.0, "flops": 1000.0}
    assert propose_reference(ACC_FLOPS, {}, values) == pytest.approx({"val_acc": 0.0, "flops": 320.0})
    assert propose_reference({"val_loss": "minimize", "params": "minimize"}, {}, [[1.0, 5.0]]) == \
        pytest.approx({"val_loss": 1.1, "params": 5.5})
    assert propose_reference(ACC_FLOPS, {}, []) is None  # nothing observed yet
    assert propose_reference(ACC_FLOPS, {"flops": 1000.0}, []) == {"val_acc": 0.0, "flops": 1000.0}


def test_reference_point_is_stored_once_and_never_moves() -> None:
    study = make_study(["maximize", "minimize"], [[0.5, 100.0], [0.9, 300.0]])
    first = hv_reference(study, ACC_FLOPS)
    assert study.user_attrs[HV_ATTR] == first == pytest.approx({"val_acc": 0.0, "flops": 320.0})
    study.add_trial(create_trial(values=[0.2, 5000.0]))  # far worse: a fresh proposal would move
    assert hv_reference(study, ACC_FLOPS) == first
    summary = hypervolume_summary(study, ACC_FLOPS)
    assert summary is not None and summary.reference == first
    expected = hypervolume([[0.5, 100.0], [0.9, 300.0]], ["maximize", "minimize"], [0.0, 320.0])
    assert summary.value == pytest.approx(expected)
    assert summary.fraction == pytest.approx(expected / (1.0 * 320.0))
    assert summary.front_size == 2


def test_no_summary_before_a_reference_exists() -> None:
    study = make_study(["maximize", "minimize"], [None])
    assert hypervolume_summary(study, ACC_FLOPS) is None
    assert HV_ATTR not in study.user_attrs


# -- sorting and crowding (nas.pareto) ---------------------------------------------------------------
def test_non_dominated_ranks_peel_fronts() -> None:
    from nas.pareto import non_dominated_ranks

    d = ["maximize", "minimize"]
    points = [[0.9, 4.0], [0.8, 3.5], [0.85, 3.0], [0.4, 0.5], [0.3, 1.0], [0.9, 4.0], [0.2, 2.0]]
    assert non_dominated_ranks(points, d).tolist() == [0, 1, 0, 0, 1, 0, 2]  # the duplicate shares front 0
    assert non_dominated_ranks([], d).tolist() == []
    assert non_dominated_ranks([[float("nan"), 1.0], [0.5, 1.0]], d).tolist() == [1, 0]  # NaN is worst


def test_crowding_distance_by_hand() -> None:
    from nas.pareto import crowding_distance

    # sorted by the first objective: 0, 1, 3, 4 (range 4); by the second: 4, 3, 1, 0 (range 4)
    dist = crowding_distance([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    assert np.isinf(dist[0]) and np.isinf(dist[3])
    assert dist[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert dist[2] == pytest.approx((4 - 1) / 4 + (3 - 0) / 4)
    assert np.isinf(crowding_distance([[1.0, 2.0], [2.0, 1.0]])).all()
