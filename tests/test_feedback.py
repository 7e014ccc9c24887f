"""Trials stored PRUNED (infeasible, early-stopped, prescreened) still inform the sampler."""
from __future__ import annotations

import optuna
import pytest
from optuna.samplers import NSGAIISampler, TPESampler
from optuna.trial import TrialState, create_trial

from nas.search.feedback import (
    SAMPLER_VALUES,
    SAMPLER_VIOLATION,
    UNMEASURED_LOSS,
    FeedbackSampler,
    constraint_violation,
    feedback_view,
    read_violation,
    with_feedback,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
GENERATION = "NSGAIISampler:generation"


def test_constraint_violation_is_the_largest_relative_excess() -> None:
    assert constraint_violation({"flops": 6e6}, {"flops": 5e6}) == pytest.approx(0.2)
    assert constraint_violation({"flops": 4e6}, {"flops": 5e6}) == 0.0
    assert constraint_violation({"flops": 6e6, "params": 3e5}, {"flops": 5e6, "params": 1e5}) == pytest.approx(2.0)


def test_early_stopped_trials_carry_their_last_rung_values() -> None:
    attrs = {"status": "pruned", "epoch_reached": 1, "val_acc": 0.42, "flops": 1.5e6}
    out = with_feedback(attrs, TrialState.PRUNED, ["val_acc", "flops"], ["maximize", "minimize"])
    assert out[SAMPLER_VALUES] == [0.42, 1.5e6] and out[SAMPLER_VIOLATION] == 0.0
    assert out["status"] == "pruned" and attrs.get(SAMPLER_VALUES) is None  # a copy


def test_infeasible_trials_get_real_cost_and_the_worst_unmeasured_values() -> None:
    objectives, directions = ["val_acc", "flops", "val_loss"], ["maximize", "minimize", "minimize"]
    attrs = {"status": "infeasible", "flops": 6e6, "params": 9e4, SAMPLER_VIOLATION: 0.2}
    alone = with_feedback(attrs, TrialState.PRUNED, objectives, directions)
    assert alone[SAMPLER_VALUES] == [0.0, 6e6, UNMEASURED_LOSS] and alone[SAMPLER_VIOLATION] == 0.2
    study = optuna.create_study(directions=directions)
    study.add_trial(create_trial(values=[0.8, 1e6, 1.5]))
    study.add_trial(create_trial(values=[0.7, 2e6, 2.5]))
    seen = with_feedback(attrs, TrialState.PRUNED, objectives, directions, study)
    assert seen[SAMPLER_VALUES] == [0.0, 6e6, 2.5]  # the largest loss the study has measured
    no_limit_given = with_feedback({"status": "infeasible", "flops": 6e6}, TrialState.PRUNED, objectives, directions)
    assert no_limit_given[SAMPLER_VIOLATION] == 1.0


def test_complete_failed_and_already_annotated_trials_are_left_alone() -> None:
    objectives, directions = ["val_acc", "flops"], ["maximize", "minimize"]
    assert with_feedback({"status": "complete"}, TrialState.COMPLETE, objectives, directions) == {"status": "complete"}
    assert SAMPLER_VALUES not in with_feedback({"status": "failed"}, TrialState.FAIL, objectives, directions)
    preset = {"status": "prescreened", SAMPLER_VALUES: [0.0, 1e6], SAMPLER_VIOLATION: 1.0}
    assert with_feedback(preset, TrialState.PRUNED, objectives, directions) == preset


def test_the_sampler_sees_annotated_pruned_trials_as_complete_and_the_storage_does_not() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(values=[0.9, 1e6], user_attrs={"status": "complete"}))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "status": "infeasible", SAMPLER_VALUES: [0.0, 6e6], SAMPLER_VIOLATION: 0.2}))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"status": "pruned"}))  # no values: unseen
    seen = feedback_view(study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.number for t in seen] == [0, 1]
    assert seen[1].values == [0.0, 6e6] and seen[1].constraints == {"0": 0.2}
    assert seen[0].values == [0.9, 1e6] and seen[0].constraints == {"0": 0.0}
    assert read_violation(seen[1]) == [0.2] and read_violation(seen[0]) == [0.0]
    stored = study.get_trials(deepcopy=False)
    assert [t.state for t in stored] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert stored[1].values is None and len(study.best_trials) == 1


def _run(sampler: optuna.samplers.BaseSampler, n: int) -> optuna.Study:
    """Half the space is infeasible (x > 0.5), recorded PRUNED with feedback as a study records it."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for _ in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        if x > 0.5:
            attrs = with_feedback({"status": "infeasible", "flops": x * 1e7, SAMPLER_VIOLATION: (x - 0.5) / 0.5},
                                  TrialState.PRUNED, ["val_acc", "flops"], ["maximize", "minimize"], study)
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, [x, x * 1e7])
    return study


def test_nsga2_generations_fill_with_infeasible_trials() -> None:
    plain = _run(NSGAIISampler(population_size=4, seed=1), 12)
    fed = _run(FeedbackSampler(NSGAIISampler(population_size=4, seed=1)), 12)
    gens = [t.system_attrs[GENERATION] for t in fed.trials]
    assert gens == [0] * 4 + [1] * 4 + [2] * 4  # every trial counts towards its generation
    assert any(t.state == TrialState.PRUNED for t in fed.trials[:4])
    plain_gen0 = sum(1 for t in plain.trials if t.system_attrs[GENERATION] == 0)
    assert plain_gen0 > 4  # without feedback the infeasible samples never fill generation 0


def test_constrained_tpe_runs_on_the_view() -> None:
    study = _run(FeedbackSampler(TPESampler(seed=0, n_startup_trials=4)), 10)
    assert len(study.trials) == 10
    seen = feedback_view(study).get_trials(states=(TrialState.COMPLETE,))
    assert len(seen) == 10 and all(len(t.constraints) == 1 for t in seen)


def test_the_view_converts_each_finished_trial_once_and_never_caches_a_running_one() -> None:
    sampler = FeedbackSampler(TPESampler(seed=0))
    study = _run(sampler, 6)
    view = sampler._view(study)
    first, again = view.get_trials(deepcopy=False), view.get_trials(deepcopy=False)
    assert len(first) == 6 and all(a is b for a, b in zip(first, again))  # cached: the same objects
    copies = view.get_trials(deepcopy=True)
    assert all(c is not a and c.values == a.values for c, a in zip(copies, first))
    running = study.ask()
    running.suggest_float("x", 0.0, 1.0)
    assert view.get_trials(deepcopy=False)[-1].state == TrialState.RUNNING
    study.tell(running, [0.1, 1e6])
    last = view.get_trials(deepcopy=False)[-1]  # read again once finished: now its final record
    assert last.state == TrialState.COMPLETE and last.values == [0.1, 1e6]


def test_a_wrapped_sampler_with_a_thread_lock_pickles_as_ray_tune_needs() -> None:
    import pickle
    import threading

    import optuna

    from nas.search.feedback import FeedbackSampler

    sampler = FeedbackSampler(optuna.samplers.NSGAIISampler(seed=0, population_size=4))
    sampler.inner._probe_lock = threading.Lock()  # whatever lock the inner sampler holds
    copy = pickle.loads(pickle.dumps(sampler))
    assert type(copy.inner._probe_lock) is type(threading.Lock()) and copy.inner._probe_lock is not sampler.inner._probe_lock
    assert sampler.inner._probe_lock.acquire(blocking=False)  # the original keeps its own lock
