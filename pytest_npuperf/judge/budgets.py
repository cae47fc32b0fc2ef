"""Absolute budgets: limits on a metric's median that a test's marker or code sets."""

from __future__ import annotations

import statistics
from typing import List, Mapping

from .metrics import METRICS, format_value
from .result import Result


def check_budgets(result: Result, budgets: Mapping[str, float]) -> List[str]:
    """Absolute limits on a metric's median: upper for lower-is-better, lower otherwise."""
    failures = []
    for name, limit in budgets.items():
        metric = METRICS[name]
        values = result.values(name)
        if not values:
            failures.append(f"{name}: no value measured on this device, budget {format_value(metric, limit)} unchecked")
            continue
        med = statistics.median(values)
        bad = med < limit if metric.higher_is_better else med > limit
        if bad:
            side = "at least" if metric.higher_is_better else "at most"
            failures.append(
                f"{name}: median {format_value(metric, med)} breaks the budget of {side} "
                f"{format_value(metric, limit)}"
            )
    return failures
