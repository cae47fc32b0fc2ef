"""Summaries of few, long samples and the regression decision (docs/regression-rule.md#the-current-rule).

Pure functions over lists of floats: no torch, no pytest. The rule, per gated metric:

1. screen slow outliers (median + 3 * 1.4826 * MAD, at most n/5 points, reported);
2. effect r = median(current) / median(baseline), inverted for higher-is-better metrics;
3. practical gate r > 1 + tau, tau = max(floor, 3 * noise CV of the baseline);
4. statistical gate: one-sided exact Mann-Whitney U, p < alpha;
5. REGRESSED = both, INCONCLUSIVE = practical only, DRIFT = statistical only,
   IMPROVED = the mirror of REGRESSED.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import codec
from .metrics import Metric

MAD_SCALE = 1.4826

REGRESSED = "REGRESSED"
IMPROVED = "IMPROVED"
DRIFT = "DRIFT"
INCONCLUSIVE = "INCONCLUSIVE"
OK = "OK"
NO_BASELINE = "NO_BASELINE"
MISMATCH = "MISMATCH"
# A regression this process measured that a run in a fresh process did not reproduce (the test
# passes); set by the confirmation step, never by the rule itself.
UNCONFIRMED = "UNCONFIRMED"
STATUSES = (REGRESSED, IMPROVED, DRIFT, INCONCLUSIVE, OK, NO_BASELINE, MISMATCH, UNCONFIRMED)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation (unscaled)."""
    m = median(values)
    return median([abs(v - m) for v in values])


