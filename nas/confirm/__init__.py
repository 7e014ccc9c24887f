"""Confirmation of a study: its front and the next architectures retrained longer, over seeds.

A search ranks architectures by one short training each, at one seed; this package checks that
ranking before anyone builds on it. :mod:`nas.confirm.candidates` chooses what to retrain,
:mod:`nas.confirm.run` retrains it through the ablation runner (resumable cell store, Ray Tune
trials), :mod:`nas.confirm.summary` computes the confirmed statistics, rank correlations and fronts,
and :mod:`nas.confirm.render` writes them. Analysis reads the written summary only
(:mod:`nas.analysis.confirmed`), so it never depends on this package.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.confirm.candidates import Candidate, choose, rank_candidates
from nas.confirm.run import ConfirmPlan, plan_confirmation, run_confirmation
from nas.confirm.summary import Confirmation, summarize_confirmation

__all__ = ["Candidate", "Confirmation", "ConfirmPlan", "ConfirmResult", "choose", "confirm_study",
           "plan_confirmation", "rank_candidates", "run_confirmation", "summarize_confirmation"]


@dataclass(frozen=True)
class ConfirmResult:
    confirmation: Confirmation
    files: dict[str, Path]
    ran: int  # cells trained by this call
    skipped: int  # cells already stored
    missing: int  # cells without a record (interrupted, or Tune failed)
    records: tuple[dict[str, Any], ...] = ()  # the stored record of every cell


def confirm_study(study_dir: str | Path, *, top: int | None = None, epochs: int | None = None,
                  seeds: Sequence[int] | None = None, overrides: Sequence[str] = (), out: str | Path | None = None,
                  quiet: bool = False) -> ConfirmResult:
    """Plan, train the missing cells, summarise and write the confirmation of the study in ``study_dir``."""
    from nas.confirm.render import write_confirmation

    start = time.time()
    plan = plan_confirmation(study_dir, top=top, epochs=epochs, seeds=seeds, overrides=overrides, out=out)
    run: Any = run_confirmation(plan, quiet=quiet)
    conf = summarize_confirmation(plan, run.records, elapsed_s=time.time() - start)
    files = write_confirmation(conf, plan.out_dir)
    return ConfirmResult(conf, files, run.ran, run.skipped, run.total - len(run.records), tuple(run.records))
