"""What nas's bookkeeping adds per trial in a large study, beside the sampler's own cost.

Two pieces of nas read every trial of the study each time a trial starts:

* the budget check (``finished_count``: trials that count against ``n_trials``, across drivers), and
* :class:`~nas.search.feedback.FeedbackSampler`, which shows the wrapped sampler each PRUNED trial that
  carries ``sampler_values`` as a COMPLETE one (a rebuilt ``FrozenTrial`` per trial per read).

This fills an SQLite study with ``N`` finished trials shaped like a study's (two objectives, a third of
them PRUNED with feedback values, the user attributes a trial records), then times, per new trial: the
budget check, one ``ask`` with plain TPE, and one ``ask`` with TPE behind the feedback view.

    python benchmarks/study_overhead.py                  # N = 100, 1000, 3000
    python benchmarks/study_overhead.py --sizes 500 5000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from nas.search.feedback import SAMPLER_VALUES, SAMPLER_VIOLATION, FeedbackSampler
from nas.search.storage import finished_count

DISTRIBUTIONS = {"depth": IntDistribution(2, 12), "dim": CategoricalDistribution([64, 96, 128, 192]),
                 "mlp_ratio": FloatDistribution(1.0, 4.0), "mixer": CategoricalDistribution(["A", "R", "S", "C"])}


def fill(study: optuna.Study, n: int) -> None:
    """``n`` finished trials: two in three COMPLETE, the rest PRUNED with feedback values."""
    rng = optuna.samplers.RandomSampler(seed=0)
    trials = []
    for i in range(n):
        params = {k: rng.sample_independent(study, None, k, d) for k, d in DISTRIBUTIONS.items()}  # type: ignore[arg-type]
        acc, macs = 0.3 + 0.6 * (i % 97) / 97, 1e6 * (1 + i % 53)
        attrs = {"key": f"k{i:06d}", "status": "complete", "val_acc": acc, "macs": macs, "device": "cpu"}
        state = TrialState.COMPLETE
        if i % 3 == 2:
            state = TrialState.PRUNED
            attrs.update({"status": "pruned", SAMPLER_VALUES: [acc * 0.8, macs], SAMPLER_VIOLATION: 0.0})
        trials.append(create_trial(state=state, values=[acc, macs] if state == TrialState.COMPLETE else None,
                                   params=params, distributions=DISTRIBUTIONS, user_attrs=attrs))
    study.add_trials(trials)


def time_ask(study: optuna.Study, repeats: int) -> float:
    """Seconds per ``ask`` (sampling every parameter; each asked trial is then told FAIL), after one
    untimed ask: a driver's study object is long-lived, so Optuna's cache of finished trials is warm."""
    study.tell(study.ask(DISTRIBUTIONS), state=TrialState.FAIL)
    t0 = time.perf_counter()
    for _ in range(repeats):
        trial = study.ask(DISTRIBUTIONS)
        study.tell(trial, state=TrialState.FAIL)
    return (time.perf_counter() - t0) / repeats


def measure(n: int, repeats: int) -> dict[str, float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'study.db'}"
        base = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
        fill(base, n)
        finished_count(base)  # warm Optuna's cache of finished trials, as in a running driver
        t0 = time.perf_counter()
        for _ in range(repeats):
            count = finished_count(base)
        budget = (time.perf_counter() - t0) / repeats
        assert count == n
        plain = optuna.load_study(study_name="s", storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=0, multivariate=True))
        wrapped = optuna.load_study(study_name="s", storage=storage,
                                    sampler=FeedbackSampler(optuna.samplers.TPESampler(seed=0, multivariate=True)))
        return {"trials": n, "budget_check_ms": 1e3 * budget, "tpe_ask_ms": 1e3 * time_ask(plain, repeats),
                "feedback_tpe_ask_ms": 1e3 * time_ask(wrapped, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'trials':>7} {'budget check':>13} {'TPE ask':>10} {'feedback+TPE ask':>17}")
    for n in args.sizes:
        row = measure(n, args.repeats)
        print(f"{row['trials']:>7} {row['budget_check_ms']:>10.1f} ms {row['tpe_ask_ms']:>7.1f} ms "
              f"{row['feedback_tpe_ask_ms']:>14.1f} ms", flush=True)


if __name__ == "__main__":
    main()