def robust_cv(values: Sequence[float]) -> float:
    """1.4826 * MAD / median: a coefficient of variation that one slow run cannot inflate."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    if m == 0:
        return 0.0
    return MAD_SCALE * mad(values) / abs(m)


def screen_outliers(values: Sequence[float], higher_is_better: bool) -> Tuple[List[float], List[float]]:
    """Drop the 'slow' outliers: beyond median + 3 * 1.4826 * MAD on the bad side.

    At most n // 5 points are dropped, worst first, so a bimodal sample is never gutted.
    Returns (kept, dropped) with kept in the original order.
    """
    vals = list(values)
    limit = len(vals) // 5
    if limit == 0:
        return vals, []
    m = median(vals)
    spread = 3 * MAD_SCALE * mad(vals)
    sign = -1.0 if higher_is_better else 1.0
    # 'badness' > spread means beyond the screen on the bad side.
    candidates = sorted(
        (i for i, v in enumerate(vals) if sign * (v - m) > spread),
        key=lambda i: sign * (vals[i] - m),
        reverse=True,
    )[:limit]
    drop = set(candidates)
    kept = [v for i, v in enumerate(vals) if i not in drop]
    dropped = [vals[i] for i in sorted(drop)]
    return kept, dropped


def worse_p_value(current: Sequence[float], baseline: Sequence[float], higher_is_better: bool) -> float:
    """One-sided exact Mann-Whitney U p-value for 'current is worse than baseline'."""
    from scipy.stats import mannwhitneyu  # heavy import, only when a decision is made

    alternative = "less" if higher_is_better else "greater"
    res = mannwhitneyu(list(current), list(baseline), alternative=alternative, method="exact")
    return float(res.pvalue)


def better_p_value(current: Sequence[float], baseline: Sequence[float], higher_is_better: bool) -> float:
    return worse_p_value(current, baseline, not higher_is_better)


def min_attainable_p(n_current: int, n_baseline: int) -> float:
    """Smallest one-sided exact Mann-Whitney p-value for these sample sizes: 1 / C(n+m, n)."""
    return 1.0 / math.comb(n_current + n_baseline, n_current)


@dataclass
class Verdict:
    """The decision for one metric of one test."""

    metric: str
    status: str
    current_median: Optional[float] = None
    baseline_median: Optional[float] = None
    change: Optional[float] = None  # current / baseline - 1 (signed, raw direction)
    worse_ratio: Optional[float] = None  # > 1 means worse, direction-aware
    tolerance: Optional[float] = None
    p_value: Optional[float] = None
    alpha: Optional[float] = None
    n_current: int = 0
    n_baseline: int = 0
    dropped_current: List[float] = field(default_factory=list)
    dropped_baseline: List[float] = field(default_factory=list)
    note: str = ""
    gated: bool = True  # whether this verdict can fail the test (see Metric.gates)

    def to_dict(self) -> Dict[str, Any]:
        return codec.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Verdict":
        return codec.from_dict(cls, data)


def decide(
    metric: Metric,
    current: Sequence[float],
    baseline: Sequence[float],
    floor: float,
    alpha: float = 0.05,
    noise_cv: Optional[float] = None,
) -> Verdict:
    """Apply the regression rule to one metric.

    ``floor`` is the relative tolerance floor in force for this metric (default, device
    profile, CLI, ini or marker). ``noise_cv`` overrides the baseline's in-run robust CV,
    e.g. with the between-process noise measured when the baseline was recorded.
    """
    if not current or not baseline:
        return Verdict(metric.name, NO_BASELINE, note="no samples to compare")
    for side, values in (("current", current), ("baseline", baseline)):
        if not all(math.isfinite(v) for v in values):
            # NaN compares as 'not worse' and inf as 'infinitely worse': neither is a verdict.
            raise ValueError(f"{metric.name}: non-finite {side} samples {list(values)}; no verdict is possible")
    cur_kept, cur_drop = screen_outliers(current, metric.higher_is_better)
    base_kept, base_drop = screen_outliers(baseline, metric.higher_is_better)
    cur_med = median(cur_kept)
    base_med = median(base_kept)
    cv = robust_cv(base_kept) if noise_cv is None else max(noise_cv, 0.0)
    tau = metric.tolerance(floor, base_med, cv)
    ratio = metric.worse_ratio(cur_med, base_med)
    change = (cur_med / base_med - 1.0) if base_med else float("inf")
    verdict = Verdict(
        metric=metric.name,
        status=OK,
        current_median=cur_med,
        baseline_median=base_med,
        change=change,
        worse_ratio=ratio,
        tolerance=tau,
        alpha=alpha if metric.statistical else None,
        n_current=len(cur_kept),
        n_baseline=len(base_kept),
        dropped_current=cur_drop,
        dropped_baseline=base_drop,
    )
    practical_worse = ratio > 1.0 + tau
    practical_better = ratio * (1.0 + tau) < 1.0
    if not metric.statistical:
        verdict.status = REGRESSED if practical_worse else IMPROVED if practical_better else OK
        return verdict
    p_worse = worse_p_value(cur_kept, base_kept, metric.higher_is_better)
    p_better = better_p_value(cur_kept, base_kept, metric.higher_is_better)
    stat_worse = p_worse < alpha
    stat_better = p_better < alpha
    if practical_worse:
        verdict.p_value = p_worse
        verdict.status = REGRESSED if stat_worse else INCONCLUSIVE
        if not stat_worse and min_attainable_p(len(cur_kept), len(base_kept)) >= alpha:
            verdict.note = (
                f"{len(cur_kept)} vs {len(base_kept)} samples cannot reach p < {alpha:g}; "
                "record at least 5 runs on each side"
            )
    elif practical_better and stat_better:
        verdict.p_value = p_better
        verdict.status = IMPROVED
    elif stat_worse:
        verdict.p_value = p_worse
        verdict.status = DRIFT
    else:
        verdict.p_value = p_worse
    return verdict


def worst_status(statuses: Sequence[str]) -> str:
    """The status that speaks for a whole test."""
    for status in (MISMATCH, REGRESSED, INCONCLUSIVE, DRIFT, IMPROVED, NO_BASELINE, OK):
        if status in statuses:
            return status
    return OK
