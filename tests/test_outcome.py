"""A study whose every trial failed, or an ablation whose every cell failed, ends non-zero in one line."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nas.search.outcome import NothingSucceeded, check_cells_outcome, check_study_outcome

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(states: list[TrialState]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for i, state in enumerate(states):
        trial = study.ask()
        if state == TrialState.FAIL:
            trial.set_user_attr("error", "DataError: labels out of range" if i % 3 else "TrainingDiverged: loss nan")
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    return study


def test_every_trial_failed_is_an_error_quoting_the_commonest_cause() -> None:
    with pytest.raises(NothingSucceeded, match=r"^study runs/s: all 5 finished trial\(s\) failed, so it has no result; "
                                               r"the commonest error: 'DataError: labels out of range' \(3 times\); "
                                               r"if the budget or data caused it, start a new study with --out NEW_DIR, "
                                               r"else fix the cause and run `nas study resume runs/s --set "
                                               r"retry_failed=true`$"):
        check_study_outcome(_study([TrialState.FAIL] * 5), "runs/s")


@pytest.mark.parametrize("states", [[], [TrialState.FAIL, TrialState.COMPLETE], [TrialState.PRUNED, TrialState.FAIL]])
def test_a_study_with_any_result_or_none_finished_passes(states: list[TrialState]) -> None:
    check_study_outcome(_study(states), "runs/s")


def test_an_ablation_whose_every_cell_diverged_says_so() -> None:
    cells = [{"status": "failed", "error": "TrainingDiverged: the training loss is nan at epoch 1"}] * 4
    with pytest.raises(NothingSucceeded, match=r"^ablation 'a': all 4 cell\(s\) failed \(4 diverged\), so the table has "
                                               r"no result; .*\(4 times\); a changed budget or data needs a new --out; "
                                               r"for a cause outside the config, fix it and rerun with `nas ablate "
                                               r"a\.yaml --retry-failed`$"):
        check_cells_outcome(cells, "ablation 'a'", "`nas ablate a.yaml --retry-failed`")
    check_cells_outcome([*cells, {"status": "complete"}], "ablation 'a'", "")
    check_cells_outcome([], "ablation 'a'", "")
