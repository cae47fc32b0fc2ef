"""A Result against its baseline entry: one Verdict per metric, and the failure message."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol

from ..errors import BaselineError
from ..stack.changes import stack_changes
from . import codec
from .metrics import METRICS, TIME_METRICS, Metric, format_value
from .result import Result, Workload
from .stats import MISMATCH, NO_BASELINE, OK, REGRESSED, Verdict, decide, worst_status


class StoredBaseline(Protocol):
    """What the judge reads of a stored baseline (the store's BaselineEntry, or a results file's
    result in ``npuperf compare``)."""

    workload: Workload
    stack: Dict[str, Any]
    noise_cv: Dict[str, float]

    def values(self, metric: str) -> List[float]: ...

ACCELERATOR_KINDS = ("npu", "cuda")
NO_PROCESS_NOISE = ("no between-process noise in the baseline: tolerance from in-process noise only "
                    "(record it again with --npuperf-save-baseline, 3 fresh processes by default)")


@dataclass
class Comparison:
    status: str
    verdicts: List[Verdict] = field(default_factory=list)
    mismatch: List[str] = field(default_factory=list)
    stack_changes: List[str] = field(default_factory=list)
    confirmation: str = ""
    profile: str = ""

    def verdict(self, metric: str) -> Optional[Verdict]:
        for v in self.verdicts:
            if v.metric == metric:
                return v
        return None

    def to_dict(self) -> Dict[str, Any]:
        return codec.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Comparison":
        return codec.from_dict(cls, data)


def floors_for(time_floor: Optional[float], overrides: Mapping[str, float]) -> Dict[str, float]:
    """The tolerance floor per metric: default, raised for a noisy device, then user overrides."""
    floors = {name: m.floor for name, m in METRICS.items()}
    if time_floor is not None:
        for name in TIME_METRICS:
            floors[name] = max(floors[name], time_floor)
    floors.update(overrides)
    return floors


def compare(
    result: Result,
    entry: Optional[StoredBaseline],
    floors: Mapping[str, float],
    alpha: float,
    calibrated_floors: Optional[Mapping[str, float]] = None,
) -> Comparison:
    """Verdicts per metric.

    Where the baseline carries between-process noise measured for a metric (``noise_cv``),
    that noise sets the tolerance (3 x CV) above ``calibrated_floors``, which are the floors
    without the device profile's blanket allowance for unmeasured noise.
    """
    if entry is None:
        return Comparison(NO_BASELINE)
    changes = stack_changes(entry.stack, result.stack)
    mismatch = result.workload.differences(entry.workload)
    if mismatch:
        return Comparison(MISMATCH, mismatch=mismatch, stack_changes=changes)
    # An accelerator baseline recorded in one process: its tolerances know nothing of the shift
    # between processes, the largest noise there is (said in every row it affects).
    unmeasured = not entry.noise_cv and result.extra.get("device_kind") in ACCELERATOR_KINDS
    verdicts = []
    for name, metric in METRICS.items():
        current, baseline = result.values(name), entry.values(name)
        if not current or not baseline:
            continue
        if not all(math.isfinite(v) for v in baseline):
            raise BaselineError(
                f"the baseline of {result.test_id} holds non-finite {name} samples; it was recorded from a "
                "broken measurement: record it again with --npuperf-save-baseline"
            )
        noise = entry.noise_cv.get(name)
        floor = floors[name] if noise is None or calibrated_floors is None else calibrated_floors[name]
        verdict = decide(metric, current, baseline, floor, alpha, noise)
        verdict.gated = metric.gates(bool(result.extra.get("real_weights")))
        if unmeasured and metric.statistical:
            verdict.note = f"{verdict.note}; {NO_PROCESS_NOISE}" if verdict.note else NO_PROCESS_NOISE
        verdicts.append(verdict)
    gated = [v.status for v in verdicts if v.gated]
    return Comparison(worst_status(gated) if gated else OK, verdicts, [], changes)


def describe(metric: Metric, v: Verdict) -> str:
    """'e2e_s: 412.30ms -> 470.10ms (+14.0%), tolerance 3.0%, p=0.004 (alpha 0.05)'."""
    change = "" if v.change is None else f" ({v.change * 100:+.1f}%)"
    text = (
        f"{metric.name}: baseline {format_value(metric, v.baseline_median)} -> now "
        f"{format_value(metric, v.current_median)}{change}, tolerance {v.tolerance * 100:.1f}%"
        if v.tolerance is not None
        else f"{metric.name}: {v.status}"
    )
    if v.p_value is not None:
        text += f", one-sided Mann-Whitney p={v.p_value:.4f} (alpha {v.alpha:g}, n={v.n_current} vs {v.n_baseline})"
    elif not metric.statistical and v.tolerance is not None:
        text += " (memory: ratio gate only)"
    if v.dropped_current or v.dropped_baseline:
        text += f", outliers dropped: {len(v.dropped_current)} now, {len(v.dropped_baseline)} baseline"
    if v.note:
        text += f"; {v.note}"
    return text


def failure_message(test_id: str, comparison: Comparison, related: Optional[List[str]] = None) -> str:
    lines: List[str] = []
    if comparison.status == MISMATCH:
        lines.append(f"{test_id}: workload differs from the baseline, so the results are not comparable:")
        lines += [f"  {d}" for d in comparison.mismatch]
        lines.append("  Re-record the baseline with --npuperf-save-baseline if the new workload is intended.")
    else:
        regressed = [v for v in comparison.verdicts if v.status == REGRESSED and v.gated]
        lines.append(f"{test_id}: performance regressed")
        lines += [f"  REGRESSED {describe(METRICS[v.metric], v)}" for v in regressed]
    if related:
        lines.append("  steps and operators that got slower in this run: " + "; ".join(related))
    if comparison.confirmation:
        lines.append(f"  {comparison.confirmation}")
    if comparison.profile:
        lines.append(f"  profile of one generation: {comparison.profile}")
    if comparison.stack_changes:
        lines.append("  stack changes since the baseline: " + "; ".join(comparison.stack_changes))
    else:
        lines.append("  stack changes since the baseline: none recorded")
    return "\n".join(lines)
