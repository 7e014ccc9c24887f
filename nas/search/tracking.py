"""Experiment tracking: each trial's curves in TensorBoard and MLflow, through Ray Tune's logger callbacks.

A study's (or an ablation's) ``logging: [tensorboard, mlflow]`` adds Ray Tune's
:class:`~ray.tune.logger.TBXLoggerCallback` and :class:`~ray.air.integrations.mlflow.MLflowLoggerCallback`
to the run, adapted to what a trial here is: one TensorBoard run and one MLflow run per trial (per
cell in an ablation), named by the genome key; the genome's fields as parameters; every epoch's
``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` at step = epoch; the cost (``params``,
``flops``, ``latency_ms``, ``proxy_*``) and the trial's duration beside them. The callbacks run in the
driver, so the files land in the run's folder whatever node trained the trial:

- TensorBoard: ``<folder>/tensorboard/<run>/events.out.tfevents.*``: ``tensorboard --logdir <folder>``;
- MLflow: the SQLite store ``<folder>/mlflow.db`` (MLflow's own default kind; its file store is
  deprecated), experiment = the study's name: ``mlflow ui --backend-store-uri sqlite:///<folder>/mlflow.db``;
  or any tracking URI the config gives, as ``logging: [{mlflow: http://host:5000}]``.

Trials are otherwise stored as before (Optuna storage, ``trials.csv``, ``cells.jsonl``): tracking is a
view for people, never read back by ``nas``.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.fields import show

__all__ = ["LOGGERS", "Tracking", "parse_tracking", "genome_params", "trial_metrics"]

LOGGERS = ("tensorboard", "mlflow")
_PACKAGES = {"tensorboard": "tensorboardX", "mlflow": "mlflow"}  # logger -> module it needs
_PIP = {"tensorboard": "tensorboardX", "mlflow": "mlflow-skinny"}  # -> what installs it (the tracking extra)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
MLFLOW_DB = "mlflow.db"
TENSORBOARD_DIR = "tensorboard"

# Numbers in a trial's report that are bookkeeping, not measurements (Ray Tune's own and ours).
_NOT_METRICS = frozenset({
    "final", "epoch", "seed", "started_at", "ended_at", "timestamp", "pid", "training_iteration", "done",
    "time_this_iter_s", "time_total_s", "time_since_restore", "iterations_since_restore", "timesteps_total",
    "episodes_total", "timesteps_since_restore", "number", "reused_from", "sampler_violation", "gpu_ids",
})


@dataclass(frozen=True)
class Tracking:
    """Which trackers a run writes to; empty by default (the trials are in the study's storage anyway)."""

    tensorboard: bool = False
    mlflow: bool = False
    mlflow_uri: str | None = None  # None: SQLite in the run's folder

    def __bool__(self) -> bool:
        return self.tensorboard or self.mlflow

    def to_doc(self) -> list[Any]:
        """The ``logging`` list as a config spells it (loads back to an equal value)."""
        out: list[Any] = ["tensorboard"] if self.tensorboard else []
        if self.mlflow:
            out.append({"mlflow": self.mlflow_uri} if self.mlflow_uri else "mlflow")
        return out

    def mlflow_store(self, folder: str | Path) -> str:
        """The tracking URI MLflow writes to for a run in ``folder``."""
        return self.mlflow_uri or f"sqlite:///{Path(folder).resolve() / MLFLOW_DB}"

    def callbacks(self, folder: str | Path, experiment: str,
                  cells: Mapping[str, Mapping[str, Any]] | None = None) -> list[Any]:
        """Ray Tune callbacks writing into ``folder``; ``cells`` maps an ablation's cell keys to
        their variant, seed and genome (an ablation trial's config names only its cell)."""
        out: list[Any] = []
        if self.tensorboard:
            out.append(_tensorboard_callback(Path(folder) / TENSORBOARD_DIR, dict(cells or {})))
        if self.mlflow:
            out.append(_mlflow_callback(self.mlflow_store(folder), experiment, dict(cells or {})))
        return out


def parse_tracking(value: Any, error: Callable[[str], ConfigError]) -> Tracking:
    """``logging``: a list of ``tensorboard``, ``mlflow`` or ``{mlflow: TRACKING_URI}``; none by default.

    A tracker whose package is missing is refused here, before a study starts, with the install line.
    """
    if value is None or value == "none" or value == []:
        return Tracking()
    items = [value] if isinstance(value, (str, Mapping)) else value
    if not isinstance(items, (list, tuple)):
        raise error(f"logging must be a list of {', '.join(LOGGERS)} (or {{mlflow: TRACKING_URI}}), got {show(value)}")
    found: dict[str, Any] = {}
    for item in items:
        if isinstance(item, Mapping) and len(item) == 1 and next(iter(item)) == "mlflow":
            uri = next(iter(item.values()))
            if uri is not None and (not isinstance(uri, str) or not _URL.match(uri)):
                raise error(f"logging: mlflow's tracking URI must be a URI such as http://host:5000 or "
                            f"sqlite:///path/mlflow.db, got {show(uri)}")
            found["mlflow"] = uri
        elif isinstance(item, str) and item in LOGGERS:
            found.setdefault(item, None)
        else:
            raise error(f"logging: unknown logger {show(item)}; known: {', '.join(LOGGERS)} "
                        f"(or {{mlflow: TRACKING_URI}})")
    for name in found:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            raise error(f"logging: {name} needs the {_PACKAGES[name]} package: pip install {_PIP[name]} "
                        f"(the tracking extra: pip install '.[tracking]' in a checkout)")
    return Tracking(tensorboard="tensorboard" in found, mlflow="mlflow" in found, mlflow_uri=found.get("mlflow"))


# -- what is logged ---------------------------------------------------------------------------------
def genome_params(genome: Mapping[str, Any] | None) -> dict[str, Any]:
    """A genome document as flat parameters: ``depth``-style fields as they are, stages as
    ``stages.0.mixer``; lists joined (``[1, 2]`` -> ``"1,2"``) so that every value is a scalar."""
    out: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                put(f"{prefix}.{i}", v)
        elif isinstance(value, (list, tuple)):
            out[prefix] = ",".join(str(v) for v in value)
        else:
            out[prefix] = value

    put("", dict(genome or {}))
    return out


def trial_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of one report that are measurements (metrics and cost), by name."""
    out = {}
    for k, v in result.items():
        if k in _NOT_METRICS or "/" in k or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[k] = float(v)
    return out


def _step(result: Mapping[str, Any]) -> int:
    return int(result.get("epoch") or 0)  # the epoch, so curves of trials line up (0: before training)


def _new_points(last: dict[Any, tuple[int, dict[str, float]]], trial: Any,
                result: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """The step and the metrics of ``result`` not already logged at that step: a trial's final report
    carries its last epoch's metrics again (and whole-run figures such as ``img_per_s`` under the same
    names), which would draw each curve's last point twice; only its new names (``duration_s``,
    ``epochs``) are added. TensorBoard's ``final/*`` scalars keep the final report whole."""
    step, metrics = _step(result), trial_metrics(result)
    before_step, before = last.get(trial, (None, {}))
    if before_step == step:
        metrics = {k: v for k, v in metrics.items() if k not in before}
        before = {**before, **metrics}
    else:
        before = dict(metrics)
    last[trial] = (step, before)
    return step, metrics


