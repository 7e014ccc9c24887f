"""The function Ray Tune runs for each trial, in a module of its own.

Ray ships the trainable to each worker by reference, so the worker imports the module that defines
it before its first trial: here that is the trial objective alone, not the driver's runner (Optuna,
pandas, the study storage), which keeps the first trial's start-up short.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.search.objective import TrialContext, run_trial

__all__ = ["trial_trainable"]


def trial_trainable(config: dict[str, Any], ctx: TrialContext) -> None:
    from ray import tune

    def report(metrics: dict[str, Any]) -> None:
        local = metrics.get("checkpoint") if ctx.tune_checkpoints and metrics.get("final") else None
        if local and Path(local).is_file():  # Ray Tune persists the folder to the run's storage_path
            import shutil

            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(Path(local).parent)))
            shutil.rmtree(Path(local).parent, ignore_errors=True)  # persisted: the node's copy is not needed
        else:
            tune.report(metrics)

    run_trial(config, ctx, report=report)
