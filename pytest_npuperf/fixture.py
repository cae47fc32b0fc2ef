"""The per-test ``npuperf`` fixture object: measure, compare, and fail the test that regressed."""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import pytest

from .errors import BaselineError, MeasurementError, NpuPerfWarning
from .flows.confirm import in_confirmation_child, run_child
from .flows.generation import run_generation
from .flows.kernels import KernelError
from .flows.measurement import DeviceOutOfMemory, caps, judge_again
from .flows.serving.engines import DEFAULT_SLOS, Scenario, ServingError, parse_slo
from .flows.serving.flow import run_serving
from .flows.serving.vllm import EngineUnavailable
from .flows.session import PerfSession
from .flows.steps import run_op, run_step
from .judge.budgets import check_budgets
from .judge.compare import Comparison, failure_message, finalize
from .judge.metrics import METRICS
from .judge.outcome import TestOutcome, related_regressions
from .judge.result import Result, tag_process
from .judge.sampling import NEW_PROCESS, next_step
from .judge.stats import DRIFT, IMPROVED, INCONCLUSIVE, MISMATCH, OK, REGRESSED, UNCONFIRMED
from .model.loader import ModelError
from .model.quant import QuantizationError
from .modes import get_mode
from .precision import get_precision
from .stack.compat import Unsupported


