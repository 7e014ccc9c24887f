"""A paper's claims about an ablation, as data, and their verdicts from the trained cells.

An ablation config lists what its paper says about the variants, each claim with its source, so the
reproduction is judged by the same rule every time instead of by eye::

    claims:
      - {better: "depth=12, DeepViT", than: "depth=12, ViT", source: "DeepViT Table 3"}
      - {order: [[C-C-C-C, C-C-C-T], C-C-T-T, C-T-T-T, VIT_REL], metric: val_acc, source: "CoAtNet Sec. 3.2"}
      - {equal: ["shift_ratio=1/12", "shift_ratio=1/16"], within_pp: 0.5, source: "ShiftViT Table 6"}

Kinds (each names variants of the config; checked when the config loads):

- ``better: A, than: B``: A beats B on ``metric``. *agrees* when the 95% interval of the difference
  (:func:`nas.stats.compare`: paired over shared seeds, else Welch) lies on A's side of 0,
  *contradicts* when it lies on B's side, *inconclusive* when it contains 0 or there is one seed.
- ``order: [best, ..., worst]``: the variants rank in this order; an inner list is a tie (the paper's
  "≈"). Judged by Kendall's tau-b between the claimed rank and every cell's value (each seed is one
  observation, so the seed spread counts against the claim): *agrees* when tau > 0 with p < 0.05,
  *contradicts* when tau < 0 with p < 0.05, else *inconclusive*.
- ``equal: [A, B], within_pp: m`` (or ``within: m`` in the metric's own units): A and B differ by
  at most m. *agrees* when the whole 95% interval lies inside [-m, m], *contradicts* when it lies
  wholly outside, else *inconclusive*.

``metric`` (default ``val_acc``) is any per-cell metric of the table; accuracies are better high,
losses, the train-val gap and the collapse measures better low. ``source`` (paper and table or
figure) is required: a claim without one cannot be checked against its paper.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, closest
from nas.stats import CONFIDENCE, compare
from nas.text import pipe_table

__all__ = ["Claim", "ClaimResult", "parse_claims", "evaluate_claims", "claims_markdown", "seed_values", "KINDS",
           "METRIC_DIRECTIONS"]

KINDS = ("better", "order", "equal")
KEYS = {"better": ("better", "than", "metric", "source", "note"),
        "order": ("order", "metric", "source", "note"),
        "equal": ("equal", "within_pp", "within", "metric", "source", "note")}
# metric -> higher is better
METRIC_DIRECTIONS: dict[str, bool] = {"val_acc": True, "train_acc": True, "val_loss": False, "train_loss": False,
                                      "gap": False, "collapse_similarity": False, "similar_blocks": False}
ACCURACIES = ("val_acc", "train_acc", "gap")  # fractions: differences read in percentage points
VERDICTS = ("agrees", "contradicts", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """One validated claim. ``groups`` holds the named variants: ``better`` (A, B) as two groups of one,
    ``order`` best first with ties grouped, ``equal`` one group of two."""

    kind: str
    groups: tuple[tuple[str, ...], ...]
    metric: str = "val_acc"
    source: str = ""
    within: float | None = None  # equal: tolerance in the metric's units (within_pp / 100 for accuracies)
    note: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(v for g in self.groups for v in g)

    def statement(self) -> str:
        if self.kind == "better":
            return f"{self.groups[0][0]} > {self.groups[1][0]} ({self.metric})"
        if self.kind == "order":
            return " > ".join(" ≈ ".join(g) for g in self.groups) + f" ({self.metric})"
        a, b = self.groups[0]
        return f"{a} ≈ {b} within {_amount(self.within or 0.0, self.metric)} ({self.metric})"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "better":
            doc: dict[str, Any] = {"better": self.groups[0][0], "than": self.groups[1][0]}
        elif self.kind == "order":
            doc = {"order": [list(g) if len(g) > 1 else g[0] for g in self.groups]}
        else:
            doc = {"equal": list(self.groups[0])}
            doc["within_pp" if self.metric in ACCURACIES else "within"] = (
                round((self.within or 0.0) * 100, 10) if self.metric in ACCURACIES else self.within)
        doc.update({"metric": self.metric, "source": self.source})
        if self.note:
            doc["note"] = self.note
        return doc


def _amount(value: float, metric: str) -> str:
    return f"{value * 100:.2f} pp" if metric in ACCURACIES else f"{value:.4g}"


# -- parsing ----------------------------------------------------------------------------------------
def parse_claims(raw: Any, variants: Sequence[str], label: str = "ablation config") -> tuple[Claim, ...]:
    """Validate the ``claims`` list of a config against its variant names; one-line errors name the claim."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"{label}: claims must be a list of claims such as {{better: A, than: B, source: ...}}, "
                          f"got {type(raw).__name__}")
    return tuple(_parse_one(f"{label}: claims[{i}]", item, variants) for i, item in enumerate(raw))


