"""Reference points of a study: known presets trained like its trials, and its hypervolume reference.

A Pareto plot means more with familiar architectures on it. The presets a study lists under
``reference_presets`` are trained on the study's data with the study's budget and seed, through the
same :func:`~nas.search.objective.run_trial` as every trial (so cost, metrics and failures are
recorded the same way), and stored in ``<study_dir>/references.json``. Each preset is adapted to the
data first (input channels and classes); the 32x32 presets fit mnist5k (padded) and CIFAR as they are.
The study's constraints are not applied to them: a reference is shown wherever it lands.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any

import optuna

from nas.search.objective import TrialContext, dataset_for, run_trial

__all__ = ["train_references", "load_references", "record_references", "REFERENCES_FILE"]

REFERENCES_FILE = "references.json"


def load_references(study_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Stored reference results of ``study_dir``: preset name -> result (empty when none)."""
    path = Path(study_dir) / REFERENCES_FILE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged file is rewritten by the next training
    return dict(doc) if isinstance(doc, dict) else {}


def _save(study_dir: Path, results: dict[str, dict[str, Any]]) -> None:
    path = study_dir / REFERENCES_FILE
    from nas.writes import atomic_write

    atomic_write(path, json.dumps(results, indent=2, default=str) + "\n")  # a kill keeps the presets already trained


def train_references(config: Any, study_dir: str | Path, *, quiet: bool = False) -> dict[str, dict[str, Any]]:
    """Train each of ``config.reference_presets`` not yet completed in ``study_dir``; returns all results.

    A preset that failed before is tried again; one that completed is never retrained.
    """
    from nas.genome import load_genome

    study_dir = Path(study_dir)
    results = load_references(study_dir)
    todo = [name for name in config.reference_presets if results.get(name, {}).get("status") != "complete"]
    if not todo:
        return results
    data = dataset_for(config.data, config.seed)
    ctx = TrialContext(study_dir=str(study_dir), data=config.data, budget=dict(config.budget),
                       objectives=tuple(config.objectives), constraints={}, seed=config.seed, keep_checkpoints="none")
    for name in todo:
        start = time.perf_counter()
        genome = load_genome(name).replace(in_channels=data.channels, num_classes=data.num_classes)
        final = run_trial({"genome": genome.to_dict(), "key": genome.key}, ctx, report=lambda _: None)
        record = {k: v for k, v in final.items() if k not in ("final", "checkpoint")}
        record.update(preset=name, genome=genome.to_dict(), layout=genome.layout,
                      date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        results[name] = record
        _save(study_dir, results)
        if not quiet:
            what = (f"val_acc={record.get('val_acc', float('nan')):.4g} flops={record.get('flops', 0):.3g}"
                    if record.get("status") == "complete" else f"{record.get('status')}: {record.get('error', '')}")
            print(f"reference {name}: {what} ({time.perf_counter() - start:.0f}s)", flush=True)
    return results


def record_references(config: Any, study: optuna.Study, study_dir: str | Path, *, quiet: bool = False) -> None:
    """After a run: train the reference presets the config lists, and fix the hypervolume reference point.

    The reference point is stored with the study the first time and never moved afterwards
    (:func:`nas.pareto.hv_reference`).
    """
    from nas.pareto import hv_reference

    if config.reference_presets:
        train_references(config, study_dir, quiet=quiet)
    hv_reference(study, dict(config.objectives), dict(config.constraints), store=True)
