"""Non-dominated sorting, crowding distance and hypervolume: the one place the project ranks trade-offs.

Search (the hypervolume reference point stored with a study), the multi-objective successive-halving
scheduler (which trials of a rung go on) and analysis (fronts, reports, selection rules) all rank
points here, so they agree on what "on the front" means. This module depends on numpy and Optuna only.

Conventions:
- every function takes values in natural units and the objectives' directions (``"maximize"`` /
  ``"minimize"`` or ``optuna.study.StudyDirection``); internally a maximised objective is negated so
  that everything is minimised (:func:`to_losses`);
- ties never dominate: two equal points are both on the front (as in Optuna).

Hypervolume is Optuna's exact calculator (a sweep in 2-D, WFG above), measured against a reference
point fixed once per study (study user attribute ``hv_reference``, see :func:`hv_reference`):

- an accuracy objective (``val_acc``, ``train_acc``): 0.0 (1.0 if it were minimised);
- a minimised objective with a constraint (``flops`` under ``constraints: {flops: 5e7}``): the limit;
- any other objective: its worst observed value, padded by 10% of the observed range.

A point worse than the reference in some objective adds nothing.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "HV_ATTR",
    "box_volume",
    "complete_values",
    "crowding_distance",
    "dominates",
    "front_trials",
    "hv_reference",
    "hypervolume",
    "ideal_point",
    "non_dominated_ranks",
    "pareto_mask",
    "propose_reference",
    "to_losses",
]

HV_ATTR = "hv_reference"


def _signs(directions: Sequence[Any]) -> np.ndarray:
    """+1 for minimise, -1 for maximise; accepts "maximize"/"minimize" or ``StudyDirection``."""
    out = []
    for d in directions:
        name = d if isinstance(d, str) else ("maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize")
        if name not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, got {d!r}")
        out.append(-1.0 if name == "maximize" else 1.0)
    return np.asarray(out)


def to_losses(values: Any, directions: Sequence[Any]) -> np.ndarray:
    """Values as an ``(n, k)`` array of quantities to minimise (maximised objectives negated)."""
    arr = np.asarray(values, dtype=float)
    arr = arr.reshape(-1, len(directions)) if arr.size else np.zeros((0, len(directions)))
    return arr * _signs(directions)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[Any]) -> bool:
    """True when ``a`` is at least as good as ``b`` in every objective and better in one (ties never dominate)."""
    la, lb = to_losses([a], directions)[0], to_losses([b], directions)[0]
    return bool(np.all(la <= lb) and np.any(la < lb))


def pareto_mask(values: Any, directions: Sequence[Any]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (Optuna's own test: duplicates all stay)."""
    from optuna.study._multi_objective import _is_pareto_front  # no public alias in Optuna 5

    losses = to_losses(values, directions)
    if len(losses) == 0:
        return np.zeros(0, dtype=bool)
    return _is_pareto_front(losses, assume_unique_lexsorted=False)


def non_dominated_ranks(values: Any, directions: Sequence[Any]) -> np.ndarray:
    """Front index of every row (0: the Pareto front, 1: the front once 0 is removed, ...).

    Deb et al.'s non-dominated sorting (NSGA-II, 2002), as Optuna's NSGA-II ranks its population.
    A NaN counts as the worst value of its objective.
    """
    from optuna.study._multi_objective import _fast_non_domination_rank  # no public alias in Optuna 5

    losses = np.nan_to_num(to_losses(values, directions), nan=np.inf)
    if len(losses) == 0:
        return np.full(0, -1, dtype=int)
    return _fast_non_domination_rank(losses)


