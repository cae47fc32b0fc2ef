"""A Result against its baseline entry: one Verdict per metric, and the failure message."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence

from ..errors import BaselineError
from ..stack.changes import stack_changes
from . import codec, gate
from .drift import chain, drift
from .gate import NOISE_CV_DF, Caps, NoisePrior
from .metrics import METRICS, TIME_METRICS, Metric, format_value
from .result import Result, Workload
from .stats import IMPROVED, INCONCLUSIVE, MISMATCH, NO_BASELINE, OK, REGRESSED, UNDECIDED, Verdict, median, worst_status


class StoredBaseline(Protocol):
    """What the judge reads of a stored baseline (the store's BaselineEntry, or a results file's
    result in ``npuperf compare``)."""

    workload: Workload
    stack: Dict[str, Any]
    noise_cv: Dict[str, float]
    history: List[Dict[str, Any]]  # the baselines this one replaced, oldest first (medians only)
    recorded_at: str
    drift_reset: bool  # recorded with --npuperf-reset-drift

    def values(self, metric: str) -> List[float]: ...

    def values_by_process(self, metric: str) -> List[List[float]]: ...

ACCELERATOR_KINDS = ("npu", "cuda")
NO_PROCESS_NOISE = ("no between-process noise measured: the bounds count only the noise within this process "
                    "(record the baseline with --npuperf-save-baseline in several fresh processes, "
                    "--npuperf-processes, 6 by default on npu and cuda)")


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


def budgets_for(time_budget: Optional[float], overrides: Mapping[str, float]) -> Dict[str, float]:
    """The regression budget per metric: default, raised for a device that is only a pipeline
    check (the CPU), then the user's ini, command line and marker values."""
    budgets = {name: m.budget for name, m in METRICS.items()}
    if time_budget is not None:
        for name in TIME_METRICS:
            budgets[name] = max(budgets[name], time_budget)
    budgets.update(overrides)
    return budgets


def prior_of(entry: StoredBaseline, metric: str, run_noise: Mapping[str, NoisePrior]) -> Optional[NoisePrior]:
    """The between-process noise known beyond this test's own processes: the run's pooled noise
    for the metric, else a CV stored with an older baseline whose samples carry no process tags."""
    if metric in run_noise:
        return run_noise[metric]
    cv = entry.noise_cv.get(metric)
    if cv and len(entry.values_by_process(metric)) < 2:
        return NoisePrior(math.log1p(cv) ** 2, NOISE_CV_DF, "the between-process CV stored with the baseline")
    return None


def judge_metric(
    metric: Metric,
    current: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    budget: float,
    level: float,
    prior: Optional[NoisePrior] = None,
    caps: Optional[Caps] = None,
) -> Verdict:
    """One metric's verdict. ``current`` and ``baseline`` hold the samples of each process.

    Timing metrics: the budget rule of ``gate.py`` (may be UNDECIDED). Deterministic metrics
    (memory, graph counts, fidelity): the medians' change against the budget, no noise model.
    """
    cur_all = [v for g in current for v in g]
    base_all = [v for g in baseline for v in g]
    for side, values in (("current", cur_all), ("baseline", base_all)):
        if not all(math.isfinite(v) for v in values):
            # NaN compares as 'not worse' and inf as 'infinitely worse': neither is a verdict.
            raise ValueError(f"{metric.name}: non-finite {side} samples {values}; no verdict is possible")
    cur_med, base_med = median(cur_all), median(base_all)
    in_force = metric.budget_for(budget, base_med)
    verdict = Verdict(
        metric=metric.name, status=OK, current_median=cur_med, baseline_median=base_med,
        change=(cur_med / base_med - 1.0) if base_med else None, budget=in_force,
        n_current=len(cur_all), n_baseline=len(base_all),
        processes=len([g for g in current if g]), baseline_processes=len([g for g in baseline if g]),
    )
    if not metric.statistical or min(cur_all) <= 0 or min(base_all) <= 0:
        # Deterministic, or a count that reached zero in some run (goodput when no request met
        # its SLO): no log scale, the medians are compared.
        worse = _worse_change(metric, cur_med, base_med)
        verdict.worse_change = verdict.low = verdict.high = worse
        verdict.status = (REGRESSED if worse > in_force else
                          IMPROVED if worse < -in_force / (1 + in_force) else OK)
        return verdict
    est = gate.estimate(current, baseline, metric.higher_is_better, level, prior)
    verdict.worse_change, verdict.low, verdict.high, verdict.level = est.change, est.low, est.high, est.level
    verdict.noise_source = est.noise_source
    verdict.resolvable = gate.resolvable(est, in_force)
    verdict.status = gate.decide(est, in_force)
    if verdict.status == UNDECIDED and caps is not None:
        runs = max(len(g) for g in current)
        verdict.runs_needed = gate.runs_needed(est, in_force, runs, caps.runs)
        planned = gate.processes_needed(est, in_force, caps.processes)
        verdict.processes_needed = -1 if planned is None else planned
    return verdict


def _worse_change(metric: Metric, current: float, baseline: float) -> float:
    """The relative change in the worse direction (+0.05: 5% worse), from the medians."""
    return 0.0 if current == baseline else metric.worse_ratio(current, baseline) - 1.0


