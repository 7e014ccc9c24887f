"""Orchestration overhead per trial: Ray Tune + Optuna + cost lookup, with training replaced by a no-op.

Runs the same trials twice in one process: through ``run_study`` (Optuna's sampler inside Ray Tune,
one trial at a time, SQLite storage, cost cache) and through a plain in-process Optuna loop calling
the same trial objective. Prints the median time per trial of each (the interval between consecutive
trial completions) and their difference. Ray's start-up is reported apart: it is paid once per study.

    python benchmarks/orchestration_overhead.py [--trials 40]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import yaml

SPACE = {
    "name": "bench",
    "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean", "position": "absolute"},
    "num_stages": {"choices": [1, 2]},
    "stage": {"mixer": {"choices": ["attention", "shift", "conv"]}, "depth": {"int": [1, 2]},
              "dim": {"choices": [16, 32]}, "heads": {"choices": [1, 2]}, "mlp_ratio": 2},
}


def _intervals(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    ends = sorted(t.datetime_complete.timestamp() for t in trials if t.datetime_complete)
    return [b - a for a, b in zip(ends, ends[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    import ray

    from nas.search.config import StudyConfig
    from nas.search.guard import quiet_ray_notices
    from nas.search.objective import TrialContext, run_trial
    from nas.search.runner import run_study
    from nas.search.storage import open_storage

    tmp = Path(tempfile.mkdtemp(prefix="nas-bench-"))
    (tmp / "space.yaml").write_text(yaml.safe_dump(SPACE))
    doc = {"name": "bench", "space": "space.yaml", "data": "synthetic", "budget": {"epochs": 1},
           "objectives": {"val_acc": "maximize", "flops": "minimize"}, "n_trials": args.trials,
           "max_concurrent": 1, "sampler": "random", "seed": 0}
    config = StudyConfig.from_dict(doc, base_dir=tmp)

    quiet_ray_notices()
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - start
    start = time.perf_counter()
    run_study(config, tmp / "tune", quiet=True, dry_run=True)
    tune_total = time.perf_counter() - start
    ray.shutdown()
    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{tmp / 'tune' / 'study.db'}")
    tune_steps = _intervals(study.get_trials())

    # The same trials, same objective and same cost cache, in a plain in-process Optuna loop.
    space = config.load_space()
    ctx = TrialContext(study_dir=str(tmp / "tune"), data="synthetic", budget={"epochs": 1},
                       objectives=("val_acc", "flops"), dry_run=True)
    plain = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0),
                                storage=open_storage(f"sqlite:///{tmp / 'plain.db'}"))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        from nas.genome import parse_genome

        genome = parse_genome(space.suggest(trial), in_channels=3, num_classes=10)
        out = run_trial({"genome": genome.to_dict(), "key": genome.key}, ctx, report=lambda r: None)
        return out["val_acc"], out["flops"]

    start = time.perf_counter()
    plain.optimize(objective, n_trials=args.trials)
    plain_total = time.perf_counter() - start
    plain_steps = _intervals(plain.get_trials())

    tune_med, plain_med = statistics.median(tune_steps), statistics.median(plain_steps)
    print(f"{args.trials} trials, training replaced by a no-op, one trial at a time, SQLite storage, cost cache")
    print(f"ray start-up (once per study)        {ray_start:6.2f} s")
    print(f"{'':36s} {'median s/trial':>15s} {'total s':>9s} {'total/trials':>13s}")
    print(f"{'Ray Tune + Optuna (nas study)':36s} {tune_med:15.3f} {tune_total:9.1f} {tune_total / args.trials:13.3f}")
    print(f"{'plain in-process Optuna loop':36s} {plain_med:15.3f} {plain_total:9.1f} {plain_total / args.trials:13.3f}")
    print(f"orchestration overhead of Ray Tune per trial: {tune_med - plain_med:+.3f} s (median)")


if __name__ == "__main__":
    main()
