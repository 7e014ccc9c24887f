"""Optuna's search driving Ray Tune, with trial outcomes recorded truthfully.

Ray's ``OptunaSearch`` tells Optuna COMPLETE for any trial that reported a value, including one an
early-stopping scheduler cut short; :class:`StudySearcher` records such a trial PRUNED (with the
epoch reached), a failed one FAIL (with its error), an infeasible one PRUNED (``infeasible``), and
only a trial that ran its whole budget COMPLETE. It also stores the trial's genome, cost, metrics
and provenance as user attributes, and hands an already-trained architecture its earlier result.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from nas.search.feedback import with_feedback
from nas.search.records import PROXY_KEYS, classify_result

__all__ = ["StudySearcher"]

_DRIVER = f"{socket.gethostname()}:{os.getpid()}"


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
        claims: Any = None,
        n_trials: int | None = None,
        retry_failed: bool = False,
        counting: str = "trainings",
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
        self._claims = claims  # nas.search.claims.KeyClaims: study-wide key claims (None: this driver only)
        self._n_trials, self._retry_failed = n_trials, retry_failed
        self._counting = counting  # what n_trials counts (nas.search.budget)
        self._parked: set[int] = set()  # Optuna ids of copies waiting here for a running original's outcome
        self._copies = 0  # copies told or parked without a Ray trial (nas.search.budget)
        self.first_result: dict[str, float] | None = None  # the first full result's start-up marks (--profile)
        self._owned: set[int] = set()  # Optuna trial ids asked here and not yet told: this driver's heartbeats
        self._remote: dict[str, list[str]] = {}  # genome key -> trials waiting for another driver's training
        self._checkpoints: dict[str, str] = {}  # Ray trial id -> where Ray Tune persisted its checkpoint
        self._last_poll = 0.0
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
            self._known[key] = _reusable(trial)

    def owned(self) -> set[int]:
        """Optuna trial ids this driver asked and has not told yet (it beats for them)."""
        return set(self._owned)

    @property
    def waiting_on_others(self) -> int:
        return sum(len(v) for v in self._remote.values())

    def _define_by_run(self, trial: Any) -> dict[str, Any]:
        genome = self._suggest_genome(trial)  # canonical genome document
        from nas.genome import parse_genome

        key = parse_genome(genome).key
        trial.set_user_attr("genome", genome)
        trial.set_user_attr("key", key)
        trial.set_user_attr("driver", _DRIVER)  # host:pid of the driver that asked it (several may share a study)
        self._owned.add(trial._trial_id)
        from nas.search.heartbeat import beat

        beat(self._ot_study, [trial._trial_id])  # from now on a dead driver's trial is found stale
        if key in self._known:
            return {"genome": genome, "key": key, "reuse": self._known[key]}
        if key in self._in_flight:  # being trained right now: wait for that result instead
            return {"genome": genome, "key": key, "reuse": None, "duplicate_of_running": True}
        while self._claims is not None:  # study-wide: one trial per key across every driver
            held = self._claims.claim(key, trial._trial_id)
            if held.trial_id == trial._trial_id:
                break
            owner = self._ot_study._storage.get_trial(held.trial_id)
            if owner.state == TrialState.COMPLETE:
                self._remember(owner)
                return {"genome": genome, "key": key, "reuse": _reusable(owner)}
            failed = owner.state == TrialState.FAIL and owner.user_attrs.get("status") == "failed"
            if failed and self._retry_failed:
                if self._claims.take_over(key, held.trial_id, trial._trial_id):
                    break
                continue  # another trial took it over first: look again
            if held.state == "done" or failed:  # failed or stopped: its outcome is this key's outcome
                return {"genome": genome, "key": key, "reuse": None, "duplicate_of_running": True,
                        "outcome_of": held.trial_id}
            return {"genome": genome, "key": key, "reuse": None, "duplicate_of_running": True, "remote": True}
        self._in_flight.add(key)  # claimed: later samples of this key wait for its result
        return {"genome": genome, "key": key, "reuse": None}

    def suggest(self, trial_id: str) -> dict | None:
        """Sample the next trial while the study-wide budget allows: finished plus running trials of
        every driver stay within ``n_trials``; trials queued again (WAITING) are always taken."""
        import time
        import warnings
        from contextlib import nullcontext

        self.poll_others()
        fresh = self._n_trials is not None and trial_id not in self._ot_trials
        with self._claims.budget_lock() if fresh and self._claims is not None else nullcontext():
            verdict = self._budget_verdict() if fresh else None
            if verdict is None:
                with warnings.catch_warnings():  # the driver's own thread beats (nas.search.heartbeat)
                    warnings.filterwarnings("ignore", message="Heartbeat of storage")
                    return self._sample(trial_id)
        if verdict == self.FINISHED:
            return self.FINISHED
        time.sleep(0.2)  # the budget is held by live trials (another driver's, or one that may not count)
        return None

    def _sample(self, trial_id: str) -> dict | None:
        """A config for Ray trial ``trial_id``. A sample that repeats an architecture the study has is
        settled here without a Ray trial (its earlier outcome is copied now, or when the running
        original finishes) and the slot samples again, so copies never hold a worker or the budget."""
        while True:
            if self._prescreen is not None and trial_id not in self._ot_trials:
                # The screened trial's parameters are set; the define-by-run pass below replays them.
                self._ot_trials[trial_id] = self._prescreen.pick(self._ot_study, self._suggest_genome)
            config = super().suggest(trial_id)
            if not config or self._n_trials is None or self._capped():
                return config  # sampling is capped: a copy goes to Ray and is recorded there
            if config.get("reuse"):
                copy_id = self._detach(trial_id)
                self._tell(copy_id, _reuse_outcome(config, self._objectives))
            elif config.get("duplicate_of_running") and not config.get("remote") and config.get("outcome_of") is None:
                copy_id = self._detach(trial_id)  # told with the original (on_trial_complete)
                self._parked.add(self._ot_trials[copy_id]._trial_id)
                self._pending.setdefault(config["key"], []).append(copy_id)
            else:
                return config
            verdict = self._budget_verdict()  # under ``trials`` counting the copy used up a trial
            if verdict is not None:
                return self.FINISHED if verdict == self.FINISHED else None

    def _capped(self) -> bool:
        from nas.search.budget import sample_cap, sampled

        return sampled(self._ot_study) > sample_cap(self._n_trials, self._counting)

    def _detach(self, trial_id: str) -> str:
        """Move the Optuna trial asked for Ray trial ``trial_id`` under an id of its own (the Ray id then
        samples again); returns that id."""
        self._copies += 1
        copy_id = f"{trial_id}-copy{self._copies}"
        self._ot_trials[copy_id] = self._ot_trials.pop(trial_id)
        return copy_id

    def _budget_verdict(self) -> str | bool | None:
        """None: sample; FINISHED: the budget is spent; False: wait (trials still run that may not
        count, such as an infeasible one or another driver's that may die and be queued again)."""
        from nas.search.budget import sample_cap, sampled, spent

        trials = self._ot_study.get_trials(deepcopy=False)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = {t._trial_id for t in trials if t.state == TrialState.RUNNING} - self._parked
        if waiting:
            return None
        if sampled(self._ot_study) >= sample_cap(self._n_trials, self._counting):
            return False if running - self._owned else self.FINISHED
        done = spent(self._ot_study, self._counting)
        if done + len(running) < self._n_trials:
            return None
        if done >= self._n_trials or self._counting == "trials":
            return False if running - self._owned else self.FINISHED
        return False  # running trials may end without counting (infeasible, a copy): then sample again

    def poll_others(self, force: bool = False) -> None:
        """Tell the trials that wait for another driver's training once it is done; if that driver
        died (its claim released), queue them again so that some driver trains the key."""
        import time

        if not self._remote or (not force and time.time() - self._last_poll < 1.0):
            return
        self._last_poll = time.time()
        for key in list(self._remote):
            held = self._claims.get(key)
            if held is not None and held.state == "done":
                original = self._ot_study._storage.get_trial(held.trial_id)
                for waiting in self._remote.pop(key):
                    self._tell(waiting, _copy_outcome(original))
            elif held is None:
                from nas.search.storage import requeue_interrupted

                waiting = self._remote.pop(key)
                ids = {self._ot_trials[w]._trial_id for w in waiting}
                requeue_interrupted(self._ot_study, only=ids)
                self._owned -= ids
                self._completed_trials.update(waiting)  # done here; a driver runs them again from the queue

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
            if result.get("outcome_of") is not None:  # another driver's finished trial of this key
                self._tell(trial_id, _copy_outcome(self._ot_study._storage.get_trial(int(result["outcome_of"]))))
            elif result.get("remote"):  # told when the other driver's trial finishes (poll_others)
                self._remote.setdefault(key, []).append(trial_id)
            elif key in self._finished:  # the original finished first: share its outcome now
                self._tell(trial_id, _copy_outcome(self._finished[key]))
            else:  # told when the original finishes
                self._pending.setdefault(key, []).append(trial_id)
            return
        outcome = classify_result(result, error, self._objectives)
        if self.first_result is None and (result or {}).get("status") == "complete":
            import time

            self.first_result = {**result.get("timeline", {}), "first full result reached the driver": time.time()}
        if trial_id in self._checkpoints and outcome.attrs.get("checkpoint"):  # where Ray Tune persisted it
            name = str(outcome.attrs["checkpoint"]).replace("\\", "/").rsplit("/", 1)[-1]
            outcome.attrs["checkpoint"] = self._checkpoints[trial_id].rstrip("/") + "/" + name
        frozen = self._tell(trial_id, outcome)
        if key in self._in_flight:  # this trial was the one training ``key``
            self._in_flight.discard(key)
            self._finished[key] = frozen
            if self._claims is not None:
                self._claims.finish(key, frozen._trial_id)
            for waiting in self._pending.pop(key, []):  # duplicates share the original's outcome
                self._tell(waiting, _copy_outcome(frozen))

    def _tell(self, trial_id: str, outcome: Any) -> optuna.trial.FrozenTrial:
        ot_trial = self._ot_trials[trial_id]
        attrs = with_feedback(outcome.attrs, outcome.state, self._objectives, self._directions, self._ot_study)
        for name, value in attrs.items():
            ot_trial.set_user_attr(name, value)
        self._ot_study.tell(ot_trial, outcome.values, state=outcome.state)
        self._completed_trials.add(trial_id)
        self._owned.discard(ot_trial._trial_id)
        self._parked.discard(ot_trial._trial_id)
        frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
        if outcome.state == TrialState.COMPLETE:
            self._remember(frozen)
        if self._on_complete is not None:
            self._on_complete(frozen)
        return frozen


def _reusable(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """What a trial of an already-trained architecture reports instead of training it again."""
    keep = ("val_acc", "val_loss", "train_acc", "train_loss", "img_per_s", "epochs", "epoch", "elapsed_s",
            "params", "flops", "flops_unit", "latency_ms", "history", "device", "checkpoint", "node_id",
            *PROXY_KEYS)
    return {k: trial.user_attrs[k] for k in keep if k in trial.user_attrs} | {"number": trial.number}


def _reuse_outcome(config: dict[str, Any], objectives: list[str]) -> Any:
    """The outcome of a sample whose architecture the study trained before: the earlier result, as
    :func:`nas.search.objective.run_trial` would report it for a ``reuse`` config."""
    reuse = dict(config["reuse"])
    result = {**reuse, "key": config["key"], "status": "reused", "reused_from": reuse.get("number"), "final": True,
              "duration_s": 0.0}
    return classify_result(result, False, objectives)


def _copy_outcome(original: optuna.trial.FrozenTrial) -> Any:
    """The outcome of a trial that waited for an identical architecture trained concurrently."""
    from nas.search.records import Outcome

    attrs = {k: v for k, v in original.user_attrs.items() if k not in ("genome", "key", "driver")}
    attrs["reused_from"] = original.number
    if original.state == TrialState.COMPLETE:
        attrs["status"] = "reused"
    elif original.state == TrialState.FAIL:  # the key failed before: not retrained unless retry_failed
        attrs["status"] = "reused_failure"
    else:
        attrs["status"] = attrs.get("status", "failed")
    values = list(original.values) if original.values is not None else None
    return Outcome(original.state, values, attrs)
