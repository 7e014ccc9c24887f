"""What ``n_trials`` counts, and how a study's trials ended, in words a user reads.

By default (``n_trials_counts: trainings``) ``n_trials`` is the number of architectures the study
trains: a trial counts when it trained, whether to the end (``trained``), until an early-stopping
scheduler stopped it (``stopped``) or until it failed (``failed``). A trial that only repeats an
architecture the study already has (``reused``: its earlier outcome is copied, nothing is trained),
one over a constraint (``infeasible``: its cost is known before training) and a candidate that
pre-screening left out do not use up the budget, so a sampler that proposes the same network twice
does not shrink the search. ``n_trials_counts: trials`` counts every finished trial instead (every
Optuna trial but pre-screened candidates), the older reading.

So that a sampler that only proposes copies (or a space where nearly everything is over the limit)
cannot run forever, a study samples at most :func:`sample_cap` trials in all.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - the study config imports this module; it stays free of Optuna
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["COUNTINGS", "OUTCOMES", "counts", "is_copy", "outcome_of", "outcome_counts", "spent", "sample_cap",
           "sampled", "describe_outcomes", "budget_note", "config_counting"]

COUNTINGS = ("trainings", "trials")
OUTCOMES = ("trained", "stopped", "failed", "scored", "reused", "infeasible")  # in the order a status line shows them
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")  # TrialState names
_UNTRAINED = ("infeasible", "too_large")
CAP_FACTOR = 10  # samples per counted trial at most: copies and infeasible ones included


def is_copy(trial: "FrozenTrial") -> bool:
    """A trial that repeats an architecture the study trained (or is training): its outcome is a copy."""
    return trial.user_attrs.get("reused_from") is not None or trial.user_attrs.get("status") in (
        "reused", "reused_failure")


def outcome_of(trial: "FrozenTrial") -> str | None:
    """One of :data:`OUTCOMES` for a finished trial; None for one still running or waiting, and for a
    candidate pre-screening left out (never a trial of the study's budget)."""
    status = trial.user_attrs.get("status")
    if trial.state.name not in _FINISHED or status == "prescreened":
        return None
    if is_copy(trial):
        return "reused"
    if status in _UNTRAINED or trial.user_attrs.get("infeasible"):
        return "infeasible"
    if trial.state.name == "FAIL":
        return "failed"
    if trial.user_attrs.get("scored_by") == "supernet":
        return "scored"  # a one-shot study's: inherited weights, nothing trained for it
    return "trained" if trial.state.name == "COMPLETE" else "stopped"


def counts(trial: "FrozenTrial", counting: str = "trainings", requeued: Iterable[int] = ()) -> bool:
    """Whether a finished ``trial`` uses up one of ``n_trials``. A stale trial of a dead driver that
    was queued again never counts (its copy, whose ``retry_history`` names it, does)."""
    outcome = outcome_of(trial)
    if outcome is None or (trial.state.name == "FAIL" and trial.number in requeued):
        return False
    return counting == "trials" or outcome in ("trained", "stopped", "failed", "scored")


def spent(study: "optuna.Study", counting: str = "trainings") -> int:
    """Trials of ``study`` that use up ``n_trials`` under ``counting``."""
    trials = study.get_trials(deepcopy=False)
    requeued = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return sum(counts(t, counting, requeued) for t in trials)


def sampled(study: "optuna.Study") -> int:
    """Trials the study has sampled, finished or not (pre-screened candidates aside)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") != "prescreened")


def sample_cap(n_trials: int, counting: str = "trainings") -> int:
    """The most trials a study of ``n_trials`` samples; under ``trials`` counting, ``n_trials`` itself."""
    return n_trials if counting == "trials" else CAP_FACTOR * n_trials


def outcome_counts(trials: "Iterable[FrozenTrial]") -> dict[str, int]:
    """How many finished trials ended each way (:data:`OUTCOMES`)."""
    out = dict.fromkeys(OUTCOMES, 0)
    for t in trials:
        outcome = outcome_of(t)
        if outcome is not None:
            out[outcome] += 1
    return out


def describe_outcomes(counted: dict[str, int]) -> str:
    """``trained 18, stopped 6, failed 0, reused 3, infeasible 4``: the words of the status lines.
    A one-shot study's (its trials ``scored`` with inherited weights) reads ``scored 81, failed 0, ...``:
    nothing was trained or stopped for it, and a multi-trial study never shows ``scored``."""
    one_shot = counted.get("scored", 0) > 0
    hidden = ("trained", "stopped") if one_shot else ("scored",)
    return ", ".join(f"{k} {counted.get(k, 0)}" for k in OUTCOMES if k not in hidden or counted.get(k, 0))


def budget_note(counting: str, one_shot: bool = False) -> str:
    """What ``n_trials`` counted, for the status line."""
    if one_shot:
        counted = ("every trial, reused and infeasible ones included" if counting == "trials" else
                   "scored architectures; reused and infeasible ones are free")
        return ("one-shot: every architecture scored with weights inherited from the supernet, none trained "
                f"for itself; n_trials counts {counted}")
    if counting == "trials":
        return "every finished trial counts toward n_trials"
    return "n_trials counts trained, stopped and failed architectures; reused and infeasible ones are free"


def config_counting(config: Any) -> str:
    """The study's ``n_trials_counts`` (``trainings`` for configs written before the field existed)."""
    return getattr(config, "n_trials_counts", "trainings")
