"""Pareto fronts and hypervolume of a study's COMPLETE trials.

The front is Optuna's own non-dominated sorting (``study.best_trials``), so the report, ``nas study
status`` and the samplers agree on it. :func:`pareto_mask` does the same for an arbitrary table of
values (a subset of trials picked by a rule), where no Optuna study exists.

Hypervolume is computed by Optuna's exact calculator (exact in every dimension: a sweep in 2-D, WFG
above) after turning every objective into one to minimise (maximised values are negated). It is
measured against a reference point fixed once per study and stored with it (study user attribute
``hv_reference``), so values from different days, reports and resumes are comparable:

- an accuracy objective (``val_acc``, ``train_acc``): 0.0 (1.0 if it were minimised);
- a minimised objective with a constraint (``flops`` under ``constraints: {flops: 5e7}``): the limit;
- any other objective: its worst observed value, padded by 10% of the observed range.

A point worse than the reference in some objective adds nothing. The *fraction* reported alongside
divides by the box between the reference point and the ideal point (accuracy 1, cost and loss 0),
which makes the number readable without knowing the objectives' units.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "HV_ATTR",
    "HypervolumeSummary",
    "dominates",
    "front_trials",
    "hv_reference",
    "hypervolume",
    "hypervolume_history",
    "hypervolume_summary",
    "ideal_point",
    "propose_reference",
    "pareto_mask",
    "to_losses",
]

HV_ATTR = "hv_reference"
from nas.search.storage import FINISHED  # noqa: E402  (one definition of "finished")


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
    """Boolean mask of the non-dominated rows of ``values`` (same rule as Optuna: duplicates all stay)."""
    losses = to_losses(values, directions)
    if len(losses) == 0:
        return np.zeros(0, dtype=bool)
    le = np.all(losses[:, None, :] <= losses[None, :, :], axis=2)  # le[j, i]: j at least as good as i
    lt = np.any(losses[:, None, :] < losses[None, :, :], axis=2)
    return ~np.any(le & lt, axis=0)


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Optuna's Pareto front of the COMPLETE trials (``study.best_trials``), by trial number.

    A trial that reused an earlier training of the same architecture (``reused_from``) repeats its
    original's values, so only the original is listed.
    """
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    front = sorted(study.best_trials, key=lambda t: t.number)
    return [t for t in front if t.user_attrs.get("reused_from") is None]


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


def _complete_values(study: optuna.Study) -> np.ndarray:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return np.asarray([t.values for t in trials], dtype=float).reshape(len(trials), len(study.directions))


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
    proposed = propose_reference(objectives, dict(constraints or {}), _complete_values(study))
    if proposed is not None and store:
        try:
            study.set_user_attr(HV_ATTR, proposed)
        except Exception:  # noqa: BLE001 - reading a study must not need write access
            pass
    return proposed


# -- hypervolume ------------------------------------------------------------------------------------
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


def hypervolume_history(study: optuna.Study, reference: Sequence[float]) -> list[tuple[int, float]]:
    """``(trial number, hypervolume of the COMPLETE trials numbered up to it)`` for every finished trial.

    Trials are taken by number (the order the sampler proposed them); a pruned, infeasible or failed
    trial repeats the previous value, so the curve shows how many trials each gain cost.
    """
    directions = study.directions
    out: list[tuple[int, float]] = []
    seen: list[list[float]] = []
    value = 0.0
    for trial in sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number):
        if trial.state == TrialState.COMPLETE and trial.values is not None:
            seen.append(list(trial.values))
            value = hypervolume(seen, directions, reference)
        out.append((trial.number, value))
    return out


@dataclass(frozen=True)
class HypervolumeSummary:
    """The study's hypervolume, its reference point and how much of the ideal box it covers."""

    value: float
    fraction: float | None  # value / volume of the box between ideal and reference point
    reference: dict[str, float]
    ideal: dict[str, float]
    front_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "fraction": self.fraction, "reference": dict(self.reference),
                "ideal": dict(self.ideal), "front_size": self.front_size}


def box_volume(reference: Mapping[str, float], ideal: Mapping[str, float]) -> float | None:
    vol = 1.0
    for name, ref in reference.items():
        side = abs(float(ref) - float(ideal[name]))
        if not math.isfinite(side):
            return None
        vol *= side
    return vol or None


def hypervolume_summary(
    study: optuna.Study, objectives: Mapping[str, str], constraints: Mapping[str, float] | None = None,
    *, store: bool = True,
) -> HypervolumeSummary | None:
    """Hypervolume of the study's COMPLETE trials; None while no reference point can be fixed."""
    reference = hv_reference(study, objectives, constraints, store=store)
    if reference is None:
        return None
    values = _complete_values(study)
    value = hypervolume(values, study.directions, list(reference.values()))
    ideal = ideal_point(objectives, values)
    box = box_volume(reference, ideal)
    return HypervolumeSummary(value=value, fraction=None if box is None else value / box, reference=reference,
                              ideal=ideal, front_size=len(front_trials(study)))