class NpuPerf:
    """Handed to each test as ``npuperf``.

    It receives everything it needs (the run's PerfSession, the test id, the marker's
    tolerances and budgets) and never reads the pytest config.
    """

    def __init__(
        self,
        session: PerfSession,
        test_id: str,
        tolerances: Mapping[str, float],
        budgets: Mapping[str, float],
        user_properties: List[Tuple[str, Any]],
        confirm_command: Optional[List[str]] = None,
        rootdir: Optional[Path] = None,
    ) -> None:
        self._session = session
        self.test_id = test_id
        self._tolerances = dict(tolerances)
        self._budgets = dict(budgets)
        self._user_properties = user_properties
        self._confirm_command = confirm_command
        self._rootdir = rootdir
        self.outcome: Optional[TestOutcome] = None

    @property
    def settings(self) -> Any:
        return self._session.settings

    def generate(
        self,
        precision: str,
        batch_size: int,
        workload: str,
        max_new_tokens: Optional[int] = None,
        mode: str = "eager",
    ) -> Result:
        """Warm up, time ``runs`` generations, compare with the baseline; fail on regression.
        ``mode`` 'graph': the decode step compiled over a static KV cache (see flows/graph/runner.py)."""
        spec, execution = get_precision(precision), get_mode(mode)  # clear errors before anything loads
        return self._run(lambda: run_generation(self._session, self.test_id, spec, batch_size, workload,
                                                self._tolerances, self._budgets, max_new_tokens, execution))

    def step(self, kind: str, precision: str, batch_size: int, length: int, mode: str = "eager") -> Result:
        """Time one model step: ``prefill`` over ``length`` tokens or ``decode`` at context ``length``
        (``mode`` 'graph': the compiled decode step of graph mode)."""
        spec, execution = get_precision(precision), get_mode(mode)
        return self._run(lambda: run_step(self._session, self.test_id, kind, spec, batch_size, length,
                                          self._tolerances, self._budgets, execution))

    def op(self, name: str, precision: str, tokens: int) -> Result:
        """Time one operator (see ``pytest_npuperf.flows.kernels.OPS``) at the model config's shapes."""
        spec = get_precision(precision)
        return self._run(lambda: run_op(self._session, self.test_id, name, spec, tokens,
                                        self._tolerances, self._budgets))

    def serve(
        self,
        engine: str,
        precision: str,
        rate: Optional[float] = None,
        requests: Optional[int] = None,
        burstiness: float = 1.0,
        max_new_tokens: Optional[int] = None,
        max_batch: int = 8,
        batch_timeout_s: float = 0.05,
        slos: Optional[List[str]] = None,
        seed: int = 0,
        mode: str = "eager",
        load: Optional[float] = None,
    ) -> Result:
        """``requests`` requests (default: the preset's, 64 in the full one, 16 in the quick one)
        arriving at ``rate``/s (``math.inf``: all at once) or at ``load`` x the engine's capacity
        on this device (measured when the test's first baseline is recorded, then frozen into it),
        served by ``engine`` ('static', 'continuous' or 'vllm'); each run of them is one sample.
        The 'vllm' engine skips the test, with the reason, where vLLM (vllm-ascend on an NPU) is
        absent. ``mode`` 'graph' (static engine only): decode graphs for every batch size up to
        ``max_batch``, compiled before the requests arrive."""
        execution = get_mode(mode)
        try:
            if (rate is None) == (load is None):
                raise ServingError("give either rate= (requests/s, math.inf: all at once) or load= (a fraction of "
                                   f"the capacity, e.g. 0.5), not {'both' if load is not None else 'neither'}")
            parsed = tuple(parse_slo(x) for x in slos) if slos else DEFAULT_SLOS
            settings = self._session.settings
            scenario = Scenario(int(settings.serving_requests if requests is None else requests), float(rate or 0.0), float(burstiness),
                                int(seed), int(max_new_tokens or settings.max_new_tokens), int(max_batch),
                                float(batch_timeout_s), parsed, None if load is None else float(load))
            scenario.validate()
        except ServingError as exc:
            pytest.fail(f"{self.test_id}: {exc}", pytrace=False)
        spec = get_precision(precision)
        return self._run(lambda: run_serving(self._session, self.test_id, engine, spec, scenario,
                                             self._tolerances, self._budgets, execution))

    def _run(self, run: Callable[[], TestOutcome]) -> Result:
        if self.outcome is not None:
            raise RuntimeError(
                f"{self.test_id}: npuperf measured this test already; one test measures one "
                "workload, because the test id is the baseline key"
            )
        try:
            outcome = run()
        except (EngineUnavailable, Unsupported) as exc:
            self._session.discard(self.test_id)  # skipped: neither a result nor a failure
            if self._session.has_baseline(self.test_id) and not self._session.settings.save_baseline:
                # It ran on this device when its baseline was recorded: losing it is a regression.
                pytest.fail(f"{self.test_id}: a baseline of this test is stored for this device, but the stack "
                            f"cannot run it now: {exc}", pytrace=False)
            pytest.skip(f"{self.test_id}: {exc}")
        except MeasurementError as exc:
            pytest.fail(f"{self.test_id}: measurement error: {exc}", pytrace=False)
        except (ModelError, QuantizationError, BaselineError, DeviceOutOfMemory, KernelError, ServingError) as exc:
            pytest.fail(f"{self.test_id}: {exc}", pytrace=False)
        self.outcome = outcome
        assert outcome.result is not None and outcome.comparison is not None
        self._judge(outcome)
        return outcome.result

    def assert_budget(self, metric: str, limit: float) -> None:
        """Fail unless the median of ``metric`` is within ``limit`` (direction-aware)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
        if self.outcome is None or self.outcome.result is None:
            raise RuntimeError("call npuperf.generate(...) before npuperf.assert_budget(...)")
        failures = check_budgets(self.outcome.result, {metric: float(limit)})
        self.outcome.budget_failures += failures
        if failures:
            pytest.fail(f"{self.test_id}: budget exceeded: " + "; ".join(failures), pytrace=False)

    def _record_properties(self, outcome: TestOutcome) -> None:
        assert outcome.result is not None and outcome.comparison is not None
        self._user_properties.append(("npuperf_verdict", outcome.comparison.status))
        for name in METRICS:
            values = outcome.result.values(name)
            if values:
                self._user_properties.append((f"npuperf_{name}_median", statistics.median(values)))

    def _settle(self, outcome: TestOutcome) -> Comparison:
        """Sample fresh processes on this device while the verdict is undecided, or while a
        regression rests on this process alone, judging all their samples together; then make
        the verdict final.

        Stops when decided, at --npuperf-max-processes or --npuperf-time-cap, when the power
        calculation says even the cap would not decide it, or when a fresh process gives no
        samples (fail closed: a regression stands, an undecided verdict becomes INCONCLUSIVE,
        naming why). A regression that the pooled samples no longer show passes as UNCONFIRMED.
        """
        assert outcome.result is not None and outcome.comparison is not None
        result, comparison = outcome.result, outcome.comparison
        session, s = self._session, self._session.settings
        first, first_comparison = comparison.status, comparison
        cap = caps(session).processes
        started, slowest, why, child_failed = time.monotonic(), 0.0, "", False
        children: List[Dict[str, Any]] = []
        try:
            while True:
                processes = result.processes()
                fresh = bool(self._confirm_command) and s.confirms(session.device().kind) and not in_confirmation_child()
                left = s.time_cap_s - (time.monotonic() - started)
                step = next_step(comparison, first, processes, cap, fresh, left, slowest)
                if step.action != NEW_PROCESS:
                    why = step.why
                    break
                session.release_device()  # the child gets the device's memory
                began = time.monotonic()
                child = run_child(self._confirm_command or [], self.test_id, self._rootdir or Path.cwd(),
                                  s.worker_index, result.workload, timeout_s=left)
                slowest = max(slowest, time.monotonic() - began)
                children.append({"outcome": child.outcome, "samples": len(child.samples), "exit_code": child.exit_code})
                if not child.usable:
                    why, child_failed = child.account(), True
                    break
                result.samples += tag_process(child.samples, processes)
                comparison = outcome.comparison = judge_again(session, result, self._tolerances)
        except BaseException as exc:
            finalize(comparison, f"sampling stopped by {type(exc).__name__}: {exc}")  # never UNDECIDED
            raise
        finalize(comparison, why or "no more samples")
        pooled = comparison.status
        if child_failed and first == REGRESSED and pooled != REGRESSED:
            # Fail closed: a check that could not run does not take a regression back.
            comparison = first_comparison
        comparison.profile = comparison.profile or first_comparison.profile
        if children:
            result.extra["fresh_processes"] = children
            comparison.confirmation = (
                f"{len(children)} fresh process(es) ({', '.join(c['outcome'] for c in children)}); "
                f"the samples of {result.processes()} processes against the baseline: {pooled}"
                + (f"; stopped: {why}" if why else "")
                + ("; the first process's regression stands" if comparison is first_comparison and pooled != REGRESSED
                   else ""))
        elif why and first == REGRESSED:
            comparison.confirmation = f"not checked in a fresh process: {why}"
        if first == REGRESSED and comparison.status in (OK, DRIFT, IMPROVED):
            comparison.status = UNCONFIRMED
        return comparison

    def _judge(self, outcome: TestOutcome) -> None:
        assert outcome.comparison is not None
        comparison = outcome.comparison
        saving = self._session.settings.save_baseline
        if saving:
            finalize(comparison, "recording a baseline")
        else:
            comparison = outcome.comparison = self._settle(outcome)
            if comparison.status == UNCONFIRMED:
                warnings.warn(NpuPerfWarning(f"{self.test_id}: regression not confirmed; {comparison.confirmation}"),
                              stacklevel=3)
        self._record_properties(outcome)  # the final verdict, after the fresh processes, before any failure
        strict_fail = comparison.status == INCONCLUSIVE and self._session.settings.strict
        if (comparison.status in (MISMATCH, REGRESSED) or strict_fail) and not saving:
            related = related_regressions(self._session.outcomes) if comparison.status == REGRESSED else None
            pytest.fail(failure_message(self.test_id, comparison, related), pytrace=False)
        if outcome.budget_failures:
            pytest.fail(f"{self.test_id}: budget exceeded: " + "; ".join(outcome.budget_failures), pytrace=False)
        if comparison.status in (DRIFT, IMPROVED, INCONCLUSIVE) or (saving and comparison.status in (MISMATCH, REGRESSED)):
            notes: Dict[str, str] = {
                DRIFT: "a clear change, but inside the budget",
                IMPROVED: "faster or leaner than the baseline; consider recording a new baseline",
                INCONCLUSIVE: "undecided at the sampling cap: a regression beyond the budget is not ruled out",
                MISMATCH: "workload differs from the stored baseline, which this run replaces",
                REGRESSED: "regressed against the stored baseline, which this run replaces",
            }
            warnings.warn(
                NpuPerfWarning(f"{self.test_id}: {comparison.status}: {notes[comparison.status]}"), stacklevel=3
            )
