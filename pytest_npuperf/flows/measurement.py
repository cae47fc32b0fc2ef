"""One test's measurement, shared by every flow: the sampling loop, its guards and the verdict.

A flow (generation, steps, operators, serving) prepares what to run and how to turn one run
into a Sample; :class:`TestRun` warms up, takes the samples, records measurement errors and
out-of-memory failures on the outcome, builds the Result and judges it against the baseline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Tuple

from ..errors import BaselineError, MeasurementError
from ..judge.budgets import check_budgets
from ..judge.compare import Comparison, compare, floors_for
from ..judge.outcome import TestOutcome
from ..judge.result import Result, Sample, Workload
from ..judge.stats import INCONCLUSIVE
from ..model.loader import LoadedModel, ModelError
from ..model.quant import QuantizationError
from ..precision import Precision
from .measure import check_finite
from .session import PerfSession, utc_now


class DeviceOutOfMemory(Exception):
    """The device ran out of memory in one test; the message carries the memory figures."""


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), 'NPU out of memory' RuntimeError, CPU allocator failures."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def floors(session: PerfSession, tolerances: Mapping[str, float]) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Tolerance floors with the device profile's allowance, and without it (for measured noise)."""
    overrides = {**session.settings.tolerance_map, **tolerances}
    return floors_for(session.device().time_floor(), overrides), floors_for(None, overrides)


def compare_pooled(session: PerfSession, result: Result, more: List[Sample],
                   tolerances: Mapping[str, float]) -> Comparison:
    """The samples of ``result`` and ``more`` (a confirmation process) judged together."""
    pooled = replace(result, samples=list(result.samples) + list(more))
    strict, calibrated = floors(session, tolerances)
    return compare(pooled, session.baseline_entry(result.test_id), strict, session.settings.alpha, calibrated)


class TestRun:
    """The measurement of one test: the outcome it fills and the steps every flow shares."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, session: PerfSession, test_id: str) -> None:
        self.session = session
        self.test_id = test_id
        self.outcome: TestOutcome = session.start(test_id)

    def load(self, precision: Precision) -> LoadedModel:
        """The model in ``precision``; a load or quantization failure is recorded on the outcome."""
        try:
            return self.session.model(precision)
        except (ModelError, QuantizationError) as exc:
            self.outcome.error = str(exc)
            raise

    def guard(self, work: Callable[[], Any]) -> Any:
        """Run ``work``; a measurement error or an OOM is recorded on the outcome (the OOM frees
        the model), anything else propagates."""
        try:
            return work()
        except MeasurementError as exc:
            self.outcome.error = f"measurement error: {exc}"
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self.outcome.error = self.session.recover_from_oom(exc)
            raise DeviceOutOfMemory(self.outcome.error) from None

    def samples(self, warm: Callable[[], None], measure: Callable[[], Sample], runs: int) -> List[Sample]:
        """Warm up, then ``runs`` samples; measurement errors and OOM are recorded on the outcome."""

        def run() -> List[Sample]:
            warm()
            taken = []
            for index in range(runs):
                sample = measure()
                check_finite(sample, index)
                taken.append(sample)
            return taken

        return self.guard(run)

    def result(self, workload: Workload, samples: List[Sample], extra: Dict[str, Any]) -> Result:
        session = self.session
        device = session.device()
        return Result(test_id=self.test_id, profile=device.profile(), workload=workload, samples=samples,
                      stack=session.stack, timestamp=utc_now(),
                      extra=dict(extra, model=session.model_name, device_kind=device.kind))

    def judge(
        self,
        result: Result,
        measure: Callable[[], Sample],
        tolerances: Mapping[str, float],
        budgets: Mapping[str, float],
    ) -> TestOutcome:
        """Compare with the baseline (resampling once when inconclusive) and check budgets."""
        s = self.session.settings
        outcome = self.outcome
        outcome.result = result
        result.extra["calibration"] = self.session.calibration()
        try:
            entry = self.session.baseline_entry(result.test_id)
        except BaselineError as exc:
            if not s.save_baseline:
                outcome.error = str(exc)
                raise
            entry = None  # recording anew; the save itself refuses the broken file unless forced
        strict, calibrated = floors(self.session, tolerances)
        comparison = compare(result, entry, strict, s.alpha, calibrated)
        if comparison.status == INCONCLUSIVE and len(result.samples) < s.max_runs:
            # Only the practical gate fired: take more samples, decide once more at alpha/2.
            result.samples += self.samples(lambda: None, measure, s.max_runs - len(result.samples))
            comparison = compare(result, entry, strict, s.alpha / 2, calibrated)
            result.extra["resampled_to"] = len(result.samples)
        outcome.comparison = comparison
        outcome.budget_failures = check_budgets(result, budgets)
        return outcome
