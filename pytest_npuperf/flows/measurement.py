"""One test's measurement, shared by every flow: the sampling loop, its guards and the verdict.

A flow (generation, steps, operators, serving) prepares what to run and how to turn one run
into a Sample; :class:`TestRun` warms up, takes the samples, records measurement errors and
out-of-memory failures on the outcome, builds the Result and judges it against the baseline.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping

from ..errors import BaselineError, MeasurementError
from ..judge.budgets import check_budgets
from ..judge.compare import Comparison, budgets_for, compare
from ..judge.gate import Caps
from ..judge.outcome import TestOutcome
from ..judge.result import Result, Sample, Workload
from ..judge.sampling import runs_to_add
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


def regression_budgets(session: PerfSession, tolerances: Mapping[str, float]) -> Dict[str, float]:
    """The regression budget per metric: defaults, the device profile's, the user's and the test's."""
    return budgets_for(session.device().time_floor(), {**session.settings.tolerance_map, **tolerances})


def caps(session: PerfSession) -> Caps:
    """How far one test may sample: runs per process, and processes where fresh ones are on."""
    s = session.settings
    return Caps(s.max_runs, s.max_processes if s.confirms(session.device().kind) else 1)


def judge_again(session: PerfSession, result: Result, tolerances: Mapping[str, float]) -> Comparison:
    """``result`` (the samples of every process it holds) judged against its baseline."""
    return compare(result, session.baseline_entry(result.test_id), regression_budgets(session, tolerances),
                   session.settings.alpha, session.run_noise(), caps(session))


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
        """Compare with the baseline, taking the runs an undecided verdict needs, and check the
        absolute budgets. The comparison may stay UNDECIDED: the fixture then samples fresh
        processes, or makes it final (INCONCLUSIVE)."""
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
        comparison = compare(result, entry, regression_budgets(self.session, tolerances), s.alpha, self.session.run_noise(),
                             caps(self.session))
        more = runs_to_add(comparison, len(result.samples), s.max_runs)
        if more:
            # The noise inside this process is what keeps it undecided: take the runs the power
            # calculation asks for (at most --npuperf-max-runs in all) and decide once more.
            result.samples += self.samples(lambda: None, measure, more)
            comparison = compare(result, entry, regression_budgets(self.session, tolerances), s.alpha,
                                 self.session.run_noise(), caps(self.session))
            result.extra["resampled_to"] = len(result.samples)
        outcome.comparison = comparison
        outcome.budget_failures = check_budgets(result, budgets)
        return outcome
