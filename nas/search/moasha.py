"""Multi-objective asynchronous successive halving (MO-ASHA) as a Ray Tune scheduler.

ASHA (Li et al. 2020) stops a trial at a rung (an epoch milestone) unless it lies in the top 1/eta of
the results recorded at that rung so far. Ranked by accuracy alone, that is wrong for an
accuracy-vs-cost search: small, cheap networks learn more slowly in the first epochs, so single-metric
ASHA removes exactly the cheap end of the Pareto front. MO-ASHA (Schmucker et al. 2021, "Multi-objective
multi-fidelity hyperparameter optimization with application to fairness"; Salinas et al. 2021; Syne
Tune's ``MOASHA``) ranks the rung's population by non-dominated sorting over ALL the study's objectives
instead: the cost objectives (FLOPs, params, latency) are exact from rung 0, so a cheap slow learner
that no other trial beats in both accuracy and cost is on the rung's first front and goes on.

Within a front, ties are broken by one of the two selections the paper compares:

- ``epsnet`` (default; the paper's EpsNet, which did best there): a greedy epsilon-net, picking first
  the point best in the first objective, then repeatedly the point farthest from those picked (in
  objective space normalised to the rung's range), so the kept points cover the front evenly;
- ``crowding``: NSGA-II's crowding distance (Deb et al. 2002), lonelier points first.

Decisions are asynchronous, as in ASHA: when a trial reaches a milestone, it is ranked among the results
recorded at that milestone so far plus its own, and continues if its position is within the top
``ceil(n / eta)`` (the first trial at a rung always continues). With ``startup_trials: N`` (a study's
default: 4; this class's: 0) a rung stops nothing until N results are recorded there (as Optuna's
pruners' ``n_startup_trials``): asynchronous decisions on a rung of one or two results are close to a
coin toss, and every trial stopped then is a trial without a full result early in the study. A
stopped trial is recorded PRUNED with the rung it reached (``epoch_reached``) and its last values,
which the sampler still sees (:mod:`nas.search.feedback`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas.pareto import crowding_distance, non_dominated_ranks, to_losses
from nas.search.config import MOASHA_SELECTIONS

__all__ = ["MOASHAScheduler", "SELECTIONS", "milestones", "rung_order", "promotes"]

SELECTIONS = MOASHA_SELECTIONS  # epsnet | crowding


def milestones(grace_period: int, reduction_factor: float, epochs: int) -> list[int]:
    """Rung epochs ``grace * eta^k`` strictly below ``epochs`` (a trial at its last epoch is never cut)."""
    out: list[int] = []
    t = float(grace_period)
    while t < epochs:
        if not out or int(t) > out[-1]:
            out.append(int(t))
        t *= reduction_factor
    return out


def _normalised(losses: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(losses), losses, np.nan)
    lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (losses - lo) / span
    return np.nan_to_num(out, nan=1.0, posinf=1.0, neginf=0.0)


def _epsnet_order(losses: np.ndarray) -> list[int]:
    """Greedy epsilon-net order of the rows: best in the first objective, then farthest-first."""
    pts = _normalised(losses)
    first = int(np.lexsort(pts.T[::-1])[0])  # best first objective, ties by the next ones
    order = [first]
    dist = np.linalg.norm(pts - pts[first], axis=1)
    dist[first] = -1.0
    while len(order) < len(pts):
        nxt = int(np.argmax(dist))  # first index among equals: deterministic
        order.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pts - pts[nxt], axis=1))
        dist[order] = -1.0
    return order


def rung_order(values: Any, directions: Sequence[str], selection: str = "epsnet") -> list[int]:
    """Indices of the rung's rows from most to least deserving of promotion.

    Fronts first (non-dominated sorting over all objectives), and within a front the ``selection``
    order (``epsnet`` or ``crowding``). A NaN or missing value counts as the worst of its objective.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    losses = np.nan_to_num(to_losses(values, directions), nan=np.inf)
    ranks = non_dominated_ranks(losses, ["minimize"] * len(directions))
    order: list[int] = []
    for front in range(int(ranks.max()) + 1 if len(ranks) else 0):
        idx = np.flatnonzero(ranks == front)
        if selection == "crowding":
            dist = crowding_distance(losses[idx])
            local = sorted(range(len(idx)), key=lambda i: (-dist[i], idx[i]))
        else:
            local = _epsnet_order(losses[idx])
        order += [int(idx[i]) for i in local]
    return order


def promotes(recorded: Sequence[Sequence[float]], candidate: Sequence[float], directions: Sequence[str],
             reduction_factor: float, selection: str = "epsnet") -> bool:
    """Whether ``candidate`` goes on past a rung where ``recorded`` results are already in.

    It goes on when its position in :func:`rung_order` of ``recorded + [candidate]`` is within the top
    ``ceil(n / reduction_factor)``; the first trial to reach a rung always goes on.
    """
    points = [list(map(float, r)) for r in recorded] + [list(map(float, candidate))]
    keep = max(1, math.ceil(len(points) / reduction_factor))
    return rung_order(points, directions, selection).index(len(points) - 1) < keep


class MOASHAScheduler(FIFOScheduler):
    """Ray Tune scheduler: one ASHA bracket whose rungs rank trials by all the study's objectives.

    ``objectives`` maps each reported metric to ``maximize``/``minimize``; ``time_attr`` is the
    progress counter of the reports (the trial objective's ``epoch``). Reports marked ``final`` (the
    trial's last word after its whole budget, or an untrained trial's only report) are never acted on.
    """

    def __init__(self, objectives: Mapping[str, str], epochs: int, *, grace_period: int = 1,
                 reduction_factor: float = 2.0, selection: str = "epsnet", startup_trials: int = 0,
                 time_attr: str = "epoch") -> None:
        super().__init__()
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor}")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
        self.objectives = dict(objectives)
        self.directions = list(self.objectives.values())
        self.reduction_factor = float(reduction_factor)
        self.selection = selection
        self.startup_trials = int(startup_trials)
        self.time_attr = time_attr
        self.rungs: dict[int, dict[str, list[float]]] = {m: {} for m in milestones(grace_period, reduction_factor,
                                                                                      epochs)}
        self.num_stopped = 0

    def _values(self, result: Mapping[str, Any]) -> list[float]:
        out = []
        for name in self.objectives:
            v = result.get(name)
            out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan)
        return out

    def decide(self, trial_id: str, result: Mapping[str, Any]) -> str:
        """CONTINUE or STOP for one report (the logic of :meth:`on_trial_result`, without Ray's objects)."""
        if result.get("final", False) or self.time_attr not in result:
            return TrialScheduler.CONTINUE
        epoch = int(result[self.time_attr])
        recorded = self.rungs.get(epoch)
        if recorded is None or trial_id in recorded:
            return TrialScheduler.CONTINUE
        values = self._values(result)
        go_on = len(recorded) < self.startup_trials or promotes(
            list(recorded.values()), values, self.directions, self.reduction_factor, self.selection)
        recorded[trial_id] = values
        if not go_on:
            self.num_stopped += 1
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self.decide(trial.trial_id, result)

    def debug_string(self) -> str:
        sizes = ", ".join(f"epoch {m}: {len(r)}" for m, r in self.rungs.items())
        return (f"MO-ASHA ({self.selection}, eta {self.reduction_factor:g}, startup {self.startup_trials}): "
                f"stopped {self.num_stopped}; rungs {sizes}")
