"""Pareto fronts and hypervolume of a study's COMPLETE trials, as analysis reads them.

Sorting, fronts, hypervolume and the reference point live in :mod:`nas.pareto` (search and the
multi-objective scheduler use them too); their names are re-exported here. This module adds what only
analysis needs: the hypervolume curve of a study and its summary against the ideal point.

The *fraction* reported alongside the hypervolume divides by the box between the reference point and
the ideal point (accuracy 1, cost and loss 0), which makes the number readable without knowing the
objectives' units.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.pareto import (
    HV_ATTR,
    box_volume,
    complete_values,
    dominates,
    front_trials,
    hv_reference,
    hypervolume,
    ideal_point,
    pareto_mask,
    propose_reference,
    to_losses,
)
from nas.search.storage import FINISHED  # one definition of "finished"

__all__ = [
    "HV_ATTR",
    "HypervolumeSummary",
    "box_volume",
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


def hypervolume_summary(
    study: optuna.Study, objectives: Mapping[str, str], constraints: Mapping[str, float] | None = None,
    *, store: bool = True,
) -> HypervolumeSummary | None:
    """Hypervolume of the study's COMPLETE trials; None while no reference point can be fixed."""
    reference = hv_reference(study, objectives, constraints, store=store)
    if reference is None:
        return None
    values = complete_values(study)
    value = hypervolume(values, study.directions, list(reference.values()))
    ideal = ideal_point(objectives, values)
    box = box_volume(reference, ideal)
    return HypervolumeSummary(value=value, fraction=None if box is None else value / box, reference=reference,
                              ideal=ideal, front_size=len(front_trials(study)))