def crowding_distance(values: Any, directions: Sequence[Any] | None = None) -> np.ndarray:
    """NSGA-II's crowding distance of each row within one front (Deb et al. 2002, Sec. III-B).

    Per objective the rows are sorted, the two extremes get infinity and every other row adds the gap
    between its neighbours divided by the objective's range; a larger distance means a lonelier point.
    Directions do not change the result (they flip the sort, not the gaps).
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1) if directions is None else arr.reshape(-1, len(directions))
    n = len(arr)
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for col in arr.T:
        col = np.nan_to_num(col, nan=np.inf)
        order = np.argsort(col, kind="stable")
        out[order[0]] = out[order[-1]] = np.inf
        span = col[order[-1]] - col[order[0]]
        if not np.isfinite(span) or span == 0:
            continue
        out[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / span
    return out


# -- reference point --------------------------------------------------------------------------------
def _is_accuracy(name: str) -> bool:
    return name.endswith("_acc")


def ideal_point(objectives: Mapping[str, str], values: Any = None) -> dict[str, float]:
    """Best conceivable value per objective: accuracy 1 (or 0 when minimised), cost and loss 0.

    A maximised objective that is not an accuracy has no natural ideal; its best observed value is used.
    """
    arr = np.asarray(values, dtype=float).reshape(-1, len(objectives)) if values is not None else None
    out: dict[str, float] = {}
    for i, (name, direction) in enumerate(objectives.items()):
        if _is_accuracy(name):
            out[name] = 1.0 if direction == "maximize" else 0.0
        elif direction == "minimize":
            out[name] = 0.0
        else:
            out[name] = float(np.max(arr[:, i])) if arr is not None and len(arr) else math.nan
    return out


def propose_reference(
    objectives: Mapping[str, str], constraints: Mapping[str, float], values: Any
) -> dict[str, float] | None:
    """The reference point the module docstring describes, from the COMPLETE trials' ``values``.

    Returns None when an objective needs observed values and there are none yet.
    """
    arr = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    out: dict[str, float] = {}
    for i, (name, direction) in enumerate(objectives.items()):
        if _is_accuracy(name):
            out[name] = 0.0 if direction == "maximize" else 1.0
        elif direction == "minimize" and constraints.get(name) is not None:
            out[name] = float(constraints[name])
        elif len(arr) == 0:
            return None
        else:
            column = arr[:, i]
            lo, hi = float(np.min(column)), float(np.max(column))
            pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 1.0
            out[name] = hi + pad if direction == "minimize" else lo - pad
    return out


def box_volume(reference: Mapping[str, float], ideal: Mapping[str, float]) -> float | None:
    """Volume of the box between the reference and the ideal point (None when a side is unknown)."""
    vol = 1.0
    for name, ref in reference.items():
        side = abs(float(ref) - float(ideal[name]))
        if not math.isfinite(side):
            return None
        vol *= side
    return vol or None


# -- studies ----------------------------------------------------------------------------------------
def complete_values(study: optuna.Study) -> np.ndarray:
    """The COMPLETE trials' values as an ``(n, k)`` array (stored states: a PRUNED trial is never here)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return np.asarray([t.values for t in trials], dtype=float).reshape(len(trials), len(study.directions))


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front of the study's COMPLETE trials, by trial number.

    Non-dominated sorting of the stored values (the rule of Optuna's ``study.best_trials`` without its
    constraint filter: a COMPLETE trial was trained, so it is feasible). A trial that reused an earlier
    training of the same architecture (``reused_from``) repeats its original's values, so only the
    original is listed.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not trials:
        return []
    mask = pareto_mask([t.values for t in trials], study.directions)
    front = sorted((t for t, keep in zip(trials, mask) if keep), key=lambda t: t.number)
    return [t for t in front if t.user_attrs.get("reused_from") is None]


def hv_reference(
    study: optuna.Study, objectives: Mapping[str, str], constraints: Mapping[str, float] | None = None,
    *, store: bool = True,
) -> dict[str, float] | None:
    """The study's stored reference point, or (first computation) a proposed one, stored when ``store``.

    Once stored it never moves, so every later hypervolume of the study is measured against it.
    A storage that refuses the write (read-only file) still gets the proposed point, unstored.
    """
    saved = study.user_attrs.get(HV_ATTR)
    if isinstance(saved, Mapping) and list(saved) == list(objectives):
        return {k: float(v) for k, v in saved.items()}
    proposed = propose_reference(objectives, dict(constraints or {}), complete_values(study))
    if proposed is not None and store:
        try:
            study.set_user_attr(HV_ATTR, proposed)
        except Exception:  # noqa: BLE001 - reading a study must not need write access
            pass
    return proposed


def hypervolume(values: Any, directions: Sequence[Any], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by ``values`` (natural units) up to ``reference`` (natural units).

    Points that do not weakly dominate the reference contribute nothing (Optuna's calculator refuses them).
    """
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact calculator (no public alias in 5.0)

    losses = to_losses(values, directions)
    ref = to_losses([list(reference)], directions)[0]
    inside = losses[np.all(losses <= ref, axis=1)] if len(losses) else losses
    if len(inside) == 0:
        return 0.0
    return float(compute_hypervolume(inside, ref))
