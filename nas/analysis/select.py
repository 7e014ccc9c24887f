"""Selection rules: which trial of a study to export, written as a short text.

Grammar (spaces around operators optional, numbers like ``5e7`` allowed)::

    max:NAME | min:NAME | knee          [ where COND ( , | and ) COND ... ]
    COND := NAME ( <= | >= | < | > | == ) NUMBER

``NAME`` is any numeric column of the trials table: the objectives, ``params``, ``flops``,
``latency_ms``, ``val_loss``, ``train_acc``, ``train_loss``, ``img_per_s`` ...

Rules pick among COMPLETE trials only (pruned, infeasible and failed trials have no trustworthy
final metrics), after the ``where`` conditions:

- ``max:NAME`` / ``min:NAME``: the best value of NAME over all matching complete trials, not only the
  front (the best of one objective is on the front anyway, unless tied). Ties are broken by the
  study's objectives in order and their directions, then by the lower trial number.
- ``knee``: among the non-dominated matching trials, in objective space normalised to [0, 1] per
  objective over that front (0 = best). With two objectives it is the point farthest from the line
  joining the front's two extremes, on the side of the ideal point: where trading one objective for
  the other stops paying. With more objectives, a front of one or two points, or a front with no point
  inside that line, it is the point closest to the ideal point (0, ..., 0). Ties: lower trial number.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nas.pareto import pareto_mask, to_losses
from nas.errors import ConfigError
from nas.fields import show

__all__ = ["RuleError", "Condition", "Rule", "Selection", "parse_rule", "select", "describe_columns"]

OPS = ("<=", ">=", "==", "<", ">")
_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_HEAD = re.compile(r"^\s*(?:(max|min)\s*:\s*([A-Za-z_][A-Za-z0-9_.]*)|(knee))\s*$", re.IGNORECASE)
# Columns listed (with their ranges) in error messages, after the objectives.
_LISTED = ("params", "flops", "latency_ms", "val_acc", "val_loss", "train_acc", "train_loss", "img_per_s",
           "epochs", "duration_s")
_UNITS = {"flops": " MACs", "latency_ms": " ms", "duration_s": " s", "img_per_s": " img/s"}


class RuleError(ConfigError):
    """A selection rule that does not parse, names an unknown column, or matches no complete trial."""


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: float

    def holds(self, column: pd.Series) -> pd.Series:
        x = pd.to_numeric(column, errors="coerce")
        result = {"<=": x <= self.value, ">=": x >= self.value, "<": x < self.value, ">": x > self.value,
                  "==": x == self.value}[self.op]
        return result.fillna(False).astype(bool)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_fmt(self.value)}"


@dataclass(frozen=True)
class Rule:
    text: str
    kind: str  # "max" | "min" | "knee"
    name: str | None  # the column of max/min
    conditions: tuple[Condition, ...] = ()

    @property
    def names(self) -> list[str]:
        return ([self.name] if self.name else []) + [c.name for c in self.conditions]


@dataclass(frozen=True)
class Selection:
    """The trial a rule picked, and why."""

    rule: Rule
    number: int
    record: dict[str, Any]  # the trial's row of the trials table
    candidates: int  # complete trials that met the conditions
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.text, "number": self.number, "candidates": self.candidates, "reason": self.reason}


def parse_rule(text: str, known: str = "") -> Rule:
    """Parse a rule; ``known`` (the study's columns and ranges) is appended to error messages."""
    suffix = f"; known: {known}" if known else ""
    raw = str(text or "").strip()
    split = re.fullmatch(r"(.*?)(\s+where\b(.*))?", raw, flags=re.S)
    assert split is not None  # the pattern matches any text
    head, has_where, tail = split.group(1), split.group(2) is not None, split.group(3) or ""
    m = _HEAD.match(head)
    if not m:
        raise RuleError(f"rule {show(raw)} does not parse: expected max:NAME, min:NAME or knee, optionally followed "
                        f"by 'where NAME<=NUMBER, ...'{suffix}")
    conditions: list[Condition] = []
    if has_where:
        parts = [p for p in re.split(r"\s*,\s*|\s+and\s+", tail.strip()) if p.strip()]
        if not parts:
            raise RuleError(f"rule {show(raw)}: nothing after 'where'; give conditions such as flops<=5e7{suffix}")
        for part in parts:
            c = _COND.match(part)
            if not c:
                raise RuleError(f"rule {show(raw)}: condition {show(part.strip())} does not parse; write NAME OP "
                                f"NUMBER with OP one of {' '.join(OPS)}, e.g. flops<=5e7{suffix}")
            value = float(c.group(3))
            if not math.isfinite(value):
                raise RuleError(f"rule {show(raw)}: condition {show(part.strip())} compares with {c.group(3)[:20]}, "
                                f"which is not a finite number{suffix}")
            conditions.append(Condition(c.group(1), c.group(2), value))
    kind = (m.group(1) or "knee").lower()
    return Rule(text=raw, kind=kind, name=m.group(2), conditions=tuple(conditions))


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.3g}" if abs(value) >= 1e4 or abs(value) < 1e-3 and value else f"{value:.4g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _numeric(frame: pd.DataFrame) -> list[str]:
    out = []
    for col in frame.columns:
        if col in ("number", "pareto") or frame[col].dtype == bool:
            continue
        if pd.api.types.is_numeric_dtype(frame[col]):
            out.append(str(col))
    return out


def describe_columns(frame: pd.DataFrame, objectives: Mapping[str, str]) -> str:
    """``val_acc (0.1–0.8), flops (2.46e5–8.6e6 MACs), ...`` over the COMPLETE trials."""
    complete = frame[frame["state"] == "COMPLETE"] if "state" in frame else frame
    numeric = _numeric(frame)
    parts = []
    for name in dict.fromkeys([*objectives, *_LISTED]):
        if name not in numeric:
            continue
        col = pd.to_numeric(complete[name], errors="coerce").dropna()
        if len(col):
            lo, hi = _fmt(float(col.min())), _fmt(float(col.max()))
            rng = (lo if lo == hi else f"{lo}–{hi}") + _UNITS.get(name, "")
        else:
            rng = "no values"
        parts.append(f"{name} ({rng})")
    others = [c for c in numeric if c not in objectives and c not in _LISTED]
    if others:
        parts.append(f"and {len(others)} more numeric columns such as {', '.join(others[:3])}")
    return ", ".join(parts) or "none (the study has no complete trials)"


def select(frame: pd.DataFrame, rule: str | Rule, objectives: Mapping[str, str], *,
           population: str = "complete trials") -> Selection:
    """Pick the trial ``rule`` names from a trials table (:func:`nas.analysis.study.load_study`).

    ``objectives`` maps each objective to ``maximize`` / ``minimize``, in the study's order;
    ``population`` names the rows in the selection's reason (a confirmed front's rows are architectures).
    """
    known = describe_columns(frame, objectives) if not frame.empty else "none (the study has no trials)"
    rule = rule if isinstance(rule, Rule) else parse_rule(rule, known)
    numeric = set(_numeric(frame)) if not frame.empty else set()
    for name in rule.names:
        if name not in numeric:
            raise RuleError(f"rule {show(rule.text)} names no objective or metric of this study: "
                            f"{show(name)}; known: {known}")
    complete = frame[frame["state"] == "COMPLETE"] if not frame.empty else frame
    if complete.empty:
        raise RuleError(f"rule {show(rule.text)}: the study has no COMPLETE trial to pick from")
    mask = pd.Series(True, index=complete.index)
    for cond in rule.conditions:
        mask &= cond.holds(complete[cond.name])
    pool = complete[mask]
    if pool.empty:
        where = " and ".join(str(c) for c in rule.conditions)
        raise RuleError(f"rule {show(rule.text)} matches no complete trial ({len(complete)} complete, none with "
                        f"{where}); ranges: {known}")
    if rule.kind == "knee":
        number, reason = _knee(pool, objectives)
    else:
        number, reason = _extreme(pool, rule, objectives)
    scope = f" among {len(pool)} {population}" + (f" with {' and '.join(map(str, rule.conditions))}"
                                                     if rule.conditions else "")
    record = pool[pool["number"] == number].iloc[0].to_dict()
    return Selection(rule=rule, number=int(number), record=record, candidates=len(pool), reason=reason + scope)


def _extreme(pool: pd.DataFrame, rule: Rule, objectives: Mapping[str, str]) -> tuple[int, str]:
    assert rule.name is not None
    col = pd.to_numeric(pool[rule.name], errors="coerce")
    pool = pool[col.notna()]
    if pool.empty:
        raise RuleError(f"rule {show(rule.text)}: no matching complete trial has a value of {rule.name}")
    keys = [rule.name] + [o for o in objectives if o != rule.name] + ["number"]
    ascending = [rule.kind == "min"] + [objectives[o] == "minimize" for o in keys[1:-1]] + [True]
    best = pool.sort_values(keys, ascending=ascending, kind="mergesort").iloc[0]
    word = "largest" if rule.kind == "max" else "smallest"
    return int(best["number"]), f"{word} {rule.name} ({_fmt(float(best[rule.name]))})"


def _knee(pool: pd.DataFrame, objectives: Mapping[str, str]) -> tuple[int, str]:
    names, directions = list(objectives), list(objectives.values())
    values = pool[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ok = np.all(np.isfinite(values), axis=1)
    front = pool[ok][pareto_mask(values[ok], directions)]
    losses = to_losses(front[names].to_numpy(dtype=float), directions)
    numbers = front["number"].to_numpy()
    order = np.argsort(numbers, kind="stable")  # ties resolve to the lower trial number
    losses, numbers = losses[order], numbers[order]
    lo, hi = losses.min(axis=0), losses.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (losses - lo) / span  # 0 = best on the front, 1 = worst
    size = f"front of {len(numbers)}"
    if len(names) == 2 and len(numbers) >= 3:
        a = norm[np.argmin(norm[:, 0] + 1e-9 * norm[:, 1])]  # best in objective 0
        b = norm[np.argmin(norm[:, 1] + 1e-9 * norm[:, 0])]  # best in objective 1
        direction = b - a
        length = float(np.hypot(*direction))
        if length > 0:
            # signed distance to the line a-b; positive on the ideal point's side (towards the origin)
            cross = direction[0] * (norm[:, 1] - a[1]) - direction[1] * (norm[:, 0] - a[0])
            ideal_side = direction[0] * (0 - a[1]) - direction[1] * (0 - a[0])
            dist = cross / length * (1.0 if ideal_side >= 0 else -1.0)
            i = int(np.argmax(dist))
            if dist[i] > 1e-12:
                return int(numbers[i]), f"knee of the {size}: farthest from the line joining its extremes"
    i = int(np.argmin(np.linalg.norm(norm, axis=1)))
    return int(numbers[i]), f"knee of the {size}: closest to the ideal point"
