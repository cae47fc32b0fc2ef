"""Run-level state and the measurement flow of one test; knows nothing of pytest.

One PerfSession per pytest run: the resolved device, the stack fingerprint, the loaded model
(one at a time, so that a 14 GB model is freed before the next precision is built), the
baselines read so far and every test's outcome.
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
import statistics
import sys
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ..devices import Device, DeviceShared, DeviceUnavailable, resolve_device
from ..errors import BaselineError, MeasurementError
from ..judge.budgets import check_budgets
from ..judge.compare import ACCELERATOR_KINDS, Comparison, compare, floors_for
from ..judge.outcome import TestOutcome
from ..judge.result import GENERATION_MODE, GRAPH_GENERATION_MODE, Result, Sample, Workload, token_ids_hash
from ..judge.roofline import check_bandwidth, peak_gb_s
from ..judge.stats import INCONCLUSIVE, REGRESSED
from ..model.loader import LoadedModel, ModelError, default_model, free_model, load_model
from ..model.quant import QuantizationError
from ..model.workloads import batch_prompts
from ..precision import get_precision
from ..report.header import calibration_lines
from ..settings import Settings
from ..store.baselines import BaselineEntry, BaselineStore, model_key
from .generation import batch_fidelity, decode_step_bytes, generation_picture
from .graph.plan import GraphPlan, check_mode
from .measure import GENERATION_SETTINGS, check_finite, generate_fixed, make_batch, measure_once, warm_up
from .serving import vllm as vllm_engine
from .serving.engines import serving_sample

# Step and operator samples loop their call up to this long (and at most this many times).
MIN_SAMPLE_S = 0.005
MAX_CALLS_PER_SAMPLE = 1000


def tokenizer_identity(loaded: LoadedModel) -> str:
    """What turned the prompts into ids: the tokenizer's own description, else its class."""
    return str(getattr(loaded.tokenizer, "name", "") or type(loaded.tokenizer).__name__)


def serving_identity(scenario: Any, engine_args: Optional[Mapping[str, Any]]) -> str:
    """The arrival schedule (hashed), SLOs and engine settings of a serving test.

    The vLLM arguments that name a temporary folder or follow the free memory are left out:
    they differ between runs of the same work.
    """
    import hashlib
    import json

    arrivals = hashlib.sha256(json.dumps([round(t, 9) for t in scenario.arrivals()]).encode()).hexdigest()[:16]
    slos = ";".join(f"{x.name}:ttft<={x.ttft_s:g}s,tpot<={x.tpot_s:g}s" for x in scenario.slos)
    text = f"arrivals={arrivals}, slos=[{slos}], max_batch={scenario.max_batch}"
    if engine_args:
        kept = {k: v for k, v in engine_args.items() if k not in ("model", "gpu_memory_utilization")}
        text += f", engine_args={json.dumps(kept, sort_keys=True, default=str)}"
    return text