def _parse_one(where: str, item: Any, variants: Sequence[str]) -> Claim:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping such as {{better: A, than: B, source: ...}}, got {item!r}")
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        keys = ", ".join(map(str, item)) or "none"
        what = "names no claim kind" if not kinds else f"names {len(kinds)} claim kinds ({', '.join(kinds)})"
        raise ConfigError(f"{where} {what}; give exactly one of better (with than), order, equal (with within_pp); "
                          f"got keys {keys}")
    kind = kinds[0]
    for key in item:
        if key not in KEYS[kind]:
            raise ConfigError(f"{where}: unknown key {key!r} in a {kind} claim{closest(str(key), KEYS[kind])}; "
                              f"known: {', '.join(KEYS[kind])}")
    source = item.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: a claim needs its source (paper and table or figure), e.g. "
                          f"source: \"DeepViT Table 3\"")
    metric = item.get("metric", "val_acc")
    if metric not in METRIC_DIRECTIONS:
        raise ConfigError(f"{where}: metric must be one of {', '.join(METRIC_DIRECTIONS)}, got {metric!r}"
                          f"{closest(str(metric), METRIC_DIRECTIONS)}")

    def name(value: Any) -> str:
        if not isinstance(value, str) or value not in variants:
            raise ConfigError(f"{where}: unknown variant {value!r}{closest(str(value), variants)}; "
                              f"variants: {', '.join(variants)}")
        return value

    within = None
    if kind == "better":
        if "than" not in item:
            raise ConfigError(f"{where}: a better claim needs than: the variant it beats")
        groups: tuple[tuple[str, ...], ...] = ((name(item["better"]),), (name(item["than"]),))
    elif kind == "order":
        raw = item["order"]
        if not isinstance(raw, (list, tuple)) or len(raw) < 2:
            raise ConfigError(f"{where}: order must list at least two variants, best first, got {raw!r}")
        groups = tuple(tuple(name(v) for v in g) if isinstance(g, (list, tuple)) else (name(g),) for g in raw)
        if any(not g for g in groups) or len(groups) < 2:
            raise ConfigError(f"{where}: order needs at least two ranks, each a variant or a list of tied ones")
    else:
        pair = item["equal"]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"{where}: equal must list two variants, got {pair!r}")
        groups = ((name(pair[0]), name(pair[1])),)
        given = [k for k in ("within_pp", "within") if k in item]
        if len(given) != 1:
            raise ConfigError(f"{where}: an equal claim needs its tolerance: within_pp (percentage points, for "
                              f"accuracies) or within (the metric's units)")
        value = item[given[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}: {given[0]} must be a finite number >= 0, got {value!r}")
        if given[0] == "within_pp" and metric not in ACCURACIES:
            raise ConfigError(f"{where}: within_pp applies to accuracies ({', '.join(ACCURACIES)}); "
                              f"for {metric} give within in its units")
        within = float(value) / 100 if given[0] == "within_pp" else float(value)
    flat = [v for g in groups for v in g]
    if len(set(flat)) != len(flat):
        raise ConfigError(f"{where}: a variant appears twice in one claim: {flat!r}")
    return Claim(kind, groups, str(metric), source.strip(), within, str(item.get("note") or "").strip())


# -- evaluation -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    verdict: str  # agrees | contradicts | inconclusive
    evidence: str  # the numbers behind the verdict, one line
    stats: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim.to_dict(), "statement": self.claim.statement(), "verdict": self.verdict,
                "evidence": self.evidence, "stats": self.stats}


def seed_values(records: Sequence[Mapping[str, Any]], variant: str, metric: str) -> dict[int, float]:
    """``{seed: value}`` of ``metric`` over the variant's complete cells, finite values only (``gap`` =
    train_acc - val_acc per cell): what a claim, or a confirmation's statistics, are computed from."""
    out: dict[int, float] = {}
    for r in records:
        if r.get("variant") != variant or r.get("status") != "complete":
            continue
        value = (r.get("train_acc") - r.get("val_acc") if metric == "gap" and r.get("train_acc") is not None
                 and r.get("val_acc") is not None else r.get(metric))
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[int(r["seed"])] = float(value)
    return out