def compare(
    result: Result,
    entry: Optional[StoredBaseline],
    budgets: Mapping[str, float],
    alpha: float,
    run_noise: Optional[Mapping[str, NoisePrior]] = None,
    caps: Optional[Caps] = None,
) -> Comparison:
    """Verdicts per metric, with one-sided bounds at 1 - ``alpha``. ``run_noise`` is the
    between-process noise per metric pooled over the run's baselines (noise.run_noise); with
    ``caps``, an undecided verdict carries the runs and processes that would settle it."""
    if entry is None:
        return Comparison(NO_BASELINE)
    changes = stack_changes(entry.stack, result.stack)
    mismatch = result.workload.differences(entry.workload)
    if mismatch:
        return Comparison(MISMATCH, mismatch=mismatch, stack_changes=changes)
    accelerator = result.extra.get("device_kind") in ACCELERATOR_KINDS
    verdicts = []
    for name, metric in METRICS.items():
        current, baseline = result.values_by_process(name), entry.values_by_process(name)
        if not current or not baseline:
            continue
        if not all(math.isfinite(v) for g in baseline for v in g):
            raise BaselineError(
                f"the baseline of {result.test_id} holds non-finite {name} samples; it was recorded from a "
                "broken measurement: record it again with --npuperf-save-baseline"
            )
        prior = prior_of(entry, name, run_noise or {})
        verdict = judge_metric(metric, current, baseline, budgets[name], 1.0 - alpha, prior, caps)
        verdict.gated = metric.gates(bool(result.extra.get("real_weights")))
        add_drift(metric, verdict, entry)
        if accelerator and metric.statistical and verdict.noise_source.startswith("within one process"):
            verdict.note = NO_PROCESS_NOISE
        verdicts.append(verdict)
    gated = [v.status for v in verdicts if v.gated]
    return Comparison(worst_status(gated) if gated else OK, verdicts, [], changes)


def add_drift(metric: Metric, verdict: Verdict, entry: StoredBaseline) -> None:
    """The change since the oldest kept baseline of this workload; REGRESSED when even its lower
    bound is beyond the budget, naming the steps that added up."""
    if verdict.worse_change is None or verdict.low is None or verdict.high is None or verdict.budget is None:
        return
    if verdict.baseline_median is None or not (metric.statistical or metric.unit == "B"):
        return  # timing and memory only: counts and fidelity scores have no drift to add up
    items = chain(entry.history, entry.workload, entry.drift_reset)
    found = drift(metric, items, verdict.baseline_median, entry.recorded_at,
                  (verdict.worse_change, verdict.low, verdict.high)) if items else None
    if found is None:
        return
    verdict.drift = found.change
    if found.low > verdict.budget and verdict.status != REGRESSED:
        verdict.status = REGRESSED
        verdict.note = "; ".join(x for x in (verdict.note, found.text() + (
            " (accept it with --npuperf-save-baseline --npuperf-reset-drift)")) if x)


def finalize(comparison: Comparison, why: str) -> Comparison:
    """The comparison of a test that takes no more samples: every UNDECIDED verdict becomes
    INCONCLUSIVE, with ``why`` it stopped and the smallest regression the run could resolve."""
    for v in comparison.verdicts:
        if v.status == UNDECIDED:
            v.status = INCONCLUSIVE
            resolvable = f"; it could resolve a regression of {v.resolvable * 100:.1f}% or more" if v.resolvable else ""
            v.note = "; ".join(x for x in (v.note, f"undecided: {why}{resolvable}") if x)
    if comparison.status == UNDECIDED:
        gated = [v.status for v in comparison.verdicts if v.gated]
        comparison.status = worst_status(gated) if gated else OK
    return comparison


def undecided(comparison: Comparison) -> List[Verdict]:
    """The gated verdicts that still need samples."""
    return [v for v in comparison.verdicts if v.gated and v.status == UNDECIDED]


def describe(metric: Metric, v: Verdict) -> str:
    """'tpot_s: baseline 21.30ms -> now 24.10ms, +13.1% worse, at least +9.0%, at most +17.4% (95%),
    budget 3.0%, 3 + 1 processes (noise: ...)'."""
    if v.budget is None:
        return f"{metric.name}: {v.status}" + (f"; {v.note}" if v.note else "")
    text = (f"{metric.name}: baseline {format_value(metric, v.baseline_median)} -> now "
            f"{format_value(metric, v.current_median)}")
    if v.level is not None:
        text += f", {v.bounds_text()}, budget {v.budget * 100:.1f}%"
        text += f", {v.baseline_processes} + {v.processes} processes ({v.n_baseline} + {v.n_current} samples)"
        if v.noise_source:
            text += f", noise from {v.noise_source}"
    elif v.worse_change is not None:
        text += f", {v.worse_change * 100:+.1f}% worse, budget {v.budget * 100:.1f}% (deterministic: medians compared)"
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
        failing = [v for v in comparison.verdicts if v.gated and v.status in (REGRESSED, INCONCLUSIVE)]
        if comparison.status == REGRESSED:
            lines.append(f"{test_id}: performance regressed")
        else:
            lines.append(f"{test_id}: INCONCLUSIVE: no regression beyond the budget could be ruled out within the "
                         "sampling cap (a failure under --npuperf-strict)")
        lines += [f"  {v.status} {describe(METRICS[v.metric], v)}" for v in failing]
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