def _describe(trial: Any, cells: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A trial's run name, parameters (its genome) and tags (key, and variant and seed in an ablation)."""
    config = trial.config or {}
    cell = cells.get(config.get("cell", "")) if cells else None
    if cell is not None:
        key = str(cell.get("key", config["cell"]))
        name = f"{cell['variant']}-seed{cell['seed']}"
        params = {**genome_params(cell.get("genome")), "seed": cell["seed"], "variant": cell["variant"]}
        tags = {"key": key, "variant": str(cell["variant"]), "seed": str(cell["seed"])}
    else:
        key = str(config.get("key", ""))
        name = f"{key}-{trial.trial_id}"
        params = genome_params(config.get("genome"))
        tags = {"key": key}
    return name, params, {**tags, "ray_trial_id": str(trial.trial_id)}


# -- the callbacks ----------------------------------------------------------------------------------
def _tensorboard_callback(folder: Path, cells: dict[str, Any]) -> Any:
    from ray.tune.logger import TBXLoggerCallback

    class TensorBoard(TBXLoggerCallback):
        """Ray Tune's TensorBoard logger with one folder per trial under ``folder``, step = epoch,
        and the genome as hyper-parameters (TensorBoard's HParams tab) when the trial ends."""

        def __init__(self) -> None:
            super().__init__()
            self._last: dict[Any, tuple[int, dict[str, float]]] = {}  # per trial: last step and its values

        def log_trial_start(self, trial: Any) -> None:
            if trial in self._trial_writer:
                self._trial_writer[trial].close()
            name, _, _ = _describe(trial, cells)
            self._trial_writer[trial] = self._summary_writer_cls(str(folder / name), flush_secs=30)
            self._trial_result[trial] = {}

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            if trial not in self._trial_writer:
                self.log_trial_start(trial)
            step, metrics = _new_points(self._last, trial, result)
            for k, v in metrics.items():
                self._trial_writer[trial].add_scalar(k, v, global_step=step)
            # final/* (the HParams metrics): each name's last reported value, the final report's included
            self._trial_result[trial] = {**self._trial_result[trial], **trial_metrics(result)}
            self._trial_writer[trial].flush()

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            writer = self._trial_writer.pop(trial, None)
            final = self._trial_result.pop(trial, {})
            self._last.pop(trial, None)
            if writer is None:
                return
            from tensorboardX.summary import hparams

            _, params, tags = _describe(trial, cells)
            hp = {k: v for k, v in {**params, **tags}.items() if isinstance(v, (str, bool, int, float))}
            for tag in hparams(hparam_dict=hp, metric_dict={f"final/{k}": v for k, v in final.items()}):
                writer.file_writer.add_summary(tag)
            for k, v in final.items():  # the metric_dict's values, under the names hparams looks for
                writer.add_scalar(f"final/{k}", v)
            writer.close()

    return TensorBoard()


def _mlflow_callback(uri: str, experiment: str, cells: dict[str, Any]) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflow(MLflowLoggerCallback):
        """Ray Tune's MLflow logger with the genome (flattened) as parameters, step = epoch and
        only the measurements as metrics (not Ray Tune's bookkeeping)."""

        def setup(self, *args: Any, **kwargs: Any) -> None:
            for name in ("mlflow", "alembic"):  # their INFO lines (database set-up) are not ours to print
                logging.getLogger(name).setLevel(logging.WARNING)
            super().setup(*args, **kwargs)
            self._told: set[Any] = set()  # trials whose final report (with its status) arrived
            self._last: dict[Any, tuple[int, dict[str, float]]] = {}  # per trial: last step and its values

        def log_trial_start(self, trial: Any) -> None:
            if trial in self._trial_runs:
                return
            name, params, tags = _describe(trial, cells)
            run = self.mlflow_util.start_run(tags={**self.tags, **tags}, run_name=name)
            self._trial_runs[trial] = run.info.run_id
            self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=params)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            if trial not in self._trial_runs:
                self.log_trial_start(trial)
            step, metrics = _new_points(self._last, trial, result)
            if metrics:
                self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics, step=step)
            if result.get("final") and result.get("status"):
                self.mlflow_util._get_client().set_tag(self._trial_runs[trial], "status", str(result["status"]))
                self._told.add(trial)

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            run_id = self._trial_runs.pop(trial, None)
            if run_id is None:
                return
            if trial not in self._told:  # ended without a final report: stopped by the scheduler (PRUNED)
                self.mlflow_util._get_client().set_tag(run_id, "status", "failed" if failed else "stopped")
            self._told.discard(trial)
            self._last.pop(trial, None)
            self.mlflow_util.end_run(run_id=run_id, status="FAILED" if failed else "FINISHED")

    return MLflow(tracking_uri=uri, experiment_name=experiment)
