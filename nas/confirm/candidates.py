"""Which architectures of a study to confirm: its Pareto front, then the next ones by rank.

A study ranks architectures by one short training each; the front it reports is the front *at that
fidelity*. Confirmation retrains the front and the architectures just behind it, so that an
architecture that only missed the front by seed noise gets its chance (Lindauer & Hutter 2020,
best practice 5: evaluate the final candidates at the full budget, repeatedly). Candidates are
ordered as NSGA-II orders a population: non-dominated rank first, then crowding distance within the
rank (lonelier first, so the next ones spread along the front rather than cluster), then trial number.

Only COMPLETE trials are candidates: a PRUNED trial's values are from a lower rung, and a trial that
reused an earlier training of the same architecture (``reused_from``) is that architecture again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.fields import INT32_MAX, integer
from nas.genome.schema import layout_of
from nas.pareto import crowding_distance, non_dominated_ranks

__all__ = ["Candidate", "rank_candidates", "choose", "MIN_CONFIRMED"]

MIN_CONFIRMED = 8  # the default --top fills the confirmation up to this many architectures


@dataclass(frozen=True)
class Candidate:
    """A COMPLETE trial of the study, as confirmation sees it."""

    number: int
    key: str
    genome: dict[str, Any]  # the canonical genome document the study trained
    values: dict[str, float]  # the study's objective values (its fidelity)
    rank: int  # non-dominated rank in the study (0: the study's Pareto front)
    crowding: float  # crowding distance within its rank
    attrs: dict[str, Any]  # the trial's stored metrics and cost (val_acc, params, flops, epochs, ...)

    @property
    def on_front(self) -> bool:
        return self.rank == 0

    @property
    def layout(self) -> str:
        return layout_of(s.get("mixer") for s in self.genome.get("stages", []))

    @property
    def name(self) -> str:
        """The row label: trial number and layout (trial numbers are unique in a study)."""
        return f"#{self.number} {self.layout}"


def rank_candidates(view: Any) -> list[Candidate]:
    """Every distinct architecture the study trained to the end, in confirmation order."""
    objectives = view.objectives
    trials = [t for t in view.trials(TrialState.COMPLETE) if t.values is not None and t.user_attrs.get("genome")
              and t.user_attrs.get("reused_from") is None]
    seen: set[str] = set()
    unique = []
    for t in trials:  # by number: the first trial of a key is the one that trained it
        key = str(t.user_attrs.get("key") or t.number)
        if key not in seen:
            seen.add(key)
            unique.append(t)
    if not unique:
        return []
    values = np.asarray([t.values for t in unique], dtype=float)
    ranks = non_dominated_ranks(values, list(objectives.values()))
    crowd = np.zeros(len(unique))
    for r in set(ranks.tolist()):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding_distance(values[idx], list(objectives.values()))
    out = [Candidate(number=t.number, key=str(t.user_attrs.get("key")), genome=dict(t.user_attrs["genome"]),
                     values=dict(zip(objectives, map(float, t.values))), rank=int(ranks[i]), crowding=float(crowd[i]),
                     attrs={k: v for k, v in t.user_attrs.items() if k not in ("genome", "history", "versions")})
           for i, t in enumerate(unique)]
    return sorted(out, key=lambda c: (c.rank, -c.crowding, c.number))


def choose(view: Any, top: int | None = None) -> list[Candidate]:
    """The study's front plus the next ``top`` candidates (default: enough for ``MIN_CONFIRMED`` in all).

    Raises :class:`~nas.errors.ConfigError` when the study has fewer than two trained architectures:
    nothing could be ranked against anything.
    """
    ranked = rank_candidates(view)
    if len(ranked) < 2:
        raise ConfigError(f"study {view.name!r} in {view.dir} has {len(ranked)} finished architecture(s) "
                          f"(COMPLETE trials); confirmation compares at least 2: run more trials first "
                          f"(`nas study resume {view.dir} --set n_trials=N`)")
    if top is not None:
        top = integer("--top", top, minimum=0, cap=INT32_MAX, error=ConfigError)
    front = [c for c in ranked if c.on_front]
    extra = max(0, MIN_CONFIRMED - len(front)) if top is None else top
    return ranked[: len(front) + extra]
