"""Paper claims as data: validation at load, and each kind's verdict on hand-made cell records."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy import stats as sp

from nas.ablation.claims import claims_markdown, evaluate_claims, parse_claims
from nas.ablation.config import AblationConfig, load_ablation_config
from nas.errors import ConfigError

VARIANTS = ["a", "b", "c"]
BASE = {"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "A", "depths": 1, "dims": 32, "heads": 2}
AXES = [{"field": "stages.0.depth", "values": [1, 2, 3], "labels": VARIANTS}]


def cells(values: dict[str, list[float]], metric: str = "val_acc") -> list[dict[str, Any]]:
    """One complete record per (variant, seed), seeds 0..n-1 in list order."""
    out = []
    for variant, vals in values.items():
        for seed, v in enumerate(vals):
            rec = {"variant": variant, "seed": seed, "status": "complete", "val_acc": 0.5, "train_acc": 0.9}
            rec[metric] = v
            out.append(rec)
    return out


def verdict(claim: dict[str, Any], records: list[dict[str, Any]]) -> str:
    [result] = evaluate_claims(parse_claims([{"source": "Paper Table 1", **claim}], VARIANTS), records)
    return result.verdict


def test_better_agrees_contradicts_or_is_inconclusive() -> None:
    claim = {"better": "a", "than": "b"}
    assert verdict(claim, cells({"a": [0.90, 0.92, 0.91], "b": [0.85, 0.86, 0.86]})) == "agrees"
    assert verdict(claim, cells({"a": [0.80, 0.82, 0.81], "b": [0.85, 0.86, 0.86]})) == "contradicts"
    assert verdict(claim, cells({"a": [0.90, 0.82, 0.88], "b": [0.85, 0.86, 0.86]})) == "inconclusive"
    assert verdict(claim, cells({"a": [0.99], "b": [0.10]})) == "inconclusive"  # one seed: no test
    # A loss is better when lower: the same numbers flip the verdict.
    lower = {"better": "a", "than": "b", "metric": "train_loss"}
    assert verdict(lower, cells({"a": [0.90, 0.92, 0.91], "b": [0.85, 0.86, 0.86]}, "train_loss")) == "contradicts"


def test_better_evidence_is_the_paired_test() -> None:
    a, b = [0.90, 0.92, 0.91], [0.85, 0.88, 0.86]
    [r] = evaluate_claims(parse_claims([{"better": "a", "than": "b", "source": "T1"}], VARIANTS),
                          cells({"a": a, "b": b}))
    ci = sp.ttest_rel(a, b).confidence_interval(0.95)
    assert r.stats["test"] == "paired"
    assert (r.stats["ci_low"], r.stats["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert "+4.67 pp" in r.evidence and "paired, n = 3" in r.evidence


def test_order_is_judged_by_kendall_tau_over_cells() -> None:
    claim = {"order": ["a", "b", "c"]}
    good = {"a": [0.95, 0.96, 0.94], "b": [0.90, 0.91, 0.89], "c": [0.80, 0.82, 0.81]}
    [r] = evaluate_claims(parse_claims([{**claim, "source": "S"}], VARIANTS), cells(good))
    ranks = [0] * 3 + [-1] * 3 + [-2] * 3
    tau = sp.kendalltau(ranks, good["a"] + good["b"] + good["c"])
    assert r.verdict == "agrees" and r.stats["kendall_tau"] == pytest.approx(tau.statistic)
    assert r.stats["kendall_p"] == pytest.approx(tau.pvalue) and r.stats["observed_order"] == ["a", "b", "c"]
    reverse = {"a": good["c"], "b": good["b"], "c": good["a"]}
    assert verdict(claim, cells(reverse)) == "contradicts"
    mixed = {"a": [0.9, 0.8, 0.95], "b": [0.85, 0.92, 0.83], "c": [0.88, 0.86, 0.9]}
    assert verdict(claim, cells(mixed)) == "inconclusive"
    # A tie in the claim (the paper's "≈"): a and b together above c.
    tied = {"a": [0.90, 0.92, 0.91], "b": [0.92, 0.90, 0.91], "c": [0.80, 0.82, 0.81]}
    assert verdict({"order": [["a", "b"], "c"]}, cells(tied)) == "agrees"


def test_equal_within_a_tolerance() -> None:
    claim = {"equal": ["a", "b"], "within_pp": 2.0}
    assert verdict(claim, cells({"a": [0.900, 0.910, 0.905], "b": [0.901, 0.908, 0.906]})) == "agrees"
    assert verdict(claim, cells({"a": [0.95, 0.96, 0.955], "b": [0.85, 0.86, 0.855]})) == "contradicts"
    assert verdict(claim, cells({"a": [0.90, 0.95, 0.85], "b": [0.90, 0.88, 0.91]})) == "inconclusive"
    assert verdict({"equal": ["a", "b"], "within": 0.05, "metric": "val_loss"},
                   cells({"a": [1.0, 1.01, 1.02], "b": [1.0, 1.0, 1.03]}, "val_loss")) == "agrees"


@pytest.mark.parametrize("claims, message", [
    ([{"better": "a", "than": "z", "source": "T"}], "claims[0]: unknown variant 'z'; variants: a, b, c"),
    ([{"better": "a", "than": "b", "source": "T"}, {"beter": "a", "than": "b", "source": "T"}],
     "claims[1] names no claim kind; give exactly one of better (with than), order, equal"),
    ([{"better": "a", "order": ["a", "b"], "source": "T"}], "claims[0] names 2 claim kinds (better, order)"),
    ([{"better": "a", "than": "b"}], "claims[0]: a claim needs its source"),
    ([{"order": ["a", "c", "bb"], "source": "T"}], "unknown variant 'bb'; did you mean 'b'?"),
    ([{"order": ["a"], "source": "T"}], "order must list at least two variants"),
    ([{"equal": ["a", "b"], "source": "T"}], "an equal claim needs its tolerance"),
    ([{"equal": ["a", "b"], "within_pp": float("nan"), "source": "T"}], "within_pp must be a finite number >= 0"),
    ([{"better": "a", "than": "a", "source": "T"}], "a variant appears twice in one claim"),
    ([{"better": "a", "than": "b", "metric": "val_ac", "source": "T"}], "did you mean 'val_acc'?"),
    ([{"better": "a", "than": "b", "source": "T", "sorce": 1}], "unknown key 'sorce' in a better claim"),
    ({"better": "a"}, "claims must be a list of claims"),
])
def test_bad_claims_are_refused_at_load_naming_the_claim(claims: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        AblationConfig.from_dict({"name": "x", "base": BASE, "axes": AXES, "claims": claims}, label="x.yaml")
    text = str(err.value)
    assert message in text and text.startswith("x.yaml: ") and "\n" not in text


def test_claims_load_from_a_file_round_trip_and_render(tmp_path: Path) -> None:
    doc = {"name": "x", "base": BASE, "axes": AXES, "claims": [
        {"better": "c", "than": "a", "source": "Paper Table 2", "note": "deeper is better"},
        {"order": [["c", "b"], "a"], "metric": "gap", "source": "Paper Fig. 1"},
        {"equal": ["a", "b"], "within_pp": 0.5, "source": "Paper Sec. 3"}]}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_ablation_config(path)
    assert [c.kind for c in config.claims] == ["better", "order", "equal"]
    assert config.claims[1].groups == (("c", "b"), ("a",)) and config.claims[2].within == pytest.approx(0.005)
    again = AblationConfig.from_dict({**doc, "claims": config.to_dict()["claims"]})  # the stored form reloads
    assert again.claims == config.claims
    results = evaluate_claims(config.claims, cells({"a": [0.8, 0.81], "b": [0.9, 0.91], "c": [0.95, 0.96]}))
    text = claims_markdown(results)
    assert "| c > a (val_acc) | Paper Table 2 | **agrees** |" in text
    assert "c ≈ b > a (gap)" in text and "a ≈ b within 0.50 pp (val_acc)" in text
    assert "- c > a (val_acc): deeper is better" in text


def test_every_shipped_ablation_states_its_papers_claims() -> None:
    root = Path(__file__).resolve().parents[1] / "nas" / "configs" / "ablations"
    for path in sorted(root.glob("*.yaml")):
        config = load_ablation_config(path)
        assert config.claims, f"{path.name} states no claims"
        assert all(c.source for c in config.claims)
