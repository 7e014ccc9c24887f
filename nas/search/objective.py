"""The trial objective, written once: genome -> cost -> constraint check -> short training -> metrics.

It knows nothing about Ray or Optuna: it receives the trial's config and a ``report`` callable
(Ray Tune's ``tune.report`` in a study, a plain function in tests and in the in-process baseline).
Every report carries ``final`` (False for per-epoch reports, True for the trial's last word) and
``status``, which :func:`nas.search.records.classify_result` turns into an Optuna state.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.genome import parse_genome
from nas.runtime import library_versions

__all__ = ["TrialContext", "run_trial", "dataset_for"]

Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one study shares (picklable: it travels to the Ray workers)."""

    study_dir: str
    data: str
    budget: Mapping[str, Any]
    objectives: tuple[str, ...]
    constraints: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    keep_checkpoints: str = "none"  # none | pareto | all: pareto keeps all, then prunes after the study
    collapse: bool = False  # ablations: DeepViT's attention-collapse metric on validation images after training
    dry_run: bool = False  # every step but the training (zero metrics): measures the orchestration alone
    tune_checkpoints: bool = False  # weights go to a worker-local folder that Ray Tune persists (storage_path)

    @property
    def needs_latency(self) -> bool:
        return "latency_ms" in self.objectives or "latency_ms" in self.constraints


_DATASETS: dict[tuple[str, int], Any] = {}
_COST_CACHES: dict[Path, Any] = {}


def dataset_for(spec: str, seed: int) -> Any:
    """Load a dataset once per process: a reused Ray actor pays for it only on its first trial."""
    from nas.data import load_dataset

    key = (spec, seed)
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(spec, seed=seed)
    return _DATASETS[key]


def _cost(genome: Any, ctx: TrialContext, device: str) -> dict[str, Any]:
    from nas.cost import CostCache

    path = Path(ctx.study_dir) / "cost.jsonl"
    if path not in _COST_CACHES:  # one per process: a reused Ray actor does not re-read the file per trial
        _COST_CACHES[path] = CostCache(path)
    report = _COST_CACHES[path].get_or_compute(genome)
    out: dict[str, Any] = {"params": int(report.params), "flops": int(report.flops), "flops_unit": report.unit}
    if ctx.needs_latency:
        from nas.cost import measure_latency

        batch = int(ctx.budget.get("batch_size", 128))
        out["latency_ms"] = float(measure_latency(genome, batch_size=batch, device=device).latency_ms)
    return out


def _node() -> dict[str, Any]:
    """The Ray node that runs this trial (empty outside Ray), so a study shows where each trial ran."""
    try:
        import ray

        if ray.is_initialized():
            return {"node_id": ray.get_runtime_context().get_node_id()}
    except Exception:  # noqa: BLE001 - provenance only; never fails a trial
        pass
    return {}


def run_trial(config: Mapping[str, Any], ctx: TrialContext, report: Report) -> dict[str, Any]:
    """Run one trial and report; returns the final report. Never raises for a trial's own failure."""
    start = time.perf_counter()
    base: dict[str, Any] = {"key": config.get("key"), "seed": ctx.seed, "versions": library_versions(),
                            **_node()}
    if config.get("duplicate_of_running"):  # the searcher hands this trial the original's outcome
        final = {**base, "status": "duplicate", "final": True, "duration_s": time.perf_counter() - start,
                 **{k: config[k] for k in ("outcome_of", "remote") if config.get(k) is not None}}
        report(final)
        return final
    reuse = config.get("reuse")
    if reuse:  # this architecture was already trained in the study: its result stands
        final = {**reuse, **base, "status": "reused", "reused_from": reuse.get("number"), "final": True,
                 "duration_s": time.perf_counter() - start}
        report(final)
        return final
    try:
        from nas.runtime import pick_device
        from nas.train import TrainConfig, train

        genome = parse_genome(config["genome"])
        train_config = TrainConfig.from_dict(dict(ctx.budget))
        device = pick_device(train_config.device)
        base.update(_cost(genome, ctx, str(device)))
        violations = {k: base[k] for k, limit in ctx.constraints.items() if base.get(k, 0) > float(limit)}
        if violations:
            final = {**base, "status": "infeasible", "violations": violations, "final": True,
                     "duration_s": time.perf_counter() - start}
            report(final)
            return final
        if ctx.dry_run:
            final = {**base, "val_acc": 0.0, "val_loss": 0.0, "train_acc": 0.0, "train_loss": 0.0, "epochs": 0,
                     "epoch": 0, "status": "dry_run", "final": True, "duration_s": time.perf_counter() - start}
            report(final)
            return final
        checkpoint = None
        if ctx.keep_checkpoints != "none":
            if ctx.tune_checkpoints:  # this node's own disk; Ray Tune copies it to the storage_path
                import tempfile

                checkpoint = str(Path(tempfile.mkdtemp(prefix="nas-ckpt-")) / f"{genome.key}.pt")
            else:
                checkpoint = str(Path(ctx.study_dir) / "checkpoints" / f"{genome.key}.pt")
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            train_config = train_config.replace(save_path=checkpoint)
        data = dataset_for(ctx.data, ctx.seed)
        history: list[dict[str, Any]] = []

        def on_epoch(metrics: dict[str, Any]) -> None:
            history.append(dict(metrics))
            report({**base, **metrics, "status": "running", "final": False})

        result = train(genome, data, train_config, seed=ctx.seed, report=on_epoch)
        collapse: dict[str, Any] = {}
        if ctx.collapse:  # the trained model is at hand only here; the metric joins the final report
            from nas.ablation.collapse import collapse_metrics

            collapse = collapse_metrics(result.model, data, genome.image_size)
    except Exception as exc:  # recorded FAIL with its message; the study goes on
        final = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}", "final": True,
                 "duration_s": time.perf_counter() - start}
        report(final)
        return final
    metrics = result.to_dict()
    final = {
        **base, **{k: v for k, v in metrics.items() if k != "history"}, **collapse,
        "epoch": history[-1]["epoch"] if history else 0, "history": metrics.get("history", history),
        "checkpoint": checkpoint, "status": "complete", "final": True, "duration_s": time.perf_counter() - start,
    }
    report(final)
    return final