def op_quant_kernel(name: str, device_kind: str) -> str:
    """The int8 kernel an 'int8_<scheme>' operator runs on this device ('' for other operators)."""
    from ..model.quant import KERNELS

    if not name.startswith("int8_"):
        return ""
    found = KERNELS.get((device_kind, name.split("_", 1)[1]))
    return found[0] if found else ""


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
        self._graph: Optional[Any] = None  # the GraphRunner of the loaded model (graph mode)
        self._warm_compilers: set = set()  # graph backends whose one-time start-up this process paid
        self._calibration: Optional[Dict[str, Any]] = None
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
                from ..stack.fingerprint import collect

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
        lines += self._noise_lines(device)
        return lines + calibration_lines(device.name(), self.calibration())

    def _noise_lines(self, device: Device) -> List[str]:
        """On an accelerator: which baselines carry no between-process noise (it sets tolerances)."""
        if device.kind not in ACCELERATOR_KINDS or self.settings.save_baseline:
            return []
        entries = self._profile_entries()
        if isinstance(entries, BaselineError) or not entries:
            return []
        missing = [tid for tid, e in entries.items() if not e.noise_cv]
        if not missing:
            return []
        return [f"npuperf: {len(missing)} of {len(entries)} baseline entries of {device.profile()} carry no "
                "between-process noise, so their tolerances come from in-process noise only; record them again "
                "with --npuperf-save-baseline (3 fresh processes by default)"]

    # -- model and baselines ----------------------------------------------------------------
    def model(self, precision: str) -> LoadedModel:
        device = self.device()
        self._check_npu_int8(device, precision)
        loaded = self._loaded
        if loaded is not None and loaded.precision == precision and loaded.model is not None:
            return loaded
        self._free_loaded()
        device.empty_cache()
        self._loaded = load_model(self.model_name, get_precision(precision), device.torch_device)
        # What loading and quantizing left behind (16-bit weights, fidelity activations) leaves the
        # allocator before anything is measured, so reserved memory shows what the model needs.
        gc.collect()
        device.empty_cache()
        return self._loaded

    @staticmethod
    def _check_npu_int8(device: Device, precision: str, scheme: Optional[str] = None,
                        dtype_name: Optional[str] = None) -> None:
        """Skip, with the reason, an int8 scheme the chip or torch_npu release cannot run."""
        spec = get_precision(precision)
        scheme = spec.quant if scheme is None else scheme
        if device.kind != "npu" or scheme is None:
            return
        from ..devices.npu_int8 import PrecisionUnsupported, unsupported
        from ..stack.versions import package_version

        module = sys.modules.get("torch_npu")
        version = package_version("torch-npu") or getattr(module, "__version__", None)
        why = unsupported(device.name(), version, scheme, dtype_name or spec.dtype)
        if why:
            raise PrecisionUnsupported(f"{precision}: {why}")

    def _free_loaded(self) -> None:
        """Drop the loaded model, and with it its compiled graphs (which hold its weights)."""
        if self._graph is not None:
            from ..stack.compat import reset_compiled

            self._graph = None
            reset_compiled()
        free_model(self._loaded)
        self._loaded = None

    def graph_runner(self, loaded: LoadedModel) -> Any:
        """The compiled decode steps of the loaded model (Unsupported where the stack or device
        has no graph mode: the test is skipped with the reason)."""
        from ..devices.graph_backend import select_backend
        from .graph.runner import GraphRunner

        if self._graph is None or self._graph.loaded is not loaded:
            device = self.device()
            backend = select_backend(device.kind, device.name(), self.settings.graph_backend)
            self._graph = GraphRunner(loaded, device, backend, warm=backend.name not in self._warm_compilers)
            self._warm_compilers.add(backend.name)
        return self._graph

    def _profile_entries(self) -> Union[Dict[str, BaselineEntry], BaselineError]:
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
        found = self._profile_entries()
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

    def _recover_from_oom(self, exc: BaseException) -> str:
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"out of memory on {device.kind} ({device.name()}): {first}; at the failure: {', '.join(figures)}. "
            "The model was freed and the session goes on; lower the batch size or use a smaller precision"
        )

    # -- calibration ------------------------------------------------------------------------
    def calibration(self) -> Dict[str, Any]:
        """Achieved matmul TFLOP/s and copy GB/s of this device, measured once per session."""
        if self._calibration is None:
            from ..devices import calibration

            self._calibration = calibration.calibrate(self.device())
        return self._calibration

    def health_problems(self) -> List[str]:
        """Calibration figures clearly below those stored with this profile's baselines."""
        from ..judge.roofline import health_problems

        entries = self._profile_entries()
        if isinstance(entries, BaselineError):
            return []  # reported by each test that needs the file
        stored = [e.raw.get("calibration") for e in entries.values() if isinstance(e.raw.get("calibration"), dict)]
        if not stored:
            return []
        newest = max(stored, key=lambda c: c.get("measured_at", ""))
        return health_problems(self.calibration(), newest)

    # -- one test -------------------------------------------------------------------------
    def _start(self, test_id: str) -> TestOutcome:
        outcome = TestOutcome(test_id)
        self.outcomes[test_id] = outcome
        return outcome

    def discard(self, test_id: str) -> None:
        """Forget a test that was skipped after it started (its stack lacks what it needs)."""
        self.outcomes.pop(test_id, None)

    def _load(self, outcome: TestOutcome, precision: str) -> LoadedModel:
        try:
            return self.model(precision)
        except (ModelError, QuantizationError) as exc:
            outcome.error = str(exc)
            raise

    def _samples(self, outcome: TestOutcome, warm: Callable[[], None], measure: Callable[[], Sample], runs: int) -> List[Sample]:
        """Warm up, then ``runs`` samples; measurement errors and OOM are recorded on the outcome."""

        def run() -> List[Sample]:
            warm()
            samples = []
            for index in range(runs):
                sample = measure()
                check_finite(sample, index)
                samples.append(sample)
            return samples

        return self._guard(outcome, run)

    def _guard(self, outcome: TestOutcome, work: Callable[[], Any]) -> Any:
        """Run ``work``; a measurement error or an OOM is recorded on the outcome (the OOM frees
        the model), anything else propagates."""
        try:
            return work()
        except MeasurementError as exc:
            outcome.error = f"measurement error: {exc}"
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            outcome.error = self._recover_from_oom(exc)
            raise DeviceOutOfMemory(outcome.error) from None

    def _judge(
        self,
        outcome: TestOutcome,
        result: Result,
        measure: Callable[[], Sample],
        tolerances: Mapping[str, float],
        budgets: Mapping[str, float],
    ) -> TestOutcome:
        """Compare with the baseline (resampling once when inconclusive) and check budgets."""
        s = self.settings
        outcome.result = result
        result.extra["calibration"] = self.calibration()
        try:
            entry = self.baseline_entry(result.test_id)
        except BaselineError as exc:
            if not s.save_baseline:
                outcome.error = str(exc)
                raise
            entry = None  # recording anew; the save itself refuses the broken file unless forced
        floors, calibrated = self._floors(tolerances)
        comparison = compare(result, entry, floors, s.alpha, calibrated)
        if comparison.status == INCONCLUSIVE and len(result.samples) < s.max_runs:
            # Only the practical gate fired: take more samples, decide once more at alpha/2.
            result.samples += self._samples(outcome, lambda: None, measure, s.max_runs - len(result.samples))
            comparison = compare(result, entry, floors, s.alpha / 2, calibrated)
            result.extra["resampled_to"] = len(result.samples)
        outcome.comparison = comparison
        outcome.budget_failures = check_budgets(result, budgets)
        return outcome

    def _floors(self, tolerances: Mapping[str, float]) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Tolerance floors with the device profile's allowance, and without it (for measured noise)."""
        overrides = {**self.settings.tolerance_map, **tolerances}
        return floors_for(self.device().time_floor(), overrides), floors_for(None, overrides)

    def compare_pooled(self, result: Result, more: List[Sample], tolerances: Mapping[str, float]) -> Comparison:
        """The samples of ``result`` and ``more`` (a confirmation process) judged together."""
        pooled = replace(result, samples=list(result.samples) + list(more))
        floors, calibrated = self._floors(tolerances)
        return compare(pooled, self.baseline_entry(result.test_id), floors, self.settings.alpha, calibrated)

    def release_device(self) -> None:
        """Free the loaded model and empty the device cache (before a confirmation process
        loads its own copy); the next test that needs a model loads it again."""
        self._free_loaded()
        if self._device is not None:
            self._device.empty_cache()

    def _result(self, test_id: str, workload: Workload, samples: List[Sample], extra: Dict[str, Any]) -> Result:
        device = self.device()
        return Result(test_id=test_id, profile=device.profile(), workload=workload, samples=samples,
                      stack=self.stack, timestamp=utc_now(),
                      extra=dict(extra, model=self.model_name, device_kind=device.kind))

    def run_generation(
        self,
        test_id: str,
        precision: str,
        batch_size: int,
        workload: str,
        tolerances: Mapping[str, float],
        budgets: Mapping[str, float],
        max_new_tokens: Optional[int] = None,
        mode: str = "eager",
    ) -> TestOutcome:
        """Measure, compare with the baseline, check budgets. Raises on invalid measurements.

        ``mode`` 'graph': the decode step compiled over a static cache (flows/graph/runner.py), its
        output checked against eager on the same weights before anything is timed.
        """
        s = self.settings
        check_mode(mode)
        get_precision(precision)  # a clear error before anything is loaded
        prompts = batch_prompts(workload, batch_size)
        new_tokens = s.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        if new_tokens < 2:
            raise ValueError(f"max_new_tokens must be >= 2 (TPOT needs two tokens), got {new_tokens}")
        outcome = self._start(test_id)
        device = self.device()
        loaded = self._load(outcome, precision)
        batch = make_batch(loaded, prompts, device.torch_device)
        graph = GraphPlan(self.graph_runner(loaded), loaded) if mode == "graph" else None
        generate = graph.runner.generate_fixed if graph else generate_fixed
        static = graph.shape_for(batch.input_ids.shape[0], batch.input_ids.shape[1] + new_tokens) if graph else None
        workload_rec = Workload(
            model_id=loaded.model_id,
            model_fingerprint=loaded.fingerprint,
            precision=precision,
            batch_size=batch_size,
            prompt_ids=tuple(batch.prompt_ids),
            prompt_tokens=tuple(batch.prompt_tokens),
            max_new_tokens=new_tokens,
            mode=GRAPH_GENERATION_MODE if graph else GENERATION_MODE,
            input_ids_hash=batch.ids_hash,
            tokenizer=tokenizer_identity(loaded),
            generation=(graph.generation(static[1]) if graph and static else GENERATION_SETTINGS)
                       + f", attn={loaded.attn_implementation}",
            quant_kernel=graph.quant_kernel() if graph else loaded.quant_kernel,
            graph=graph.identity([static]) if graph and static else "",
        )
        fidelity = batch_fidelity(loaded, batch.prompt_ids)
        step_bytes = decode_step_bytes(loaded, batch.prompt_tokens, new_tokens, static)["decode_bytes_per_step"]
        calibration, published = self.calibration(), peak_gb_s(device.name())

        def measure() -> Sample:
            sample = measure_once(loaded, device, batch, new_tokens, generate=generate)
            # The physical limit: a decode step reads the weights and the KV cache once.
            problem = check_bandwidth(step_bytes, sample.tpot_s or 0.0, calibration,
                                      f"{test_id}: a decode step (TPOT)", published)
            if problem:
                raise MeasurementError(problem)
            for key, value in fidelity.items():
                setattr(sample, key, value)
            if graph:
                graph.stamp(sample)
            return sample

        def warm() -> None:
            if graph:  # compiles this shape (once per model) and proves the output matches eager
                graph.use(*batch.input_ids.shape[:1], batch.input_ids.shape[1] + new_tokens)
                graph.check_agreement(batch, new_tokens)
            warm_up(loaded, device, batch, new_tokens, s.warmup, generate)
            if graph:
                graph.start_timing()

        samples = self._samples(outcome, warm, measure, s.runs)
        extra = {
            "execution_mode": mode,
            "weight_bytes": loaded.weight_bytes,
            "linear_weight_bytes": loaded.linear_weight_bytes,
            "dense_linear_weight_bytes": loaded.dense_linear_weight_bytes or loaded.linear_weight_bytes,
            "quant_kernel": workload_rec.quant_kernel,
            "quant_released_bytes": loaded.quant_released_bytes,
            "attn_implementation": loaded.attn_implementation,
            "tokenizer": getattr(loaded.tokenizer, "name", ""),
            "real_weights": loaded.real_weights,
        }
        extra.update(generation_picture(loaded, batch.prompt_tokens, new_tokens, samples, calibration, published,
                                        static))
        if graph:
            extra["graph"] = graph.summary()
        outcome = self._judge(outcome, self._result(test_id, workload_rec, samples, extra), measure, tolerances, budgets)
        if s.profile_dir is not None and outcome.comparison and outcome.comparison.status == REGRESSED:
            from ..devices.profiler import profile_generation

            path = profile_generation(device, lambda: measure_once(loaded, device, batch, new_tokens, generate=generate),
                                      test_id, s.profile_dir)
            outcome.result.extra["profile"] = outcome.comparison.profile = str(path)
        return outcome

    def _run_kernel(
        self,
        outcome: TestOutcome,
        kernel: Any,
        workload: Workload,
        dtype_name: str,
        tolerances: Mapping[str, float],
        budgets: Mapping[str, float],
        graph: Optional[GraphPlan] = None,
    ) -> TestOutcome:
        device = self.device()
        calibration = self.calibration()
        published = peak_gb_s(device.name())

        calls = {"per_sample": 1}

        def call() -> None:
            kernel.reset()
            kernel.fn()

        def warm() -> None:
            for _ in range(self.settings.warmup):
                call()
            # Size the timed loop: a sample of microseconds measures the timer and the dispatch,
            # and moves 2x between processes on a CPU; loop the call to reach MIN_SAMPLE_S.
            timer = device.timer()
            timer.start()
            call()
            single = timer.stop()
            calls["per_sample"] = max(1, min(MAX_CALLS_PER_SAMPLE, math.ceil(MIN_SAMPLE_S / max(single, 1e-7))))
            if graph:
                graph.start_timing()

        def measure() -> Sample:
            n = calls["per_sample"]
            device.synchronize()
            timer = device.timer()
            timer.start()
            for _ in range(n):
                call()  # the decode step's cache crop is inside the loop: a few microseconds
            seconds = timer.stop() / n
            problem = check_bandwidth(kernel.bytes, seconds, calibration, outcome.test_id, published)
            if problem:
                raise MeasurementError(problem)
            sample = Sample(time_s=seconds, achieved_tflops=kernel.flops / seconds / 1e12,
                            achieved_gb_s=kernel.bytes / seconds / 1e9)
            if graph:
                graph.stamp(sample)
            return sample

        samples = self._samples(outcome, warm, measure, self.settings.runs)
        seconds = statistics.median(s.time_s for s in samples)
        peak_tflops = calibration.get(f"matmul_{dtype_name}_tflops") or calibration.get("matmul_bfloat16_tflops")
        extra = {
            "flops": kernel.flops,
            "bytes": kernel.bytes,
            "calls_per_sample": calls["per_sample"],
            "fraction_of_calibrated_tflops": kernel.flops / seconds / 1e12 / peak_tflops if peak_tflops else None,
            "fraction_of_calibrated_bandwidth": kernel.bytes / seconds / 1e9 / calibration["copy_gb_s"],
            "execution_mode": "graph" if graph else "eager",
        }
        if graph:
            extra["graph"] = graph.summary()
        result = self._result(outcome.test_id, workload, samples, extra)
        return self._judge(outcome, result, measure, tolerances, budgets)

    def run_serving(
        self, test_id: str, engine: str, precision: str, scenario: Any,
        tolerances: Mapping[str, float], budgets: Mapping[str, float], mode: str = "eager",
    ) -> TestOutcome:
        """N requests arriving at a rate, served by one engine; each run of them is one sample.
        ``mode`` 'graph' (static engine): every batch runs on a compiled decode step, one per
        batch size bucket up to max_batch, all compiled before the requests arrive."""
        from .serving import engines as serving

        check_mode(mode)
        if engine not in serving.ENGINES:
            raise serving.ServingError(f"unknown serving engine {engine!r}; accepted: {', '.join(serving.ENGINES)}")
        if mode == "graph" and engine != "static":
            raise serving.ServingError(f"graph mode serves with the static engine only, not {engine!r} "
                                       "(continuous batching and vLLM bring their own graph handling)")
        scenario.validate()  # before anything is loaded
        get_precision(precision)
        if engine == "vllm":
            why = vllm_engine.unavailable(self.device().kind, precision)
            if why:
                raise vllm_engine.EngineUnavailable(why)
        if engine == "continuous":
            from ..stack.compat import require_continuous_batching

            require_continuous_batching()
        outcome = self._start(test_id)
        device = self.device()
        loaded = self._load(outcome, precision)
        prompts = serving.serving_prompts(scenario.requests)
        ids = [loaded.tokenizer.chat_ids(p.text) for p in prompts]
        token_counts = [len(t) for t in ids]
        capacity = serving.kv_capacity_tokens(loaded, device)
        serving.check_kv_budget(token_counts, scenario.max_new_tokens, capacity,
                                scenario.max_batch if engine == "static" else 1)
        summaries: List[Dict[str, Any]] = []
        servers: List[Any] = []  # the vLLM engine, built by the first run and kept for the others
        graph = GraphPlan(self.graph_runner(loaded), loaded) if mode == "graph" else None
        generate: Callable[..., Any] = generate_fixed
        shapes: List[Tuple[int, int]] = []
        if graph:
            from .graph.runner import BATCH_BUCKETS, batch_bucket

            if scenario.max_batch > BATCH_BUCKETS[-1]:
                raise serving.ServingError(f"graph mode compiles batch sizes up to {BATCH_BUCKETS[-1]}; "
                                           f"max_batch={scenario.max_batch} needs eager mode")
            tokens = max(token_counts) + scenario.max_new_tokens
            shapes = [graph.shape_for(b, tokens) for b in BATCH_BUCKETS if b <= batch_bucket(scenario.max_batch)]
            shapes = sorted(set(shapes))
            cache_len = shapes[0][1]

            def generate(loaded: Any, batch: Any, new: int, streamer: Any = None) -> Any:
                return graph.runner.generate_fixed(loaded, batch, new, streamer, cache_len=cache_len)

        def measure() -> Sample:
            if engine == "static":
                records, wall = serving.run_static(loaded, device, prompts, scenario, generate)
            elif engine == "continuous":
                records, wall = serving.run_continuous(loaded, device, prompts, scenario, capacity)
            else:
                if not servers:
                    servers.append(vllm_engine.VllmServer(
                        loaded, device, precision, max(token_counts) + scenario.max_new_tokens,
                        checkpoint=self.model_name if loaded.real_weights else None))
                records, wall = servers[0].run(ids, scenario.arrivals(), scenario.max_new_tokens)
            summary = serving.summarize(records, wall, scenario.slos)
            summaries.append(summary)
            sample = serving_sample(summary, scenario.slos)
            if graph:
                graph.stamp(sample)
            return sample

        def warm() -> None:
            if graph:  # every batch size bucket compiled before the requests arrive, as servers do
                graph.plan(shapes)
                for rows, _ in shapes:
                    graph.use(rows, tokens)
                # the first max_batch requests as one batch: graph vs eager on the same weights
                first = make_batch(loaded, prompts[: min(scenario.max_batch, len(prompts))], device.torch_device)
                graph.check_agreement(first, scenario.max_new_tokens, cache_len=shapes[0][1])
            if self.settings.warmup:
                measure()
                summaries.clear()
            if graph:
                graph.start_timing()

        try:
            samples = self._samples(outcome, warm, measure, self.settings.runs)
            rate = "inf" if math.isinf(scenario.rate) else f"{scenario.rate:g}"
            workload = Workload(
                loaded.model_id, loaded.fingerprint, precision, scenario.max_batch if engine == "static" else 0,
                tuple(p.prompt_id for p in prompts), tuple(token_counts), scenario.max_new_tokens,
                mode=f"serving-{engine}-rate{rate}-burst{scenario.burstiness:g}-seed{scenario.seed}"
                     f"-timeout{scenario.batch_timeout_s:g}" + ("-graph" if graph else ""),
                input_ids_hash=token_ids_hash(ids),
                tokenizer=tokenizer_identity(loaded),
                generation=f"greedy, fixed length, engine={engine}, attn={loaded.attn_implementation}"
                           + (f", decode step compiled, cache=static({shapes[0][1]})" if graph else ""),
                quant_kernel=graph.quant_kernel() if graph else loaded.quant_kernel,
                serving=serving_identity(scenario, servers[0].engine_args if servers else None),
                graph=graph.identity(shapes) if graph else "",
            )
            extra = {"serving_runs": summaries, "kv_capacity_tokens": capacity, "execution_mode": mode,
                     "slos": [dict(name=x.name, ttft_s=x.ttft_s, tpot_s=x.tpot_s) for x in scenario.slos]}
            if graph:
                extra["graph"] = graph.summary()
            if servers:
                extra["vllm_engine_args"] = servers[0].engine_args
            return self._judge(outcome, self._result(test_id, workload, samples, extra), measure, tolerances, budgets)
        finally:
            for server in servers:
                server.close()

    def run_step(
        self, test_id: str, kind: str, precision: str, batch_size: int, length: int,
        tolerances: Mapping[str, float], budgets: Mapping[str, float], mode: str = "eager",
    ) -> TestOutcome:
        """One prefill forward over ``length`` tokens, or one decode step at context ``length``
        (``mode`` 'graph': graph mode's compiled decode step over a static cache)."""
        from .kernels import KernelError, graph_decode_kernel, step_kernel

        check_mode(mode)
        if mode == "graph" and kind != "decode":
            raise KernelError(f"graph mode times the decode step only (what graph mode compiles), not {kind!r}")
        get_precision(precision)
        outcome = self._start(test_id)
        loaded = self._load(outcome, precision)
        torch_device = self.device().torch_device
        if mode == "graph":
            plan = GraphPlan(self.graph_runner(loaded), loaded)

            def setup() -> Any:  # compiles the shape: errors and OOM recorded like a measurement's
                kernel, shape, eager = graph_decode_kernel(loaded, plan, batch_size, length, torch_device)
                kernel.reset()
                reference = eager()
                kernel.reset()
                plan.set_agreement(plan.runner.logits_agreement(reference[:batch_size], kernel.fn()[:batch_size]))
                return kernel, shape

            kernel, shape = self._guard(outcome, setup)
            workload = Workload(loaded.model_id, loaded.fingerprint, precision, batch_size, (kind,), (length,), 1,
                                mode="step-decode-graph",
                                generation=f"forward, cache=static({shape.cache_len}), decode step compiled, "
                                           f"attn={loaded.attn_implementation}",
                                quant_kernel=plan.quant_kernel(), graph=plan.identity([(shape.batch, shape.cache_len)]))
            return self._run_kernel(outcome, kernel, workload, get_precision(precision).dtype, tolerances, budgets,
                                    plan)
        kernel = step_kernel(loaded, kind, batch_size, length, torch_device)
        workload = Workload(loaded.model_id, loaded.fingerprint, precision, batch_size, (kind,), (length,),
                            1 if kind == "decode" else 0, mode=f"step-{kind}",
                            generation=f"forward, cache=dynamic, attn={loaded.attn_implementation}",
                            quant_kernel=loaded.quant_kernel)
        return self._run_kernel(outcome, kernel, workload, get_precision(precision).dtype, tolerances, budgets)

    def run_op(
        self, test_id: str, name: str, precision: str, tokens: int,
        tolerances: Mapping[str, float], budgets: Mapping[str, float],
    ) -> TestOutcome:
        """One operator at the model config's shapes, with ``tokens`` rows (or sequence length)."""
        from ..model.loader import config_fingerprint, model_config
        from .kernels import op_kernel

        dtype_name = get_precision(precision).dtype
        outcome = self._start(test_id)
        device = self.device()
        if name.startswith("int8_"):  # the int8 operators at this activation dtype
            self._check_npu_int8(device, precision, name[len("int8_"):], dtype_name)
        config = model_config(self.model_name)
        kernel = op_kernel(config, name, tokens, dtype_name, device.kind, device.torch_device)
        workload = Workload(model_key(self.model_name),
                            config_fingerprint(config, precision, "op"), precision, 1, (name,), (tokens,), 0,
                            mode="op", quant_kernel=op_quant_kernel(name, device.kind))
        return self._run_kernel(outcome, kernel, workload, dtype_name, tolerances, budgets)
