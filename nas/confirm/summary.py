"""The confirmation's verdict on a study: confirmed scores, rank agreement, the confirmed front.

From the stored cells only (one record per architecture x seed), for every architecture and
objective: the mean, sample std and 95% t-interval over seeds (:func:`nas.stats.summarize`); whether
it is still non-dominated when every architecture is placed at its confirmed means; and, per
objective that training changes, Kendall's tau and Spearman's rho between the study's score and the
confirmed mean, over all confirmed architectures and over the study's front alone: how far the
study's short-budget ranking can be trusted (Yang et al., ICLR 2020, measure the same between search
and final fidelity). Cost objectives (``params``, ``flops``) are counted, not trained: confirming them
re-counts the same numbers, so they get no correlation. Both fronts' hypervolumes are measured
against the study's own reference point, so they are comparable with the study's report.
"""
from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.ablation.claims import seed_values
from nas.analysis.confirmed import COUNTED
from nas.confirm.candidates import Candidate
from nas.pareto import box_volume, hypervolume, ideal_point, pareto_mask
from nas.stats import Correlation, Summary, correlate, summarize

__all__ = ["ArchitectureResult", "Confirmation", "summarize_confirmation", "COUNTED"]



@dataclass(frozen=True)
class ArchitectureResult:
    candidate: Candidate
    confirmed: dict[str, Summary]  # objective -> statistics over the complete seeds
    n_seeds: int
    n_failed: int
    confirmed_front: bool

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"number": c.number, "name": c.name, "key": c.key, "layout": c.layout, "genome": c.genome,
                "study_rank": c.rank, "study_crowding": None if math.isinf(c.crowding) else c.crowding,
                "study_front": c.on_front, "study": dict(c.values),
                "confirmed": {k: s.to_dict() for k, s in self.confirmed.items()},
                "n_seeds": self.n_seeds, "n_failed": self.n_failed, "confirmed_front": self.confirmed_front,
                "params": c.attrs.get("params"), "flops": c.attrs.get("flops")}


@dataclass(frozen=True)
class Confirmation:
    study: str
    study_dir: str
    dir: str
    objectives: dict[str, str]
    data: str
    study_budget: dict[str, Any]
    budget: dict[str, Any]
    seeds: tuple[int, ...]
    architectures: tuple[ArchitectureResult, ...]
    correlations: dict[str, dict[str, Correlation]]  # objective -> {"all": ..., "front": ...}
    hypervolume: dict[str, Any]
    elapsed_s: float = 0.0  # wall time of the call that wrote it (a resumed call: only the rest)
    cell_s: float = 0.0  # the stored cells' own durations, summed: the training the confirmation cost
    span_s: float = 0.0  # from the first cell's start to the last cell's end (across resumed calls)

    @property
    def trained(self) -> list[str]:
        """The objectives confirmation measures anew (everything but the counted costs)."""
        return [o for o in self.objectives if o not in COUNTED]

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "study_dir": self.study_dir, "dir": self.dir, "objectives": self.objectives,
                "data": self.data, "study_budget": self.study_budget, "budget": self.budget,
                "seeds": list(self.seeds), "architectures": [a.to_dict() for a in self.architectures],
                "correlations": {o: {k: c.to_dict() for k, c in d.items()} for o, d in self.correlations.items()},
                "hypervolume": self.hypervolume, "elapsed_s": self.elapsed_s, "cell_s": self.cell_s,
                "span_s": self.span_s,
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def summarize_confirmation(plan: Any, records: Sequence[Mapping[str, Any]], elapsed_s: float = 0.0) -> Confirmation:
    """The confirmation of ``plan`` (:class:`nas.confirm.run.ConfirmPlan`) from its stored cell records."""
    from nas.pareto import hv_reference

    view = plan.view
    objectives = dict(view.objectives)
    directions = list(objectives.values())
    partial = []
    for cand in plan.candidates:
        stats = {o: summarize(list(seed_values(records, cand.name, o).values())) for o in objectives}
        mine = [r for r in records if r.get("variant") == cand.name]
        n_ok = sum(r.get("status") == "complete" for r in mine)
        partial.append((cand, stats, n_ok, sum(r.get("status") == "failed" for r in mine)))
    have = [i for i, (_, stats, n, _) in enumerate(partial) if n and all(np.isfinite(s.mean) for s in stats.values())]
    means = np.asarray([[partial[i][1][o].mean for o in objectives] for i in have], dtype=float)
    on_front = set(np.asarray(have)[pareto_mask(means, directions)].tolist()) if have else set()
    archs = tuple(ArchitectureResult(c, s, n, f, i in on_front) for i, (c, s, n, f) in enumerate(partial))

    correlations: dict[str, dict[str, Correlation]] = {}
    for o in objectives:
        if o in COUNTED:
            continue
        for scope, subset in (("all", archs), ("front", [a for a in archs if a.candidate.on_front])):
            correlations.setdefault(o, {})[scope] = correlate([a.candidate.values[o] for a in subset],
                                                              [a.confirmed[o].mean for a in subset])
    names = {c.name for c in plan.candidates}
    mine_all = [r for r in records if r.get("variant") in names]
    reference = hv_reference(view.study, objectives, view.config.constraints, store=False)
    hv: dict[str, Any] = {"reference": reference}
    if reference is not None:
        ref = list(reference.values())
        study_values = [list(a.candidate.values.values()) for a in archs if a.candidate.on_front]
        confirmed_values = means.tolist() if len(have) else []
        box = box_volume(reference, ideal_point(objectives, np.asarray(study_values + confirmed_values)))
        hv["study"] = hypervolume(study_values, directions, ref)
        hv["confirmed"] = hypervolume(confirmed_values, directions, ref)
        hv["study_fraction"] = None if not box else hv["study"] / box
        hv["confirmed_fraction"] = None if not box else hv["confirmed"] / box
    return Confirmation(
        study=view.name, study_dir=str(view.dir), dir=str(plan.out_dir.resolve()), objectives=objectives,
        data=view.config.data, study_budget=dict(view.config.budget), budget=dict(plan.config.budget),
        seeds=tuple(plan.config.seeds), architectures=archs, correlations=correlations, hypervolume=hv,
        elapsed_s=elapsed_s, cell_s=float(sum(float(r.get("duration_s") or 0.0) for r in mine_all)),
        span_s=_span(mine_all),
    )


def _span(records: Sequence[Mapping[str, Any]]) -> float:
    """Seconds from the earliest cell start to the latest cell end (0 without both stamps)."""
    starts = [float(r["started_at"]) for r in records if isinstance(r.get("started_at"), (int, float))]
    ends = [float(r["ended_at"]) for r in records if isinstance(r.get("ended_at"), (int, float))]
    return max(0.0, max(ends) - min(starts)) if starts and ends else 0.0