def _interval(c: Any, metric: str) -> str:
    if c.test is None:
        return f"Δ {_signed(c.delta, metric)}, no interval (fewer than two seeds)"
    p = "" if math.isnan(c.p_value) else f", p = {c.p_value:.3g}"
    return (f"Δ {_signed(c.delta, metric)}, 95% CI [{_signed(c.ci_low, metric)}, {_signed(c.ci_high, metric)}]"
            f"{p} ({c.test}, n = {c.n_pairs if c.test == 'paired' else f'{c.n_a}+{c.n_b}'})")


def _signed(value: float, metric: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value * 100:+.2f} pp" if metric in ACCURACIES else f"{value:+.4g}"


def evaluate_claim(claim: Claim, records: Sequence[Mapping[str, Any]]) -> ClaimResult:
    metric, higher = claim.metric, METRIC_DIRECTIONS[claim.metric]
    if claim.kind == "better":
        a, b = claim.groups[0][0], claim.groups[1][0]
        c = compare(seed_values(records, a, metric), seed_values(records, b, metric))
        v = c.verdict_for(higher)
        verdict = {"better": "agrees", "worse": "contradicts"}.get(v or "", "inconclusive")
        return ClaimResult(claim, verdict, _interval(c, metric), c.to_dict())
    if claim.kind == "equal":
        a, b = claim.groups[0]
        c = compare(seed_values(records, a, metric), seed_values(records, b, metric))
        m = claim.within or 0.0
        if c.test is None or math.isnan(c.ci_low):
            verdict = "inconclusive"
        elif -m <= c.ci_low and c.ci_high <= m:
            verdict = "agrees"
        elif c.ci_low > m or c.ci_high < -m:
            verdict = "contradicts"
        else:
            verdict = "inconclusive"
        return ClaimResult(claim, verdict, _interval(c, metric) + f"; tolerance ±{_amount(m, metric)}",
                           {**c.to_dict(), "within": m})
    return _evaluate_order(claim, records)


def _evaluate_order(claim: Claim, records: Sequence[Mapping[str, Any]]) -> ClaimResult:
    from nas.stats import correlate

    metric, higher = claim.metric, METRIC_DIRECTIONS[claim.metric]
    claimed, observed, means = [], [], {}
    for rank, group in enumerate(claim.groups):
        for variant in group:
            values = seed_values(records, variant, metric)
            if values:
                means[variant] = sum(values.values()) / len(values)
            for value in values.values():
                claimed.append(-rank)  # higher = claimed better
                observed.append(value if higher else -value)
    corr = correlate(claimed, observed)
    alpha = 1 - CONFIDENCE
    if math.isnan(corr.kendall_tau) or math.isnan(corr.kendall_p) or corr.kendall_p >= alpha:
        verdict = "inconclusive"
    else:
        verdict = "agrees" if corr.kendall_tau > 0 else "contradicts"
    ranked = sorted(means, key=lambda v: means[v], reverse=higher)
    seen = " > ".join(ranked) if ranked else "no complete cells"
    tau = "-" if math.isnan(corr.kendall_tau) else f"{corr.kendall_tau:+.3f}"
    p = "-" if math.isnan(corr.kendall_p) else f"{corr.kendall_p:.3g}"
    evidence = f"Kendall tau-b {tau}, p = {p} over {corr.n} cells; by mean: {seen}"
    return ClaimResult(claim, verdict, evidence, {**corr.to_dict(), "means": means, "observed_order": ranked})


def evaluate_claims(claims: Sequence[Claim], records: Sequence[Mapping[str, Any]]) -> list[ClaimResult]:
    """Every claim judged from the stored cell records (the table's own data)."""
    return [evaluate_claim(c, records) for c in claims]


def claims_markdown(results: Sequence[ClaimResult]) -> str:
    """The generated "Claims" section: one row per claim with its verdict, numbers and source."""
    if not results:
        return ""
    table = pipe_table(["claim", "source", "verdict", "evidence"],
                       ([r.claim.statement(), r.claim.source, f"**{r.verdict}**", r.evidence] for r in results))
    counts = ", ".join(f"{sum(r.verdict == v for r in results)} {v}" for v in VERDICTS)
    notes = [f"- {r.claim.statement()}: {r.claim.note}" for r in results if r.claim.note]
    text = table + f"\n\n{counts}. Verdicts use 95% intervals and p < 0.05 (see nas/ablation/claims.py)."
    return text + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
