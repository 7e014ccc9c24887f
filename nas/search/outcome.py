"""Whether a run produced anything: a study whose every trial failed, an ablation whose every cell failed.

A study records a failed trial and goes on, which is right for one bad architecture; but when every
trial fails the cause is shared (unreadable data, labels out of range, a budget that diverges for
every network), the study has no result, and exit status 0 would tell a script it succeeded. These
checks turn that case into one :class:`~nas.errors.NasError` line that says why, quoting the most
common error.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from nas.errors import NasError

__all__ = ["NothingSucceeded", "check_study_outcome", "check_cells_outcome"]


class NothingSucceeded(NasError):
    """Every trial of a study, or every cell of an ablation, failed."""


def _commonest(errors: Iterable[str]) -> str:
    counts = Counter(" ".join(str(e).split())[:200] for e in errors if e)
    if not counts:
        return "no error was recorded"
    text, n = counts.most_common(1)[0]
    return f"{text!r}" + (f" ({n} times)" if n > 1 else "")


def check_study_outcome(study: Any, where: str) -> None:
    """Raise :class:`NothingSucceeded` when trials finished and every one of them failed."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    failed = [t for t in finished if t.state == TrialState.FAIL]
    if not finished or len(failed) < len(finished):
        return
    errors = [t.user_attrs.get("error") for t in failed]
    raise NothingSucceeded(f"study {where}: all {len(failed)} finished trial(s) failed, so it has no result; the "
                           f"commonest error: {_commonest(errors)}; if the budget or data caused it, start a new "
                           f"study with --out NEW_DIR, else fix the cause and run "
                           f"`nas study resume {where} --set retry_failed=true`")


def check_cells_outcome(records: Iterable[Mapping[str, Any]], what: str, rerun: str) -> None:
    """Raise :class:`NothingSucceeded` when cells were stored and none of them completed."""
    records = list(records)
    if not records or any(r.get("status") == "complete" for r in records):
        return
    diverged = sum(1 for r in records if "Diverged" in str(r.get("error", "")) or "NaN" in str(r.get("error", "")))
    how = f"{diverged} diverged" if diverged == len(records) else f"{diverged} diverged, {len(records) - diverged} failed otherwise"
    raise NothingSucceeded(f"{what}: all {len(records)} cell(s) failed ({how}), so the table has no result; the "
                           f"commonest error: {_commonest(r.get('error') for r in records)}; a changed budget or data "
                           f"needs a new --out; for a cause outside the config, fix it and rerun with {rerun}")
