"""What n_trials counts: architectures trained or stopped; copies and infeasible trials are free."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from nas.search.budget import counts, describe_outcomes, outcome_counts, outcome_of, sample_cap, spent
from nas.search.runner import run_study
from test_study import TINY_SPACE, make_config, trials


def _trial(state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    values = [0.5, 1.0] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, params={"x": 0.1}, distributions={"x": FloatDistribution(0, 1)},
                        user_attrs=attrs)


CASES = [  # (state, attrs, outcome, counts under "trainings", counts under "trials")
    (TrialState.COMPLETE, {"status": "complete"}, "trained", True, True),
    (TrialState.PRUNED, {"status": "pruned", "epoch_reached": 1}, "stopped", True, True),
    (TrialState.FAIL, {"status": "failed"}, "failed", True, True),
    (TrialState.COMPLETE, {"status": "reused", "reused_from": 0}, "reused", False, True),
    (TrialState.PRUNED, {"status": "pruned", "reused_from": 1}, "reused", False, True),  # copy of a stopped one
    (TrialState.FAIL, {"status": "reused_failure", "reused_from": 2}, "reused", False, True),
    (TrialState.PRUNED, {"status": "infeasible", "infeasible": True}, "infeasible", False, True),
    (TrialState.PRUNED, {"status": "too_large"}, "infeasible", False, True),
    (TrialState.PRUNED, {"status": "prescreened"}, None, False, False),
    (TrialState.COMPLETE, {"status": "complete", "scored_by": "supernet"}, "scored", True, True),  # one-shot
]


@pytest.mark.parametrize("state, attrs, outcome, trainings, every", CASES)
def test_each_ending_is_named_and_counted(state: TrialState, attrs: dict, outcome: str | None, trainings: bool,
                                          every: bool) -> None:
    t = _trial(state, **attrs)
    assert outcome_of(t) == outcome
    assert counts(t, "trainings") is trainings
    assert counts(t, "trials") is every


def test_spent_and_the_status_words() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for state, attrs, *_ in CASES:
        study.add_trial(_trial(state, **attrs))
    assert spent(study) == 4 and spent(study, "trials") == 9
    got = outcome_counts(study.get_trials())
    assert got == {"trained": 1, "stopped": 1, "failed": 1, "scored": 1, "reused": 3, "infeasible": 2}
    assert describe_outcomes(got) == "trained 1, stopped 1, failed 1, scored 1, reused 3, infeasible 2"
    multi_trial = {**got, "scored": 0}  # a multi-trial study never says "scored"; a one-shot one never "trained"
    assert describe_outcomes(multi_trial) == "trained 1, stopped 1, failed 1, reused 3, infeasible 2"
    one_shot = {**got, "trained": 0, "stopped": 0}
    assert describe_outcomes(one_shot) == "failed 1, scored 1, reused 3, infeasible 2"
    assert sample_cap(24) == 240 and sample_cap(24, "trials") == 24


def test_copies_do_not_use_up_the_budget(tmp_path: Path, ray_session: None) -> None:
    """Two architectures in all, n_trials 2: both are trained, whatever the sampler repeats."""
    space = {**TINY_SPACE, "stage": {"mixer": {"choices": ["shift", "conv"]}, "depth": 1, "dim": 16, "mlp_ratio": 2}}
    config, _ = make_config(tmp_path, space=space, n_trials=2, max_concurrent=2, seed=3)
    out = tmp_path / "run"
    summary = run_study(config, out, quiet=True, dry_run=True)
    got = trials(out, config)
    trained = [t for t in got if outcome_of(t) == "trained"]
    assert len({t.user_attrs["key"] for t in trained}) == len(trained) == 2
    copies = [t for t in got if outcome_of(t) == "reused"]
    assert summary["outcomes"]["reused"] == len(copies) == len(got) - 2
    for t in copies:  # settled by the searcher, never trained
        assert t.user_attrs["reused_from"] in {o.number for o in trained}
        assert "history" not in t.user_attrs


def test_a_space_of_one_architecture_stops_at_the_sample_cap(tmp_path: Path, ray_session: None) -> None:
    space = {**TINY_SPACE, "stage": {"mixer": "shift", "depth": 1, "dim": 16, "mlp_ratio": 2}}
    config, _ = make_config(tmp_path, space=space, n_trials=2, max_concurrent=2)
    out = tmp_path / "run"
    summary = run_study(config, out, quiet=True, dry_run=True)
    assert summary["outcomes"]["trained"] == 1
    assert summary["outcomes"]["reused"] == sample_cap(2) - 1 == len(trials(out, config)) - 1


def test_the_counting_is_a_checked_config_field(tmp_path: Path) -> None:
    from nas.errors import ConfigError
    from nas.search.config import StudyConfig

    config, _ = make_config(tmp_path)
    assert config.n_trials_counts == "trainings"  # the default a user expects
    assert StudyConfig.from_dict(config.to_dict(), base_dir=tmp_path) == config
    with pytest.raises(ConfigError, match="n_trials_counts must be one of trainings, trials; got 'copies'"):
        make_config(tmp_path, n_trials_counts="copies")
