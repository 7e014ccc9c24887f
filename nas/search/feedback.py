"""What the sampler learns from trials that were not trained to completion.

A study stores the truth: a genome over a constraint is PRUNED (``infeasible``, never trained), a
trial a scheduler stopped early is PRUNED with the epoch it reached, a candidate a zero-cost proxy
screened out is PRUNED (``prescreened``). Optuna's samplers learn from COMPLETE trials only, so left
alone they learn nothing from these: NSGA-II's generations fill with COMPLETE trials only (its random
first generation swallows most of a short study when many samples are infeasible), and under an
early-stopping scheduler every stopped trial is invisible, so the search degrades to random sampling.

Such a trial therefore carries two user attributes (set where it is recorded, see
:func:`feedback_attrs`):

- ``sampler_values``: its values in the study's objective order, as the sampler should see them: the
  values reached at the last rung for an early-stopped trial; for a trial never trained, the real
  cost objectives and the worst value of each objective never measured (:func:`unmeasured_value`);
- ``sampler_violation`` (>= 0): > 0 marks it infeasible for the sampler (Deb's constrained
  domination in NSGA-II, the feasibility model of constrained TPE and GP).

:class:`FeedbackSampler` wraps the study's sampler and shows it a view of the study in which those
trials are COMPLETE with ``sampler_values`` and with ``sampler_violation`` as their constraint value
(Optuna 5 samplers read constraints from the trials themselves; its ``constraints_func`` is
deprecated), and every really COMPLETE trial has constraint 0. Nothing is written back: the storage, and everything that analyses it (fronts,
hypervolume, status, export), keeps the PRUNED states.
"""
from __future__ import annotations

import copy
import math
import threading
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "SAMPLER_VALUES",
    "SAMPLER_VIOLATION",
    "UNMEASURED_LOSS",
    "FeedbackSampler",
    "constraint_violation",
    "feedback_attrs",
    "feedback_view",
    "read_violation",
    "unmeasured_value",
]

SAMPLER_VALUES = "sampler_values"
SAMPLER_VIOLATION = "sampler_violation"
UNMEASURED_LOSS = 1.0e6  # a never-measured loss when the study has measured none yet: worse than any real one
_CONSTRAINTS_KEY = "constraints"  # Optuna's system attribute for constraint values (list format)


# -- the attributes -------------------------------------------------------------------------------
def constraint_violation(measured: Mapping[str, float], limits: Mapping[str, float]) -> float:
    """The largest relative excess over a violated upper bound: ``max((value - limit) / limit)``, or 0.

    Relative, so that a FLOPs limit and a params limit weigh alike; 0.3 means 30% over the limit that
    is exceeded most. Constraint limits are positive (the study config requires it).
    """
    excess = [(float(measured[k]) - float(limit)) / float(limit) for k, limit in limits.items()
              if k in measured and measured[k] is not None and float(measured[k]) > float(limit)]
    return max(excess, default=0.0)


def unmeasured_value(name: str, direction: str, study: optuna.Study | None = None,
                     objectives: Sequence[str] = ()) -> float:
    """The worst value of an objective a trial never measured (it was never trained).

    An accuracy: 0 (maximised) or 1 (minimised). Anything else (a loss, a proxy score): the worst finite
    value the study has seen for it among its COMPLETE trials and the other trials' ``sampler_values``
    (``objectives`` gives the study's objective order), else :data:`UNMEASURED_LOSS` in its bad direction.
    """
    maximize = direction == "maximize"
    if name.endswith("_acc"):
        return 0.0 if maximize else 1.0
    seen: list[float] = []
    if study is not None and name in objectives:
        i = list(objectives).index(name)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            vals = t.values if t.state == TrialState.COMPLETE else t.user_attrs.get(SAMPLER_VALUES)
            if vals is not None and len(vals) > i and isinstance(vals[i], (int, float)) and math.isfinite(vals[i]):
                seen.append(float(vals[i]))
    if seen:
        return min(seen) if maximize else max(seen)
    return -UNMEASURED_LOSS if maximize else UNMEASURED_LOSS


