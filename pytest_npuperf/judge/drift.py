"""Drift across upgrades: the change since the oldest kept baseline of the same workload.

Each comparison is against the last recorded baseline, so five upgrades that each cost 2% and
each passed (and were recorded) lose 10% without one failing. A baseline entry keeps the medians
of the baselines it replaced (``history``); this module adds the steps between them to today's
change. Pure: no torch, no pytest.

Old baselines keep medians, not samples, so their own noise is not known: the cumulative bounds
are today's bounds shifted by the recorded steps. The chain starts at the oldest history item
that measured the same workload, after the last one recorded with ``--npuperf-reset-drift``
(a drift the team accepted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .metrics import Metric
from .result import Workload

# Set on a baseline entry (and kept in its history) recorded with --npuperf-reset-drift.
RESET_KEY = "drift_reference"


@dataclass(frozen=True)
class Drift:
    """The worse-direction change since ``since`` (a recording time), with today's bounds."""

    since: str
    change: float
    low: float
    high: float
    steps: Tuple[Tuple[str, float], ...]  # (what, worse-direction change of that step)

    def text(self) -> str:
        steps = "; ".join(f"{what} {change * 100:+.1f}%" for what, change in self.steps)
        return (f"drift since the baseline of {self.since or 'an unknown date'}: {self.change * 100:+.1f}% worse, "
                f"at least {self.low * 100:+.1f}%, over {len(self.steps)} steps: {steps}")


def _worse_log(metric: Metric, new: float, old: float) -> Optional[float]:
    if new <= 0 or old <= 0:
        return None
    return math.log(metric.worse_ratio(new, old))


def chain(history: Sequence[Mapping[str, Any]], workload: Workload, reset_here: bool) -> List[Mapping[str, Any]]:
    """The history items the drift runs over, oldest first: the newest contiguous run of items
    with ``workload``, cut after the newest one that reset the drift (none when this entry did)."""
    if reset_here:
        return []
    items: List[Mapping[str, Any]] = []
    for item in reversed(history):
        try:
            same = Workload.from_dict(item.get("workload") or {}) == workload
        except (TypeError, ValueError, KeyError):
            same = False
        if not same:
            break
        items.insert(0, item)
        if item.get(RESET_KEY):
            break
    return items


def drift(
    metric: Metric,
    items: Sequence[Mapping[str, Any]],
    baseline_median: float,
    baseline_recorded_at: str,
    today: Tuple[float, float, float],
) -> Optional[Drift]:
    """The change of ``metric`` since the oldest of ``items``, given today's worse-direction change
    and bounds against the current baseline, ``today`` = (change, low, high)."""
    medians = [(str(i.get("recorded_at", "")), (i.get("medians") or {}).get(metric.name)) for i in items]
    medians = [(when, float(m)) for when, m in medians if isinstance(m, (int, float)) and math.isfinite(m)]
    if not medians:
        return None
    points = medians + [(baseline_recorded_at, baseline_median)]
    steps: List[Tuple[str, float]] = []
    total = 0.0
    for (_, old), (when, new) in zip(points, points[1:]):
        step = _worse_log(metric, new, old)
        if step is None:
            return None
        total += step
        steps.append((f"baseline of {when or 'an unknown date'}", math.expm1(step)))
    change, low, high = today
    if min(change, low, high) <= -1:
        return None  # a value that fell to zero: no ratio to add up
    steps.append(("now", change))
    return Drift(since=medians[0][0], change=math.expm1(total + math.log1p(change)),
                 low=math.expm1(total + math.log1p(low)), high=math.expm1(total + math.log1p(high)),
                 steps=tuple(steps))
