"""Optuna's search driving Ray Tune, with trial outcomes recorded truthfully.

Ray's ``OptunaSearch`` tells Optuna COMPLETE for any trial that reported a value, including one an
early-stopping scheduler cut short; :class:`StudySearcher` records such a trial PRUNED (with the
epoch reached), a failed one FAIL (with its error), an infeasible one PRUNED (``infeasible``), and
only a trial that ran its whole budget COMPLETE. It also stores the trial's genome, cost, metrics
and provenance as user attributes, and hands an already-trained architecture its earlier result.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from nas.search.feedback import with_feedback
from nas.search.records import PROXY_KEYS, classify_result

__all__ = ["StudySearcher"]


class StudySearcher(OptunaSearch):
    def __init__(
        self,
        *,
        suggest_genome: Callable[[Any], dict[str, Any]],
        objectives: list[str],
        directions: list[str],
        study_name: str,
        storage: optuna.storages.BaseStorage,
        sampler: optuna.samplers.BaseSampler,
        on_complete: Callable[[optuna.trial.FrozenTrial], None] | None = None,
        prescreen: Any = None,
    ) -> None:
        self._suggest_genome = suggest_genome
        self._prescreen = prescreen  # a nas.search.prescreen.Prescreener: picks each slot's trial among several
        self._objectives = list(objectives)
        self._directions = list(directions)
        self._on_complete = on_complete
        self._known: dict[str, dict[str, Any]] = {}  # genome key -> earlier COMPLETE result
        self._in_flight: set[str] = set()  # genome keys some trial is training right now
        self._pending: dict[str, list[str]] = {}  # genome key -> trials waiting for that training
        self._finished: dict[str, optuna.trial.FrozenTrial] = {}  # genome key -> trial that trained it here
        super().__init__(
            space=self._define_by_run,
            metric=list(objectives),
            mode=["max" if d == "maximize" else "min" for d in directions],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )
        for trial in self._ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._remember(trial)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def _remember(self, trial: optuna.trial.FrozenTrial) -> None:
        key = trial.user_attrs.get("key")
        if key and key not in self._known and trial.user_attrs.get("status") != "reused":
            keep = ("val_acc", "val_loss", "train_acc", "train_loss", "img_per_s", "epochs", "epoch", "elapsed_s",
                    "params", "flops", "flops_unit", "latency_ms", "history", "device", "checkpoint",
                    *PROXY_KEYS)
            self._known[key] = {k: trial.user_attrs[k] for k in keep if k in trial.user_attrs} | {"number": trial.number}

    def suggest(self, trial_id: str) -> dict | None:
        if self._prescreen is not None and trial_id not in self._ot_trials:
            # The screened trial's parameters are set; Ray's define-by-run pass below replays them.
            self._ot_trials[trial_id] = self._prescreen.pick(self._ot_study, self._suggest_genome)
        return super().suggest(trial_id)

    def _define_by_run(self, trial: Any) -> dict[str, Any]:
        genome = self._suggest_genome(trial)  # canonical genome document
        from nas.genome import parse_genome

        key = parse_genome(genome).key
        trial.set_user_attr("genome", genome)
        trial.set_user_attr("key", key)
        if key in self._known:
            return {"genome": genome, "key": key, "reuse": self._known[key]}
        if key in self._in_flight:  # being trained right now: wait for that result instead
            return {"genome": genome, "key": key, "reuse": None, "duplicate_of_running": True}
        self._in_flight.add(key)  # claimed: later samples of this key wait for its result
        return {"genome": genome, "key": key, "reuse": None}

    def save(self, checkpoint_path: str) -> None:
        """The Optuna storage is the study's checkpoint; Ray's pickle of the searcher is not needed."""
        with open(checkpoint_path, "wb") as fh:
            fh.write(b"")

    def restore(self, checkpoint_path: str) -> None:
        return  # resuming reads the Optuna storage (see nas.search.runner.run_study)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return  # multi-objective: Optuna takes no intermediate values

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if result:  # Ray flattens nested dicts ("versions/torch"); store them as they were reported
            from ray.tune.utils.util import unflatten_dict

            result = unflatten_dict(result)
        key = (result or {}).get("key") or self._ot_trials[trial_id].user_attrs.get("key")
        if (result or {}).get("status") == "duplicate" and not error:
            if key in self._finished:  # the original finished first: share its outcome now
                self._tell(trial_id, _copy_outcome(self._finished[key]))
            else:  # told when the original finishes
                self._pending.setdefault(key, []).append(trial_id)
            return
        frozen = self._tell(trial_id, classify_result(result, error, self._objectives))
        if key in self._in_flight:  # this trial was the one training ``key``
            self._in_flight.discard(key)
            self._finished[key] = frozen
            for waiting in self._pending.pop(key, []):  # duplicates share the original's outcome
                self._tell(waiting, _copy_outcome(frozen))

    def _tell(self, trial_id: str, outcome: Any) -> optuna.trial.FrozenTrial:
        ot_trial = self._ot_trials[trial_id]
        attrs = with_feedback(outcome.attrs, outcome.state, self._objectives, self._directions, self._ot_study)
        for name, value in attrs.items():
            ot_trial.set_user_attr(name, value)
        self._ot_study.tell(ot_trial, outcome.values, state=outcome.state)
        self._completed_trials.add(trial_id)
        frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
        if outcome.state == TrialState.COMPLETE:
            self._remember(frozen)
        if self._on_complete is not None:
            self._on_complete(frozen)
        return frozen


def _copy_outcome(original: optuna.trial.FrozenTrial) -> Any:
    """The outcome of a trial that waited for an identical architecture trained concurrently."""
    from nas.search.records import Outcome

    attrs = {k: v for k, v in original.user_attrs.items() if k not in ("genome", "key")}
    attrs["reused_from"] = original.number
    attrs["status"] = "reused" if original.state == TrialState.COMPLETE else attrs.get("status", "failed")
    values = list(original.values) if original.values is not None else None
    return Outcome(original.state, values, attrs)