def feedback_attrs(measured: Mapping[str, Any], objectives: Sequence[str], directions: Sequence[str],
                   violation: float = 0.0, study: optuna.Study | None = None) -> dict[str, Any]:
    """``sampler_values`` and ``sampler_violation`` for a trial that will be stored PRUNED.

    ``measured`` holds what the trial did measure (its cost, the metrics of its last rung); any
    objective missing from it, or not a finite number, takes :func:`unmeasured_value`.
    """
    values = []
    for name, direction in zip(objectives, directions):
        v = measured.get(name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        values.append(float(v) if ok else unmeasured_value(name, direction, study, objectives))
    return {SAMPLER_VALUES: values, SAMPLER_VIOLATION: max(0.0, float(violation))}


def read_violation(trial: FrozenTrial) -> list[float]:
    """The trial's constraint values as the sampler sees them: its ``sampler_violation`` (0 when absent)."""
    return [float(trial.user_attrs.get(SAMPLER_VIOLATION, 0.0) or 0.0)]


# -- the sampler's view ---------------------------------------------------------------------------
def _as_seen(trial: FrozenTrial, n_objectives: int) -> FrozenTrial:
    """A PRUNED trial with usable ``sampler_values`` as a COMPLETE one, with its violation as its constraint.

    A COMPLETE trial gets constraint 0 (feasible) when it has none, so that every trial the sampler
    sees carries the same constraints (Optuna's GP sampler requires it). Any other trial is unchanged.
    """
    values: Any = trial.values
    if trial.state == TrialState.PRUNED:
        values = trial.user_attrs.get(SAMPLER_VALUES)
        if (not isinstance(values, (list, tuple)) or len(values) != n_objectives
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
            return trial
    elif trial.state != TrialState.COMPLETE or trial.system_attrs.get(_CONSTRAINTS_KEY) is not None:
        return trial
    system_attrs = dict(trial.system_attrs)
    system_attrs[_CONSTRAINTS_KEY] = read_violation(trial)
    return FrozenTrial(
        number=trial.number, state=TrialState.COMPLETE, value=None, values=[float(v) for v in values],
        datetime_start=trial.datetime_start, datetime_complete=trial.datetime_complete, params=trial.params,
        distributions=trial.distributions, user_attrs=trial.user_attrs, system_attrs=system_attrs,
        intermediate_values=trial.intermediate_values, trial_id=trial._trial_id,
    )


class _FeedbackView:
    """The study as the wrapped sampler sees it: every read of trials goes through :func:`_as_seen`.

    Writes (the sampler's own system attributes, NSGA-II's generation numbers and parent caches) go to
    the real study and storage unchanged.
    """

    def __init__(self, study: optuna.Study, cache: dict[tuple[int, int], FrozenTrial] | None = None) -> None:
        self._study = study
        # Finished trials never change (Optuna refuses writes to them), so each is converted once. Rebuilt
        # on every read, an ask of TPE behind this view took 125 ms at 3,000 trials against TPE's own
        # 49 ms; cached, the two are within noise (benchmarks/study_overhead.py).
        self._cache = {} if cache is None else cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        n = len(self._study.directions)
        study_id = self._study._study_id
        seen = []
        for t in self._study._get_trials(deepcopy=False, states=None, use_cache=use_cache):
            if not t.state.is_finished():
                seen.append(_as_seen(t, n))
                continue
            key = (study_id, t._trial_id)
            if key not in self._cache:
                self._cache[key] = _as_seen(t, n)
            seen.append(self._cache[key])
        if states is not None:
            seen = [t for t in seen if t.state in states]
        return copy.deepcopy(seen) if deepcopy else seen

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def feedback_view(study: optuna.Study) -> Any:
    """The study as a sampler wrapped by :class:`FeedbackSampler` sees it (for inspection and tests)."""
    return _FeedbackView(study)


_RLOCK = type(threading.RLock())
_LOCK_TYPES = (type(threading.Lock()), _RLOCK)


@dataclass(frozen=True)
class _Lock:
    """A thread lock in a pickled sampler: recreated, unlocked, when the sampler is unpickled."""

    reentrant: bool


class FeedbackSampler(BaseSampler):
    """Wraps a sampler so that it learns from PRUNED trials that carry ``sampler_values``;
    infeasible and prescreened ones (``sampler_violation`` > 0) rank below every feasible trial."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self._seen: dict[tuple[int, int], FrozenTrial] = {}  # finished trials as the inner sampler sees them

    def _view(self, study: optuna.Study) -> "_FeedbackView":
        return _FeedbackView(study, self._seen)

    # Ray Tune pickles the searcher that holds this sampler; Optuna's NSGA-II sampler keeps a thread lock,
    # which cannot be pickled: it travels as a marker and a fresh lock takes its place.
    def __getstate__(self) -> dict[str, Any]:
        inner = copy.copy(self.inner)
        for name, value in vars(inner).items():
            if isinstance(value, _LOCK_TYPES):
                setattr(inner, name, _Lock(isinstance(value, _RLOCK)))
        return {**self.__dict__, "inner": inner}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name, value in vars(self.inner).items():
            if isinstance(value, _Lock):
                setattr(self.inner, name, threading.RLock() if value.reentrant else threading.Lock())

    def __str__(self) -> str:
        return f"FeedbackSampler({self.inner})"

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(self._view(study), trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(self._view(study), trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(self._view(study), trial, state, values)


def with_feedback(attrs: Mapping[str, Any], state: TrialState, objectives: Sequence[str],
                  directions: Sequence[str], study: optuna.Study | None = None) -> dict[str, Any]:
    """``attrs`` of a trial about to be stored, plus its feedback attributes when it ends PRUNED untrained
    or early-stopped (attributes already there, e.g. set by pre-screening, are kept).

    Early-stopped (``status: pruned``): the metrics of its last report (cost objectives are real),
    feasible. Infeasible: its cost, the worst value of every objective it never measured, and the
    ``sampler_violation`` the trial computed against the study's limits (1.0 when it gave none).
    """
    out = dict(attrs)
    if state != TrialState.PRUNED or SAMPLER_VALUES in out:
        return out
    status = out.get("status")
    if status == "pruned":
        out.update(feedback_attrs(out, objectives, directions, 0.0, study))
    elif status == "infeasible":
        measured = {k: v for k, v in out.items() if not _is_training_metric(k)}
        out.update(feedback_attrs(measured, objectives, directions, out.get(SAMPLER_VIOLATION) or 1.0, study))
    return out


def _is_training_metric(name: str) -> bool:
    """Metrics only a training measures: an infeasible trial's record must not lend them to the sampler."""
    return name.split("_")[0] in ("val", "train")
