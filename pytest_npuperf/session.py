"""Run-level state and the measurement flow of one test; knows nothing of pytest.

One PerfSession per pytest run: the resolved device, the stack fingerprint, the loaded model
(one at a time, so that a 14 GB model is freed before the next precision is built), the
baselines read so far and every test's outcome.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .baseline import BaselineEntry, BaselineError, BaselineStore
from .compare import Comparison, compare, floors_for
from .device import Device, DeviceShared, DeviceUnavailable, resolve_device
from .measure import MeasurementError, make_batch, measure_once, warm_up
from .metrics import METRICS, format_value
from .model import LoadedModel, ModelError, default_model, free_model, load_model
from .precision import get_precision
from .quant import QuantizationError
from .result import Result, Sample, Workload
from .settings import Settings
from .stats import INCONCLUSIVE
from .workloads import batch_prompts


class DeviceOutOfMemory(Exception):
    """The device ran out of memory in one test; the message carries the memory figures."""


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), 'NPU out of memory' RuntimeError, CPU allocator failures."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class TestOutcome:
    test_id: str
    result: Optional[Result] = None
    comparison: Optional[Comparison] = None
    budget_failures: List[str] = field(default_factory=list)
    error: str = ""
    passed: Optional[bool] = None  # filled from the test report

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        return self.comparison.status if self.comparison else "-"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "test_id": self.test_id,
            "status": self.status,
            "passed": self.passed,
            "error": self.error,
            "budget_failures": self.budget_failures,
            "result": self.result.to_dict() if self.result else None,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TestOutcome":
        """The inverse of to_dict (outcomes travel from xdist workers to the controller)."""
        return cls(
            test_id=data["test_id"],
            result=Result.from_dict(data["result"]) if data.get("result") else None,
            comparison=Comparison.from_dict(data["comparison"]) if data.get("comparison") else None,
            budget_failures=list(data.get("budget_failures", [])),
            error=data.get("error", ""),
            passed=data.get("passed"),
        )


class PerfSession:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = BaselineStore(settings.baseline_dir)
        self.started_at = utc_now()
        self.outcomes: Dict[str, TestOutcome] = {}
        self._device: Optional[Device] = None
        self._device_error: Optional[str] = None
        self._device_shared = False
        self.skipped_devices: List[str] = []
        self.stack: Dict[str, Any] = {}
        self._loaded: Optional[LoadedModel] = None
        self._baselines: Dict[Tuple[str, str], Union[Dict[str, BaselineEntry], BaselineError]] = {}

    # -- device ---------------------------------------------------------------------------
    def device(self) -> Device:
        """Resolve once; later calls re-raise the same DeviceUnavailable."""
        if self._device is None and self._device_error is None:
            try:
                self._device, self.skipped_devices = resolve_device(
                    self.settings.device, self.settings.worker_index, self.settings.worker_count
                )
            except DeviceUnavailable as exc:
                self._device_error = f"--npuperf-device {self.settings.device}: {exc}"
            except DeviceShared as exc:
                self._device_error = str(exc)
                self._device_shared = True
            else:
                self._configure_threads()
                from .fingerprint import collect

                self.stack = collect(self._device.kind, self._device.info())
        if self._device is None:
            raise (DeviceShared if self._device_shared else DeviceUnavailable)(self._device_error)
        return self._device

    def _configure_threads(self) -> None:
        if self.settings.threads is not None:
            import torch

            torch.set_num_threads(self.settings.threads)

    @property
    def model_name(self) -> str:
        kind = self._device.kind if self._device else "cpu"
        return default_model(kind, self.settings.model)

    def header_lines(self) -> List[str]:
        s = self.settings
        lines = [
            f"npuperf: preset={s.preset} max_new_tokens={s.max_new_tokens} warmup={s.warmup} "
            f"runs={s.runs} (cap {s.max_runs}) alpha={s.alpha:g} baselines={s.baseline_dir}"
            + (" [saving baseline]" if s.save_baseline else "")
        ]
        try:
            device = self.device()
        except (DeviceUnavailable, DeviceShared) as exc:
            return lines + [f"npuperf device: unavailable: {exc}"]
        st = self.stack
        lines.append(
            f"npuperf device: {device.kind} ({device.name()}), profile {device.profile()!r}, "
            f"model {self.model_name}, timing by {device.timing_source}, memory from {device.memory_source}"
        )
        lines.append(
            "npuperf stack: "
            + ", ".join(
                f"{k}={st.get(k) if st.get(k) is not None else 'unknown'}"
                for k in ("torch", "torch_npu", "transformers", "cann_version", "driver_version", "python", "torch_threads")
            )
        )
        lines += [f"npuperf: not using {reason}" for reason in self.skipped_devices]
        return lines

    # -- model and baselines ----------------------------------------------------------------
    def model(self, precision: str) -> LoadedModel:
        device = self.device()
        loaded = self._loaded
        if loaded is not None and loaded.precision == precision and loaded.model is not None:
            return loaded
        free_model(loaded)
        self._loaded = None
        device.empty_cache()
        self._loaded = load_model(self.model_name, get_precision(precision), device.torch_device)
        return self._loaded

    def baseline_entry(self, test_id: str) -> Optional[BaselineEntry]:
        """The stored entry of this test; a broken file raises BaselineError every time."""
        key = (self.device().profile(), self.model_name)
        if key not in self._baselines:
            try:
                self._baselines[key] = self.store.load(*key)
            except BaselineError as exc:
                self._baselines[key] = exc
        found = self._baselines[key]
        if isinstance(found, BaselineError):
            raise found
        return found.get(test_id)

    def _recover_from_oom(self, exc: BaseException) -> str:
        """Describe the failure with the memory figures, then free the model for the next test."""
        device = self.device()
        figures = []
        try:
            mem = device.memory()
            figures = [f"{k}={v / 2**20:.0f}MiB" for k, v in mem.items() if v is not None]
        except Exception as mem_exc:  # the figures are a courtesy; the OOM is the error
            figures = [f"memory figures unavailable ({mem_exc})"]
        free_model(self._loaded)
        self._loaded = None
        device.empty_cache()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"out of memory on {device.kind} ({device.name()}): {first}; at the failure: {', '.join(figures)}. "
            "The model was freed and the session goes on; lower the batch size or use a smaller precision"
        )

    # -- one test -------------------------------------------------------------------------
    def run_generation(
        self,
        test_id: str,
        precision: str,
        batch_size: int,
        workload: str,
        tolerances: Mapping[str, float],
        budgets: Mapping[str, float],
        max_new_tokens: Optional[int] = None,
    ) -> TestOutcome:
        """Measure, compare with the baseline, check budgets. Raises on invalid measurements."""
        s = self.settings
        get_precision(precision)  # a clear error before anything is loaded
        prompts = batch_prompts(workload, batch_size)
        new_tokens = s.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        if new_tokens < 2:
            raise ValueError(f"max_new_tokens must be >= 2 (TPOT needs two tokens), got {new_tokens}")
        outcome = TestOutcome(test_id)
        self.outcomes[test_id] = outcome
        device = self.device()
        try:
            loaded = self.model(precision)
        except (ModelError, QuantizationError) as exc:
            outcome.error = str(exc)
            raise
        batch = make_batch(loaded, prompts, device.torch_device)
        workload_rec = Workload(
            model_id=loaded.model_id,
            model_fingerprint=loaded.fingerprint,
            precision=precision,
            batch_size=batch_size,
            prompt_ids=tuple(batch.prompt_ids),
            prompt_tokens=tuple(batch.prompt_tokens),
            max_new_tokens=new_tokens,
        )
        fidelity = batch_fidelity(loaded, batch.prompt_ids)

        def measure() -> Sample:
            sample = measure_once(loaded, device, batch, new_tokens)
            for key, value in fidelity.items():
                setattr(sample, key, value)
            return sample

        try:
            warm_up(loaded, device, batch, new_tokens, s.warmup)
            samples = [measure() for _ in range(s.runs)]
        except MeasurementError as exc:
            outcome.error = f"measurement error: {exc}"
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            outcome.error = self._recover_from_oom(exc)
            raise DeviceOutOfMemory(outcome.error) from None
        result = Result(
            test_id=test_id,
            profile=device.profile(),
            workload=workload_rec,
            samples=samples,
            stack=self.stack,
            timestamp=utc_now(),
            extra={
                "weight_bytes": loaded.weight_bytes,
                "linear_weight_bytes": loaded.linear_weight_bytes,
                "dense_linear_weight_bytes": loaded.dense_linear_weight_bytes or loaded.linear_weight_bytes,
                "quant_kernel": loaded.quant_kernel,
                "attn_implementation": loaded.attn_implementation,
                "tokenizer": getattr(loaded.tokenizer, "name", ""),
                "model": self.model_name,
            },
        )
        outcome.result = result
        try:
            entry = self.baseline_entry(test_id)
        except BaselineError as exc:
            if not s.save_baseline:
                outcome.error = str(exc)
                raise
            entry = None  # recording anew; the save itself refuses the broken file unless forced
        overrides = {**s.tolerance_map, **tolerances}
        floors = floors_for(device.time_floor(), overrides)
        calibrated = floors_for(None, overrides)
        comparison = compare(result, entry, floors, s.alpha, calibrated)
        if comparison.status == INCONCLUSIVE and len(samples) < s.max_runs:
            # Only the practical gate fired: take more samples, decide once more at alpha/2.
            samples += [measure() for _ in range(s.max_runs - len(samples))]
            comparison = compare(result, entry, floors, s.alpha / 2, calibrated)
            result.extra["resampled_to"] = len(samples)
        outcome.comparison = comparison
        outcome.budget_failures = check_budgets(result, budgets)
        return outcome


def batch_fidelity(loaded: LoadedModel, prompt_ids: List[str]) -> Dict[str, float]:
    """Mean fidelity over the batch's prompts ({} for 16-bit precisions)."""
    rows = [loaded.fidelity[p] for p in prompt_ids if p in loaded.fidelity]
    if not rows:
        return {}
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}


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
