"""The run's resources, shared by every test's flow; knows nothing of pytest.

One PerfSession per pytest run: the resolved device and the stack fingerprint, the loaded model
(one at a time, so that a 14 GB model is freed before the next precision is built) and its
compiled graphs, the calibration, the baselines read so far, and every test's outcome. The
flows (generation, steps, serving) borrow these; the session measures nothing itself.
"""

from __future__ import annotations

import datetime as _dt
import gc
from typing import Any, Dict, List, Optional, Tuple, Union

from ..devices import Device, DeviceShared, DeviceUnavailable, resolve_device
from ..devices import calibration as calibration_mod
from ..devices.graph_backend import select_backend
from ..devices.npu_int8 import require_int8_on_npu
from ..errors import BaselineError, first_line
from ..judge.gate import NoisePrior
from ..judge.noise import run_noise
from ..judge.outcome import TestOutcome
from ..judge.roofline import health_problems
from ..model.loader import LoadedModel, default_model, free_model, load_model
from ..model.workloads import BUILT_IN, WorkloadSet
from ..precision import Precision
from ..settings import Settings
from ..stack.compat import reset_compiled
from ..stack.fields import with_hook_fields
from ..stack.fingerprint import collect
from ..store.baselines import BaselineEntry, BaselineStore
from .graph.runner import GraphRunner


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class PerfSession:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = BaselineStore(settings.baseline_dir)
        self.started_at = utc_now()
        self.outcomes: Dict[str, TestOutcome] = {}
        self._device: Optional[Device] = None
        self._device_error: Optional[Exception] = None  # raised again at every later call
        self.skipped_devices: List[str] = []
        self.stack: Dict[str, Any] = {}
        self.stack_fields: Dict[str, Any] = {}  # what the stack-fields hooks added (add_stack_fields)
        self.workloads: WorkloadSet = BUILT_IN  # the run's workloads, with those hooks gave
        self._loaded: Optional[LoadedModel] = None
        self._graph: Optional[GraphRunner] = None  # the compiled decode steps of the loaded model
        self._warm_compilers: set = set()  # graph backends whose one-time start-up this process paid
        self._calibration: Optional[Dict[str, Any]] = None
        self._baselines: Dict[Tuple[str, str], Union[Dict[str, BaselineEntry], BaselineError]] = {}
        self._run_noise: Dict[Tuple[str, str], Dict[str, NoisePrior]] = {}

    # -- device ---------------------------------------------------------------------------
    def device(self) -> Device:
        """Resolve once; later calls re-raise the same DeviceUnavailable."""
        if self._device is None and self._device_error is None:
            try:
                self._device, self.skipped_devices = resolve_device(
                    self.settings.device, self.settings.worker_index, self.settings.worker_count
                )
            except DeviceUnavailable as exc:  # DeviceBroken too, keeping its kind
                self._device_error = type(exc)(f"--npuperf-device {self.settings.device}: {exc}")
            except DeviceShared as exc:
                self._device_error = exc
            else:
                self._configure_threads()
                self.stack = with_hook_fields(collect(self._device.kind, self._device.info()), self.stack_fields)
        if self._device is None:
            assert self._device_error is not None
            raise self._device_error
        return self._device

    def add_stack_fields(self, fields: Dict[str, Any]) -> None:
        """Fields the hooks add to the fingerprint (validated by stack.fields), in the stack
        whether it is collected already or later."""
        self.stack_fields = dict(fields)
        if self.stack:
            self.stack = with_hook_fields(self.stack, self.stack_fields)

    def device_kind(self) -> Optional[str]:
        """The device's kind, or None when it is unavailable (the tests then skip)."""
        try:
            return self.device().kind
        except (DeviceUnavailable, DeviceShared):
            return None

    def _configure_threads(self) -> None:
        if self.settings.threads is not None:
            import torch

            torch.set_num_threads(self.settings.threads)

    @property
    def model_name(self) -> str:
        kind = self._device.kind if self._device else "cpu"
        return default_model(kind, self.settings.model)

    # -- model ------------------------------------------------------------------------------
    def model(self, precision: Precision) -> LoadedModel:
        device = self.device()
        require_int8_on_npu(device, precision)
        loaded = self._loaded
        if loaded is not None and loaded.precision == precision and loaded.model is not None:
            return loaded
        self._free_loaded()
        device.empty_cache()
        self._loaded = load_model(self.model_name, precision, device.torch_device, self.workloads.prompts())
        # What loading and quantizing left behind (16-bit weights, fidelity activations) leaves the
        # allocator before anything is measured, so reserved memory shows what the model needs.
        gc.collect()
        device.empty_cache()
        return self._loaded

    def _free_loaded(self) -> None:
        """Drop the loaded model, and with it its compiled graphs (which hold its weights)."""
        if self._graph is not None:
            self._graph = None
            reset_compiled()
        free_model(self._loaded)
        self._loaded = None

    def graph_runner(self, loaded: LoadedModel) -> GraphRunner:
        """The compiled decode steps of the loaded model (Unsupported where the stack or device
        has no graph mode: the test is skipped with the reason)."""
        if self._graph is None or self._graph.loaded is not loaded:
            device = self.device()
            backend = select_backend(device.kind, device.name(), self.settings.graph_backend)
            self._graph = GraphRunner(loaded, device, backend, warm=backend.name not in self._warm_compilers)
            self._warm_compilers.add(backend.name)
        return self._graph

    def release_device(self) -> None:
        """Free the loaded model and empty the device cache (before a confirmation process
        loads its own copy); the next test that needs a model loads it again."""
        self._free_loaded()
        if self._device is not None:
            self._device.empty_cache()

    def recover_from_oom(self, exc: BaseException) -> str:
        """Describe the failure with the memory figures, then free the model for the next test."""
        device = self.device()
        figures = []
        try:
            mem = device.memory()
            figures = [f"{k}={v / 2**20:.0f}MiB" for k, v in mem.items() if v is not None]
        except Exception as mem_exc:  # the figures are a courtesy; the OOM is the error
            figures = [f"memory figures unavailable ({mem_exc})"]
        self._free_loaded()
        device.empty_cache()
        first = first_line(exc)
        return (
            f"out of memory on {device.kind} ({device.name()}): {first}; at the failure: {', '.join(figures)}. "
            "The model was freed and the session goes on; lower the batch size or use a smaller precision"
        )

    # -- baselines ------------------------------------------------------------------------
    def profile_entries(self) -> Union[Dict[str, BaselineEntry], BaselineError]:
        """This profile's baselines, read once; a broken file is kept as its error."""
        key = (self.device().profile(), self.model_name)
        if key not in self._baselines:
            try:
                self._baselines[key] = self.store.load(*key)
            except BaselineError as exc:
                self._baselines[key] = exc
        return self._baselines[key]

    def baseline_entry(self, test_id: str) -> Optional[BaselineEntry]:
        """The stored entry of this test; a broken file raises BaselineError every time."""
        found = self.profile_entries()
        if isinstance(found, BaselineError):
            raise found
        return found.get(test_id)

    def has_baseline(self, test_id: str) -> bool:
        """Whether this profile's baselines hold ``test_id`` (False when they cannot be read:
        the tests that need the file report that)."""
        try:
            return self.baseline_entry(test_id) is not None
        except (BaselineError, DeviceUnavailable, DeviceShared):
            return False

    def run_noise(self) -> Dict[str, NoisePrior]:
        """Between-process noise per timing metric pooled over this profile's stored baselines
        (empty when the file cannot be read, holds none, or was recorded in one process)."""
        entries = self.profile_entries()
        if isinstance(entries, BaselineError) or not entries:
            return {}
        key = (self.device().profile(), self.model_name)
        if key not in self._run_noise:
            self._run_noise[key] = run_noise(entries.values())
        return self._run_noise[key]

    def entries_without_noise(self) -> Tuple[int, int]:
        """(entries of this profile that carry no between-process noise, all entries); (0, 0) when
        the file cannot be read or holds none."""
        entries = self.profile_entries()
        if isinstance(entries, BaselineError) or not entries:
            return 0, 0
        return sum(1 for e in entries.values() if not e.noise_cv), len(entries)

    # -- calibration ------------------------------------------------------------------------
    def calibration(self) -> Dict[str, Any]:
        """Achieved matmul TFLOP/s and copy GB/s of this device, measured once per session."""
        if self._calibration is None:
            self._calibration = calibration_mod.calibrate(self.device())
        return self._calibration

    def health_problems(self) -> List[str]:
        """Calibration figures clearly below those stored with this profile's baselines."""
        entries = self.profile_entries()
        if isinstance(entries, BaselineError):
            return []  # reported by each test that needs the file
        stored = [e.raw.get("calibration") for e in entries.values() if isinstance(e.raw.get("calibration"), dict)]
        if not stored:
            return []
        newest = max(stored, key=lambda c: c.get("measured_at", ""))
        return health_problems(self.calibration(), newest)

    # -- outcomes ---------------------------------------------------------------------------
    def start(self, test_id: str) -> TestOutcome:
        """A new test's outcome, on a clean device: what earlier tests left in the allocator's
        cache is freed and the peaks are reset, so a test's peak memory is its own wherever it
        runs (after a larger test, alone, or in a confirmation process)."""
        device = self.device()
        gc.collect()
        device.empty_cache()
        device.reset_peak_memory()
        outcome = TestOutcome(test_id)
        self.outcomes[test_id] = outcome
        return outcome

    def discard(self, test_id: str) -> None:
        """Forget a test that was skipped after it started (its stack lacks what it needs)."""
        self.outcomes.pop(test_id, None)
