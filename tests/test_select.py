"""Selection rules: each rule on a hand-made study, ties, and the messages of bad rules."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.analysis.select import RuleError, parse_rule, select
from nas.analysis.study import trials_table
from nas.errors import NasError

optuna.logging.set_verbosity(optuna.logging.WARNING)
ACC_FLOPS = {"val_acc": "maximize", "flops": "minimize"}

# A convex front (0-3) plus dominated trials, a pruned trial with a tempting val_acc and a tie.
TRIALS = [
    (0.50, 1e5, 5_000),  # 0 front, cheapest
    (0.85, 3e5, 20_000),  # 1 front: the knee
    (0.90, 1e6, 60_000),  # 2 front
    (0.92, 5e6, 90_000),  # 3 front, most accurate
    (0.80, 4e5, 30_000),  # 4 dominated by 1
    (0.40, 2e5, 8_000),  # 5 dominated by 0
    (0.92, 6e6, 95_000),  # 6 ties 3 on val_acc, more flops: max:val_acc must still pick 3
]


def make_frame(trials=TRIALS, objectives=ACC_FLOPS, pruned_acc: float | None = 0.99):
    study = optuna.create_study(directions=list(objectives.values()))
    for acc, flops, params in trials:
        attrs = {"val_acc": acc, "flops": int(flops), "params": params, "train_loss": 1.0 - acc}
        values = [attrs[k] for k in objectives]
        study.add_trial(create_trial(values=values, user_attrs=attrs))
    if pruned_acc is not None:  # stopped early: its metrics are not final and must never be picked
        study.add_trial(create_trial(state=TrialState.PRUNED,
                                     user_attrs={"val_acc": pruned_acc, "flops": 50_000, "params": 1_000}))
    return trials_table(study, list(objectives))


@pytest.fixture(scope="module")
def frame():
    return make_frame()


@pytest.mark.parametrize(("rule", "number"), [
    ("max:val_acc", 3),  # tie with 6 broken by the next objective (fewer flops)
    ("min:flops", 0),
    ("knee", 1),
    ("max:val_acc where flops<=5e5", 1),
    ("max:val_acc where flops<5e6", 2),
    ("min:flops where val_acc>=0.9", 2),
    ("min:flops where val_acc >= 0.85 and params < 50000", 1),
    ("min:params where val_acc>0.8, flops<=1e6", 1),
    ("max:train_loss", 5),  # any numeric column, not only objectives
    ("knee where flops<=1e6", 1),
    ("KNEE", 1),
])
def test_rules(frame, rule: str, number: int) -> None:
    picked = select(frame, rule, ACC_FLOPS)
    assert picked.number == number
    assert picked.record["state"] == "COMPLETE"


def test_ties_fall_back_to_the_lower_trial_number() -> None:
    frame = make_frame([(0.9, 1e6, 10), (0.9, 1e6, 10), (0.5, 1e5, 5)])
    assert select(frame, "max:val_acc", ACC_FLOPS).number == 0
    assert select(frame, "knee", ACC_FLOPS).number in (0, 2)


def test_knee_with_three_objectives_is_closest_to_the_ideal_point() -> None:
    objectives = {"val_acc": "maximize", "flops": "minimize", "params": "minimize"}
    frame = make_frame(TRIALS[:4], objectives)
    picked = select(frame, "knee", objectives)
    assert picked.number == 1
    assert "closest to the ideal point" in picked.reason


def test_knee_of_a_two_point_front() -> None:
    frame = make_frame([(0.5, 1e5, 1), (0.9, 1e6, 1)], pruned_acc=None)
    assert select(frame, "knee", ACC_FLOPS).reason.startswith("knee of the front of 2: closest to the ideal point")


def test_parse() -> None:
    rule = parse_rule("max:val_acc where flops<=5e7 and params<2.5e6")
    assert (rule.kind, rule.name) == ("max", "val_acc")
    assert [(c.name, c.op, c.value) for c in rule.conditions] == [("flops", "<=", 5e7), ("params", "<", 2.5e6)]
    assert parse_rule("knee").conditions == ()


@pytest.mark.parametrize(("rule", "message"), [
    ("max:val_ac", "rule 'max:val_ac' names no objective or metric of this study: 'val_ac'; known: val_acc "
                   "(0.4–0.92), flops (1e5–6e6 MACs), params (5000–9.5e4), train_loss (0.08–0.6)"),
    ("max val_acc", "rule 'max val_acc' does not parse: expected max:NAME, min:NAME or knee, optionally followed by "
                    "'where NAME<=NUMBER, ...'; known: val_acc (0.4–0.92), flops (1e5–6e6 MACs)"),
    ("best", "rule 'best' does not parse"),
    ("", "rule '' does not parse"),
    ("knee where", "rule 'knee where': nothing after 'where'; give conditions such as flops<=5e7; known: val_acc"),
    ("max:val_acc where flops=<5e7", "rule 'max:val_acc where flops=<5e7': condition 'flops=<5e7' does not parse; "
                                     "write NAME OP NUMBER with OP one of <= >= == < >, e.g. flops<=5e7"),
    ("min:flops where val_acc>=0.95", "rule 'min:flops where val_acc>=0.95' matches no complete trial (7 complete, "
                                      "none with val_acc>=0.95); ranges: val_acc (0.4–0.92), flops (1e5–6e6 MACs)"),
    ("max:val_acc where latency_ms<=3",
     "rule 'max:val_acc where latency_ms<=3' names no objective or metric of this study: 'latency_ms'"),
    ("min:layout", "rule 'min:layout' names no objective or metric of this study: 'layout'"),
    ("max:val_acc where flops<=1e400", "rule 'max:val_acc where flops<=1e400': condition 'flops<=1e400' compares "
                                       "with 1e400, which is not a finite number"),
    pytest.param("max:" + "v" * 5000, "rule 'max:" + "v" * 26 + "'... (5,004 characters) names no objective",
                 id="a-5000-character-name"),
])
def test_bad_rules(frame, rule: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        select(frame, rule, ACC_FLOPS)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, NasError)  # the CLI prints it as one line, exit status 2


def test_no_complete_trials() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"error": "boom"}))
    with pytest.raises(RuleError, match="has no COMPLETE trial"):
        select(trials_table(study, list(ACC_FLOPS)), "knee", ACC_FLOPS)
