"""Statistics of repeated runs: the one place the project decides whether a difference is real.

Short trainings are noisy: the seed spread of one architecture is often as large as the differences
an ablation is read for. Following the NAS best practices (Lindauer & Hutter, JMLR 2020; Yang et al.,
ICLR 2020), every comparison here is made over seeds, with a 95% confidence interval, and the verdict
follows the interval:

- two variants trained on the same seeds (same data split, same initialisation stream) are compared
  *paired*: a t-test on the per-seed differences (``scipy.stats.ttest_rel``), which removes the part
  of the noise the seed shares between them;
- otherwise *Welch's* t-test (``scipy.stats.ttest_ind(equal_var=False)``), which assumes neither
  equal spreads nor equal seed counts;
- one seed on either side: no interval, no verdict.

``better`` / ``worse`` mean the 95% interval of the difference excludes 0, ``too close`` that it
includes it. No correction for multiple comparisons is made: a table of k rows makes k comparisons,
and about one in twenty true nulls will read ``better`` or ``worse`` by chance.

Rank agreement (a search's short-budget scores against longer confirmations, or a paper's ordering
against measured values) is Kendall's tau-b and Spearman's rho with their p-values, from scipy.
Everything is a thin layer over scipy.stats; the tests compare it with direct scipy calls.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CONFIDENCE", "Comparison", "Summary", "Correlation", "compare", "summarize", "correlate",
           "PAIRED", "WELCH", "TEST_NAMES"]

CONFIDENCE = 0.95
PAIRED, WELCH = "paired", "welch"
TEST_NAMES = {PAIRED: "paired t-test on per-seed differences (scipy.stats.ttest_rel)",
              WELCH: "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)"}


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def _float(value: Any) -> float:
    return float(value) if value is not None and np.isfinite(value) else math.nan


def _as_dict(result: Any) -> dict[str, Any]:
    """A result's fields for JSON: nan (no value) becomes None."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.__dict__.items()}


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and the t-interval of the mean of one set of runs."""

    n: int
    mean: float
    std: float  # nan for n < 2
    ci_low: float  # nan for n < 2
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean ± std and the ``confidence`` t-interval of the mean (``scipy.stats.ttest_1samp``'s interval)."""
    from scipy import stats

    arr = _finite(values)
    n = len(arr)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(arr.mean())
    if n < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(arr.std(ddof=1))
    if std == 0.0:  # every run agrees: the interval is the point (scipy says the same, with a warning)
        return Summary(n, mean, 0.0, mean, mean)
    ci = stats.ttest_1samp(arr, 0.0).confidence_interval(confidence)
    return Summary(n, mean, std, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Comparison:
    """``a - b`` over seeds: the difference of means, its interval, the test and the verdict."""

    delta: float  # mean(a) - mean(b) (paired: the mean of the per-seed differences, the same number)
    ci_low: float  # nan without a test
    ci_high: float
    p_value: float  # nan without a test, or when every difference is identical
    test: str | None  # PAIRED | WELCH | None (fewer than two seeds on a side)
    n_a: int
    n_b: int
    n_pairs: int  # seeds shared by both (paired test only)

    @property
    def verdict(self) -> str | None:
        """``better`` (a > b), ``worse`` or ``too close``; None without a test. Higher-is-better reading."""
        if self.test is None or math.isnan(self.ci_low):
            return None
        if self.ci_low > 0:
            return "better"
        if self.ci_high < 0:
            return "worse"
        return "too close"

    def verdict_for(self, higher_is_better: bool) -> str | None:
        """The verdict when lower values are the better ones (losses, gaps): better and worse swap."""
        v = self.verdict
        if higher_is_better or v in (None, "too close"):
            return v
        return "worse" if v == "better" else "better"

    def to_dict(self) -> dict[str, Any]:
        return {**_as_dict(self), "verdict": self.verdict}


def compare(a: Mapping[int, float] | Sequence[float], b: Mapping[int, float] | Sequence[float],
            confidence: float = CONFIDENCE) -> Comparison:
    """Compare runs ``a`` with runs ``b``.

    Mappings are ``{seed: value}``: when both sides share at least two seeds, the shared seeds are
    compared paired and seeds only one side has are left out (a failed cell breaks its pair); plain
    sequences, or fewer than two shared seeds, are compared with Welch's test over all values.
    """
    from scipy import stats

    def clean(x: Any) -> dict[Any, float]:
        items = x.items() if isinstance(x, Mapping) else enumerate(x)
        return {k: float(v) for k, v in items if v is not None and np.isfinite(float(v))}

    da, db = clean(a), clean(b)
    shared = sorted(set(da) & set(db)) if isinstance(a, Mapping) and isinstance(b, Mapping) else []
    va, vb = np.asarray(list(da.values())), np.asarray(list(db.values()))
    delta = float(va.mean() - vb.mean()) if len(va) and len(vb) else math.nan
    if len(shared) >= 2:
        xa, xb = np.asarray([da[s] for s in shared]), np.asarray([db[s] for s in shared])
        with warnings.catch_warnings():  # identical differences: scipy warns, and returns p nan, CI [d, d]
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_rel(xa, xb)
            ci = res.confidence_interval(confidence)
        return Comparison(float(np.mean(xa - xb)), _float(ci.low), _float(ci.high), _float(res.pvalue), PAIRED,
                          len(va), len(vb), len(shared))
    if len(va) >= 2 and len(vb) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_ind(va, vb, equal_var=False)
            ci = res.confidence_interval(confidence)
        low, high = _float(ci.low), _float(ci.high)
        if math.isnan(low) and np.ptp(va) == 0 and np.ptp(vb) == 0:  # both constant: the interval is the point
            low = high = delta
        return Comparison(delta, low, high, _float(res.pvalue), WELCH, len(va), len(vb), 0)
    return Comparison(delta, math.nan, math.nan, math.nan, None, len(va), len(vb), 0)


@dataclass(frozen=True)
class Correlation:
    """Kendall's tau-b and Spearman's rho between two rankings, with two-sided p-values and 95% intervals
    (Fisher's z with Fieller, Hartley & Pearson's 1957 variances: 0.437/(n-4) for tau, 1.06/(n-3) for rho;
    nan where n is too small for them)."""

    n: int
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    kendall_low: float = math.nan
    kendall_high: float = math.nan
    spearman_low: float = math.nan
    spearman_high: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


def correlate(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Rank correlations of paired values (pairs with a missing side dropped); nan below 3 pairs,
    where a rank correlation cannot be told from chance."""
    from scipy import stats

    pairs = [(float(a), float(b)) for a, b in zip(x, y)
             if a is not None and b is not None and np.isfinite(float(a)) and np.isfinite(float(b))]
    n = len(pairs)
    if n < 3:
        return Correlation(n, math.nan, math.nan, math.nan, math.nan)
    xs, ys = np.asarray(pairs).T
    with warnings.catch_warnings():  # a constant side: scipy warns and returns nan, which is the answer
        warnings.simplefilter("ignore")
        tau = stats.kendalltau(xs, ys)
        rho = stats.spearmanr(xs, ys)
    t, r = _float(tau.statistic), _float(rho.statistic)
    return Correlation(n, t, _float(tau.pvalue), r, _float(rho.pvalue), *fisher_interval(t, n, 0.437, 4),
                       *fisher_interval(r, n, 1.06, 3))


def fisher_interval(value: float, n: int, variance: float, lost: int,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval of a rank correlation through Fisher's z: ``tanh(atanh(r) +- z * sqrt(variance / (n - lost)))``."""
    from scipy import stats

    if not math.isfinite(value) or n <= lost:
        return math.nan, math.nan
    if abs(value) >= 1.0:
        return value, value
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(variance / (n - lost))
    z = math.atanh(value)
    return math.tanh(z - half), math.tanh(z + half)
