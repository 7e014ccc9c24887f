"""Run a confirmation: the chosen architectures retrained at a longer budget over several seeds.

A confirmation *is* an ablation whose variants are the chosen genomes: the ablation runner trains
every architecture x seed as one Ray Tune trial on the study's resources and cluster, appends each
finished cell durably to ``<study>/confirm/cells.jsonl`` before Tune hears of it, and on a rerun
trains only the cells not stored yet. So a confirmation killed at any moment (``kill -9``) resumes
with no cell trained twice, and adding architectures (``--top``) or seeds later trains only the new
cells. It reads the study and never writes to it: everything lands under ``<study>/confirm/``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.analysis.confirmed import CONFIRM_DIR
from nas.confirm.candidates import Candidate, choose
from nas.errors import ConfigError
from nas.fields import integer

__all__ = ["ConfirmPlan", "plan_confirmation", "run_confirmation", "DEFAULT_SEEDS", "EPOCH_FACTOR",
           "SETTABLE"]

DEFAULT_SEEDS = (0, 1, 2)
EPOCH_FACTOR = 3  # default budget: three times the study's epochs
SETTABLE = ("budget", "resources", "max_concurrent", "ray_address", "logging")  # how cells train, run and are logged


@dataclass(frozen=True)
class ConfirmPlan:
    """What a confirmation trains: the candidates and the ablation config that trains them."""

    view: Any  # nas.analysis.study.StudyView
    candidates: tuple[Candidate, ...]
    config: Any  # nas.ablation.config.AblationConfig
    out_dir: Path

    @property
    def study_budget(self) -> dict[str, Any]:
        return dict(self.view.config.budget)


def confirm_budget(study_budget: dict[str, Any], epochs: int | None) -> dict[str, Any]:
    """The study's budget with a longer schedule: ``epochs``, or ``EPOCH_FACTOR`` x the study's.

    Everything else (batch, learning rate, subsets, augmentation) stays the study's, so the only
    change of fidelity is the training length. A study budgeted in seconds gets three times the seconds.
    """
    from nas.train import TrainConfig

    budget = dict(study_budget)
    if epochs is not None:
        budget["epochs"] = epochs
        return budget
    train = TrainConfig.from_dict(budget)
    if train.epochs is not None:
        budget["epochs"] = EPOCH_FACTOR * train.epochs
    if train.seconds is not None:
        budget["seconds"] = EPOCH_FACTOR * train.seconds
    return budget


def plan_confirmation(study_dir: str | Path, *, top: int | None = None, epochs: int | None = None,
                      seeds: Sequence[int] | None = None, overrides: Sequence[str] = (),
                      out: str | Path | None = None) -> ConfirmPlan:
    """Choose the candidates and build (and validate) the ablation config that confirms them."""
    from nas.ablation.config import AblationConfig
    from nas.analysis.study import open_study
    from nas.search.config import apply_overrides

    from nas.writes import Owner, claim_folder

    view = open_study(study_dir)
    for item in overrides:
        key = str(item).partition("=")[0].split(".")[0].strip()
        if key not in SETTABLE:
            raise ConfigError(f"--set {item}: a confirmation may change only {', '.join(SETTABLE)} "
                              f"(the architectures, data and seeds come from the study and the flags)")
    early = apply_overrides({"budget": {}}, [o for o in overrides if str(o).strip().startswith("budget")])
    if isinstance(early.get("budget"), dict) and early["budget"].get("save_path") is not None:
        from nas.config_validation import save_path_refusal

        raise ConfigError(f"confirm: budget: {save_path_refusal(early['budget']['save_path'])}")
    out_dir = Path(out) if out is not None else view.dir / CONFIRM_DIR
    claim_folder(out_dir, Owner("confirmation", f"{view.config.name}-confirm"), check_only=True)
    candidates = choose(view, top)
    if epochs is not None:
        epochs = integer("--epochs", epochs, minimum=1, error=ConfigError)  # the budget checks the top
    c = view.config
    doc: dict[str, Any] = {
        "name": f"{c.name}-confirm",
        "description": f"confirmation of study {c.name!r}: its Pareto front and the next architectures by rank",
        "base": candidates[0].genome,
        "variants": [{"name": cand.name, "base": cand.genome} for cand in candidates],
        "baseline": candidates[0].name,
        "seeds": list(DEFAULT_SEEDS if seeds is None else seeds),
        "data": c.data, "budget": confirm_budget(dict(c.budget), epochs),
        "resources": dict(c.resources), "max_concurrent": c.max_concurrent, "ray_address": c.ray_address,
        "collapse": False, "logging": _logging(c.logging, view.dir),
    }
    doc = apply_overrides(doc, list(overrides))
    config = AblationConfig.from_dict(doc, label="confirm")
    out_dir = Path(out) if out is not None else view.dir / CONFIRM_DIR
    return ConfirmPlan(view=view, candidates=tuple(candidates), config=config, out_dir=out_dir)


def _logging(tracking: Any, study_dir: Path) -> list[Any]:
    """The study's ``logging``, with MLflow runs going to the study's own store (one ``mlflow ui`` shows
    the study's trials and their confirmation side by side, as experiments ``NAME`` and ``NAME-confirm``)."""
    import dataclasses

    if tracking.mlflow and tracking.mlflow_uri is None:
        tracking = dataclasses.replace(tracking, mlflow_uri=tracking.mlflow_store(study_dir))
    return tracking.to_doc()


def run_confirmation(plan: ConfirmPlan, *, quiet: bool = False) -> Any:
    """Train the plan's missing cells (one driver per confirmation folder); returns the AblationRun."""
    from nas.ablation.runner import run_ablation
    from nas.search.lock import study_lock
    from nas.writes import Owner, claim_folder

    start = time.time()
    claim_folder(plan.out_dir, Owner("confirmation", plan.config.name))  # never an ablation's or a study's folder
    with study_lock(plan.out_dir):
        result = run_ablation(plan.config, plan.out_dir, quiet=quiet, objectives=tuple(plan.view.objectives),
                              kind="confirmation")
    if not quiet:
        print(f"confirmation cells: {result.ran} trained now, {result.skipped} already stored, "
              f"{result.total - len(result.records)} missing; {time.time() - start:.0f}s", flush=True)
    return result
