"""A study's confirmation as analysis reads it: ``<study>/confirm/confirm.json``.

``nas study confirm`` retrains a study's front (and the next architectures) at a longer budget over
several seeds and writes its summary here (:mod:`nas.confirm`); export (``--confirmed``) and the study
report read only this file, so they need neither Ray nor the ablation runner.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nas.errors import ConfigError

__all__ = ["CONFIRM_DIR", "CONFIRM_FILE", "COUNTED", "load_confirmation", "confirmed_frame", "confirmed_metadata",
           "confirmation_rows"]

CONFIRM_DIR = "confirm"
CONFIRM_FILE = "confirm.json"
COUNTED = ("params", "flops")  # objectives re-counted, identical by construction: no spread, no correlation


def load_confirmation(study_dir: str | Path, confirm_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The stored confirmation summary of a study, or None when it was never confirmed."""
    folder = Path(confirm_dir) if confirm_dir is not None else Path(study_dir) / CONFIRM_DIR
    path = folder / CONFIRM_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable confirmation ({type(exc).__name__}: {exc}); run "
                          f"`nas study confirm {study_dir}` again to rewrite it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("architectures"), list):
        raise ConfigError(f"{path}: not a confirmation written by `nas study confirm` (no architectures list)")
    return doc


def confirmed_frame(confirmation: dict[str, Any], front_only: bool = True) -> pd.DataFrame:
    """One row per confirmed architecture with its *confirmed* means as the objective columns.

    Shaped like the trials table (``number``, ``state``, objectives, ``params``, ``flops``, ``pareto``),
    so selection rules (:mod:`nas.analysis.select`) pick from it as from a study; with ``front_only``
    only the confirmed front is kept, so every rule picks a confirmed non-dominated architecture.
    """
    rows = []
    for arch in confirmation["architectures"]:
        if not arch.get("n_seeds") or (front_only and not arch.get("confirmed_front")):
            continue
        row: dict[str, Any] = {"number": int(arch["number"]), "state": "COMPLETE", "layout": arch.get("layout"),
                               "n_seeds": int(arch["n_seeds"]), "pareto": bool(arch.get("confirmed_front"))}
        for name, summary in (arch.get("confirmed") or {}).items():
            row[name] = summary.get("mean")
            row[f"{name}_std"] = summary.get("std")
        for name in COUNTED:
            row.setdefault(name, arch.get(name))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if col not in ("state", "layout", "pareto"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def confirmed_metadata(confirmation: dict[str, Any], number: int) -> dict[str, Any]:
    """The ``confirmed`` block of an exported genome: budget, seeds and every objective's statistics."""
    arch = next(a for a in confirmation["architectures"] if int(a["number"]) == int(number))
    return {
        "budget": confirmation.get("budget"), "seeds": confirmation.get("seeds"), "n_seeds": arch.get("n_seeds"),
        "confirmed_front": bool(arch.get("confirmed_front")), "study_front": bool(arch.get("study_front")),
        "metrics": {name: {k: s.get(k) for k in ("mean", "std", "n", "ci_low", "ci_high")}
                    for name, s in (arch.get("confirmed") or {}).items()},
        "study_values": arch.get("study"), "dir": confirmation.get("dir"), "date": confirmation.get("date"),
    }


def confirmation_rows(confirmation: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The per-architecture table of a confirmation (for the study report): columns and rows."""
    trained = [o for o in confirmation.get("objectives", {}) if o not in COUNTED]
    columns = ["architecture", "study rank", *[f"study {o}" for o in trained],
               *[f"confirmed {o}" for o in trained], *[f"{o} 95% CI" for o in trained], "seeds", "confirmed front"]
    rows = []
    for a in confirmation["architectures"]:
        row: dict[str, Any] = {"architecture": a.get("name"), "study rank": a.get("study_rank"),
                               "seeds": a.get("n_seeds"), "confirmed front": bool(a.get("confirmed_front"))}
        for o in trained:
            s = (a.get("confirmed") or {}).get(o) or {}
            row[f"study {o}"] = (a.get("study") or {}).get(o)
            row[f"confirmed {o}"] = (None if s.get("mean") is None else
                                     f"{s['mean']:.4g}" + ("" if s.get("std") is None else f" ± {s['std']:.2g}"))
            row[f"{o} 95% CI"] = (None if s.get("ci_low") is None else f"[{s['ci_low']:.4g}, {s['ci_high']:.4g}]")
        rows.append(row)
    return columns, rows
