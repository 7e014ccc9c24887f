"""nas.stats against direct scipy.stats calls on hand-made samples."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from nas.stats import PAIRED, WELCH, compare, correlate, summarize

A = {0: 0.912, 1: 0.931, 2: 0.925, 3: 0.918}
B = {0: 0.901, 1: 0.915, 2: 0.921, 3: 0.905}


def test_shared_seeds_are_compared_paired_as_scipy_ttest_rel() -> None:
    c = compare(A, B)
    ref = sp.ttest_rel(list(A.values()), list(B.values()))
    ci = ref.confidence_interval(0.95)
    assert c.test == PAIRED and c.n_pairs == 4
    assert c.delta == pytest.approx(np.mean(np.subtract(list(A.values()), list(B.values()))))
    assert (c.ci_low, c.ci_high, c.p_value) == pytest.approx((ci.low, ci.high, ref.pvalue))
    assert c.verdict == "better" and ci.low > 0  # the pairing removes the shared seed noise
    # Unpaired, the same numbers would be too close to call: pairing is what decides here.
    welch = sp.ttest_ind(list(A.values()), list(B.values()), equal_var=False)
    assert welch.confidence_interval(0.95).low < 0
    assert compare(list(A.values()), list(B.values())).verdict == "too close"


def test_different_seeds_use_welch_as_scipy_ttest_ind() -> None:
    a, b = {0: 0.70, 1: 0.74, 2: 0.71}, {5: 0.80, 6: 0.83, 7: 0.86, 8: 0.81}
    c = compare(a, b)
    ref = sp.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.test == WELCH and (c.n_a, c.n_b, c.n_pairs) == (3, 4, 0)
    assert c.delta == pytest.approx(np.mean(list(a.values())) - np.mean(list(b.values())))
    assert (c.ci_low, c.ci_high, c.p_value) == pytest.approx((ci.low, ci.high, ref.pvalue))
    assert c.verdict == "worse" and c.verdict_for(higher_is_better=False) == "better"


def test_a_broken_pair_is_left_out_of_the_paired_test() -> None:
    a, b = {0: 0.9, 1: 0.95, 2: 0.93}, {0: 0.88, 1: 0.91, 3: 0.5}  # seed 2 failed for b, seed 3 for a
    c = compare(a, b)
    ref = sp.ttest_rel([0.9, 0.95], [0.88, 0.91])
    assert c.test == PAIRED and c.n_pairs == 2
    assert (c.delta, c.ci_low, c.ci_high) == pytest.approx((0.03, *ref.confidence_interval(0.95)))


def test_one_seed_gives_no_test_and_no_verdict() -> None:
    for c in (compare({0: 0.9}, {0: 0.8}), compare({0: 0.9, 1: 0.91}, {0: 0.8}), compare([0.9], [0.8, 0.7])):
        assert c.test is None and c.verdict is None and math.isnan(c.ci_low) and math.isnan(c.p_value)
    assert compare({0: 0.9}, {0: 0.8}).delta == pytest.approx(0.1)


def test_identical_samples_are_too_close_with_a_point_interval() -> None:
    same = {0: 0.9, 1: 0.91, 2: 0.92}
    c = compare(same, dict(same))
    ci = sp.ttest_rel(list(same.values()), list(same.values())).confidence_interval(0.95)
    assert c.test == PAIRED and (c.delta, c.ci_low, c.ci_high) == (0.0, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert c.verdict == "too close" and math.isnan(c.p_value)
    shifted = compare({k: v + 0.01 for k, v in same.items()}, same)  # every seed 1 pp better: no doubt
    assert shifted.verdict == "better" and shifted.ci_low == pytest.approx(0.01)
    constant = compare([0.5, 0.5], [0.5, 0.5])
    assert constant.test == WELCH and (constant.ci_low, constant.ci_high) == (0.0, 0.0)
    assert constant.verdict == "too close"


def test_summary_is_the_t_interval_of_the_mean() -> None:
    values = [0.91, 0.93, 0.92, 0.95]
    s = summarize(values)
    ci = sp.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert (s.n, s.mean, s.std) == pytest.approx((4, np.mean(values), np.std(values, ddof=1)))
    assert (s.ci_low, s.ci_high) == pytest.approx((ci.low, ci.high))
    one = summarize([0.9, None, float("nan")])
    assert one.n == 1 and one.mean == 0.9 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert summarize([3.0, 3.0]).to_dict() == {"n": 2, "mean": 3.0, "std": 0.0, "ci_low": 3.0, "ci_high": 3.0}
    assert summarize([]).n == 0


def test_rank_correlations_are_scipys() -> None:
    x = [0.8, 0.85, 0.9, 0.7, 0.95, 0.88]
    y = [0.82, 0.84, 0.93, 0.75, 0.91, 0.9]
    c = correlate(x, y)
    tau, rho = sp.kendalltau(x, y), sp.spearmanr(x, y)
    assert c.n == 6
    assert (c.kendall_tau, c.kendall_p, c.spearman_rho, c.spearman_p) == pytest.approx(
        (tau.statistic, tau.pvalue, rho.statistic, rho.pvalue))
    assert correlate([1, 2, None], [1, 2, 3]).n == 2 and math.isnan(correlate([1, 2], [2, 1]).kendall_tau)
    reversed_ = correlate([1, 2, 3, 4], [4, 3, 2, 1])
    assert reversed_.kendall_tau == pytest.approx(-1.0) and reversed_.spearman_rho == pytest.approx(-1.0)
