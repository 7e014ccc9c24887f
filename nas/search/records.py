"""Trial records: what a finished trial means, and stored trials as plain dicts and DataFrames.

Analysis (status, Pareto fronts, reports, export, ablation tables) reads these records from the
storage; it never needs a live model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.proxy.registry import PROXIES

__all__ = ["Outcome", "classify_result", "trial_record", "trials_frame", "METRIC_KEYS", "COST_KEYS", "PROXY_KEYS"]

METRIC_KEYS = ("val_acc", "val_loss", "train_acc", "train_loss", "img_per_s", "epochs", "elapsed_s")
COST_KEYS = ("params", "flops", "flops_unit", "flops_uncounted", "latency_ms")
PROXY_KEYS = tuple(f"proxy_{name}" for name in PROXIES)  # zero-cost proxy scores (objectives, pre-screening)


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, in Optuna's terms, with the attributes to store on it."""

    state: TrialState
    values: list[float] | None
    attrs: dict[str, Any] = field(default_factory=dict)


def _finite(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(float(v)) for v in values)


def classify_result(result: dict[str, Any] | None, error: bool, objectives: list[str]) -> Outcome:
    """Map a trial's last reported result onto an Optuna state.

    - ``status: failed`` (the trial caught an exception) or a crashed worker -> FAIL, with the error.
    - ``status: infeasible`` (over a constraint, never trained) -> PRUNED with ``infeasible``.
    - a result that is not the trial's ``final`` one -> the scheduler stopped it early: PRUNED with
      the epoch reached (never COMPLETE with a low-fidelity score).
    - otherwise COMPLETE with the objective values.
    """
    result = dict(result or {})
    attrs: dict[str, Any] = {k: result[k] for k in _STORED if k in result}
    status = result.get("status")
    if error or status == "failed":
        attrs["error"] = result.get("error") or "the trial's worker process crashed (see the Ray log in the study's ray/ folder)"
        attrs["status"] = "failed"
        return Outcome(TrialState.FAIL, None, attrs)
    if status == "too_large":  # refused before building: estimated cost, sampler feedback (nas.search.oversize)
        attrs["status"] = "too_large"
        return Outcome(TrialState.PRUNED, None, attrs)
    if status == "infeasible":
        attrs["status"] = "infeasible"
        attrs["infeasible"] = True
        return Outcome(TrialState.PRUNED, None, attrs)
    if not result.get("final"):
        attrs["status"] = "pruned"
        attrs["epoch_reached"] = result.get("epoch", 0)
        return Outcome(TrialState.PRUNED, None, attrs)
    values = [result.get(name) for name in objectives]
    if not _finite(values):
        attrs["status"] = "failed"
        attrs["error"] = f"objective values are not finite numbers: {dict(zip(objectives, values))}"
        return Outcome(TrialState.FAIL, None, attrs)
    attrs["status"] = status or "complete"
    return Outcome(TrialState.COMPLETE, [float(v) for v in values], attrs)


# Result keys stored as user attributes of the Optuna trial (JSON-serialisable).
_STORED = (
    "genome", "key", "params", "flops", "flops_unit", "flops_uncounted", "latency_ms", "violations", "val_acc",
    "val_loss", "train_acc",
    "train_loss", "img_per_s", "epochs", "epoch", "elapsed_s", "history", "device", "seed", "versions", "duration_s",
    "reused_from", "error", "checkpoint", "sampler_values", "sampler_violation", "estimated_cost", *PROXY_KEYS,
    # where the trial ran: Ray's GPU assignment, a fallback's reason, process and wall-clock span
    "gpu_ids", "cuda_visible_devices", "device_note", "pid", "started_at", "ended_at", "reason", "amp", "compiled",
    "channels_last", "node_id", "driver",
)


def trial_record(trial: FrozenTrial, objectives: list[str] | None = None) -> dict[str, Any]:
    """One stored trial as a flat dict: number, state, key, cost, metrics, genome, provenance."""
    attrs = trial.user_attrs
    rec: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "status": attrs.get("status", trial.state.name.lower()),
        "key": attrs.get("key"),
        "layout": _layout(attrs.get("genome")),
    }
    for k in COST_KEYS + METRIC_KEYS + PROXY_KEYS + ("epoch_reached", "reused_from", "prescreened_by", "error", "device",
                                                    "duration_s", "checkpoint", "node_id", "driver"):
        if k in attrs:
            rec[k] = attrs[k]
    if objectives and trial.values is not None:
        for name, value in zip(objectives, trial.values):
            rec[name] = value
    rec["genome"] = attrs.get("genome")
    rec["params_sampled"] = dict(trial.params)
    return rec


def _layout(genome: dict[str, Any] | None) -> str | None:
    if not genome:
        return None
    from nas.genome.schema import layout_of

    return layout_of(s.get("mixer") for s in genome.get("stages", []))


def trials_frame(study: optuna.Study, objectives: list[str] | None = None) -> pd.DataFrame:
    """All trials as a DataFrame: one row per trial with genome fields, cost and metrics."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rec = trial_record(trial, objectives)
        genome = rec.pop("genome") or {}
        sampled = rec.pop("params_sampled")
        for k, v in genome.items():
            if k != "stages":
                rec[f"genome.{k}"] = v
        for i, stage in enumerate(genome.get("stages", [])):
            for k, v in stage.items():
                rec[f"s{i}.{k}"] = v
        rec["sampled"] = sampled
        rows.append(rec)
    return pd.DataFrame(rows)
