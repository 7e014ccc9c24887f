"""The trial objective, written once: genome -> cost -> constraint check -> short training -> metrics.

It knows nothing about Ray or Optuna: it receives the trial's config and a ``report`` callable
(Ray Tune's ``tune.report`` in a study, a plain function in tests and in the in-process baseline).
Every report carries ``final`` (False for per-epoch reports, True for the trial's last word) and
``status``, which :func:`nas.search.records.classify_result` turns into an Optuna state.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.genome import parse_genome
from nas.runtime import library_versions
from nas.search.oversize import oversize_report, too_large

__all__ = ["TrialContext", "run_trial", "dataset_for", "proxy_objectives"]

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
        _COST_CACHES[path] = cache = CostCache(path)
        if cache.problems:  # never used: those genomes are counted again
            print(f"warning: {cache.describe_problems()}", file=sys.stderr)
    report = _COST_CACHES[path].get_or_compute(genome)
    out: dict[str, Any] = {"params": int(report.params), "flops": int(report.flops), "flops_unit": report.unit}
    if report.uncounted_arithmetic:  # ops no handle counts (a plugin's FFT, say): never a silent zero
        out["flops_uncounted"] = dict(report.uncounted_arithmetic)
    if ctx.needs_latency:
        from nas.cost import measure_latency

        batch = int(ctx.budget.get("batch_size", 128))
        out["latency_ms"] = float(measure_latency(genome, batch_size=batch, device=device).latency_ms)
    return out


def proxy_objectives(genome: Any, ctx: TrialContext) -> dict[str, float]:
    """The study's ``proxy_*`` objectives for ``genome``, scored at initialisation on the fixed batch
    pre-screening uses (same data, seed and batch size: the same value for the same architecture)."""
    from nas.search.prescreen import PROXY_PREFIX

    names = [n.removeprefix(PROXY_PREFIX) for n in ctx.objectives if n.startswith(PROXY_PREFIX)]
    if not names:
        return {}
    from nas.proxy import DEFAULT_BATCH, proxy_batch, score_all

    batch = proxy_batch(dataset_for(ctx.data, ctx.seed), DEFAULT_BATCH, seed=ctx.seed, image_size=genome.image_size)
    return {PROXY_PREFIX + k: v for k, v in score_all(names, genome, batch, seed=ctx.seed).items()}


def _stamped(report: Report) -> Report:
    """``report`` with the wall-clock end time added to the trial's final report (with ``started_at``
    from the placement, it shows which trials of a study ran at the same time)."""

    def stamped(result: dict[str, Any]) -> None:
        if result.get("final"):
            result["ended_at"] = time.time()
        report(result)

    return stamped


def _node() -> dict[str, Any]:
    """The Ray node that runs this trial (empty outside Ray), so a study shows where each trial ran."""
    try:
        import ray

        if ray.is_initialized():
            return {"node_id": ray.get_runtime_context().get_node_id()}
    except Exception:  # noqa: BLE001 - provenance only; never fails a trial
        pass
    return {}


def _versions(config: Mapping[str, Any]) -> dict[str, str]:
    """Library versions, and the version of each plugin module the trial's genome names."""
    plugins = (config.get("genome") or {}).get("plugins") or ()
    if not plugins:
        return library_versions()
    from nas.mixers import load_plugins, plugin_versions

    try:
        load_plugins(plugins)
    except Exception:  # noqa: BLE001 - provenance only; the genome's parse reports it
        return library_versions()
    return {**library_versions(), **{f"plugin {m}": v for m, v in plugin_versions(plugins).items()}}


def run_trial(config: Mapping[str, Any], ctx: TrialContext, report: Report) -> dict[str, Any]:
    """Run one trial and report; returns the final report. Never raises for a trial's own failure."""
    start = time.perf_counter()
    report = _stamped(report)
    base: dict[str, Any] = {"key": config.get("key"), "seed": ctx.seed, "versions": _versions(config),
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
        from nas.search.placement import trial_placement
        from nas.train import TrainConfig, train

        genome = parse_genome(config["genome"])
        train_config = TrainConfig.from_dict(dict(ctx.budget))
        placement = trial_placement(train_config.device)  # Ray's GPU, or the CPU with a note
        base.update(placement.record())
        train_config = train_config.replace(device=placement.device)
        device = pick_device(train_config.device)
        size = {"batch_size": train_config.batch_size, "training": not ctx.dry_run, "device": str(device)}
        refusal = too_large(genome, **size)
        if refusal:  # recorded (PRUNED, status too_large) with estimated cost; nothing is allocated for it
            final = {**base, **oversize_report(genome, ctx.objectives, refusal, **size), "final": True,
                     "duration_s": time.perf_counter() - start}
            report(final)
            return final
        base.update(_cost(genome, ctx, str(device)))
        violations = {k: base[k] for k, limit in ctx.constraints.items() if base.get(k, 0) > float(limit)}
        if violations:
            from nas.search.feedback import constraint_violation

            final = {**base, "status": "infeasible", "violations": violations, "final": True,
                     "sampler_violation": constraint_violation(violations, ctx.constraints),
                     "duration_s": time.perf_counter() - start}
            report(final)
            return final
        base.update(proxy_objectives(genome, ctx))  # before training: the initial weights are scored
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
            from nas.models.diagnostics import collapse_metrics

            collapse = collapse_metrics(result.model, data, genome.image_size)
    except Exception as exc:  # recorded FAIL with its message; the study goes on
        from nas.train.memory import OOM_REASON, is_out_of_memory

        error = f"{type(exc).__name__}: {exc}"
        if is_out_of_memory(exc):
            base["reason"] = OOM_REASON
            error = f"{OOM_REASON}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        final = {**base, "status": "failed", "error": error, "final": True, "duration_s": time.perf_counter() - start}
    else:
        final = None
    if final is not None:  # outside ``except``: the traceback, which holds the model and optimizer, is gone
        from nas.train.memory import free_memory

        free_memory()  # a reused actor starts its next trial with the failed one's memory returned
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
