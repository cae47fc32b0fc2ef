"""Verdict names, the per-metric Verdict and robust summaries of few, long samples.

Pure: no torch, no pytest. The rule that fills a Verdict is in ``gate.py`` (timing metrics) and
``compare.py`` (deterministic ones); docs/regression-rule.md says it in words.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from . import codec

MAD_SCALE = 1.4826

REGRESSED = "REGRESSED"
IMPROVED = "IMPROVED"
DRIFT = "DRIFT"
INCONCLUSIVE = "INCONCLUSIVE"  # undecided when the run could take no more samples
# Neither inside the budget nor clearly beyond it yet: take more samples. Never a final verdict.
UNDECIDED = "UNDECIDED"
OK = "OK"
NO_BASELINE = "NO_BASELINE"
MISMATCH = "MISMATCH"
# A regression this process measured that a run in a fresh process did not reproduce (the test
# passes); set by the confirmation step, never by the rule itself.
UNCONFIRMED = "UNCONFIRMED"
STATUSES = (REGRESSED, IMPROVED, DRIFT, INCONCLUSIVE, OK, NO_BASELINE, MISMATCH, UNCONFIRMED, UNDECIDED)


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


@dataclass
class Verdict:
    """The decision for one metric of one test."""

    metric: str
    status: str
    current_median: Optional[float] = None
    baseline_median: Optional[float] = None
    change: Optional[float] = None  # current / baseline - 1 of the medians (signed, raw direction)
    budget: Optional[float] = None  # the regression budget in force (memory: with its absolute slack)
    # The change in the worse direction (+0.05 = 5% worse) and its one-sided bounds at ``level``
    # (timing metrics; a deterministic metric has its change as both bounds).
    worse_change: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    level: Optional[float] = None
    # The smallest regression this run could tell from the budget (80% power; timing metrics).
    resolvable: Optional[float] = None
    n_current: int = 0
    n_baseline: int = 0
    processes: int = 0
    baseline_processes: int = 0
    noise_source: str = ""
    # The plan of an UNDECIDED verdict (a power calculation on the noise measured so far): runs
    # per process, and processes, that would settle it; -1: not within the cap.
    runs_needed: int = 0
    processes_needed: int = 0
    # The worse-direction change since the oldest kept baseline of the same workload (drift.py).
    drift: Optional[float] = None
    note: str = ""
    gated: bool = True  # whether this verdict can fail the test (see Metric.gates)

    def bounds_text(self) -> str:
        """'+0.4%, at most +2.1% (95%)' (worse-positive), or the change alone."""
        if self.worse_change is None:
            return ""
        text = f"{self.worse_change * 100:+.1f}%"
        if self.level is not None and self.high is not None and self.low is not None:
            text += f" worse, at least {self.low * 100:+.1f}%, at most {self.high * 100:+.1f}% ({self.level:.0%})"
        return text

    def to_dict(self) -> Dict[str, Any]:
        return codec.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Verdict":
        return codec.from_dict(cls, data)


def worst_status(statuses: Sequence[str]) -> str:
    """The status that speaks for a whole test."""
    for status in (MISMATCH, REGRESSED, UNDECIDED, INCONCLUSIVE, DRIFT, IMPROVED, NO_BASELINE, OK):
        if status in statuses:
            return status
    return OK
