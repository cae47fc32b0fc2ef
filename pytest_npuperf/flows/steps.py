"""The step and operator flows: one model step (prefill, decode) or one operator, timed as a call.

Each sample loops the call until it lasts at least MIN_SAMPLE_S, so a call of microseconds
measures the call and not the timer; the result reports the FLOPs and bytes one call moves
and its fraction of the calibrated device.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Optional

from ..devices.npu_int8 import require_int8_on_npu
from ..errors import MeasurementError
from ..judge.outcome import TestOutcome
from ..judge.result import Sample, Workload
from ..judge.roofline import check_bandwidth, peak_gb_s
from ..model.loader import config_fingerprint, model_config
from ..model.quant import KERNELS
from ..modes import EAGER, GRAPH, ExecutionMode
from ..precision import Precision
from ..store.baselines import model_key
from . import kernels
from .graph.plan import GraphPlan
from .kernels import Kernel, KernelError, graph_decode_kernel, step_kernel
from .measurement import TestRun
from .session import PerfSession

# Step and operator samples loop their call up to this long (and at most this many times).
MIN_SAMPLE_S = 0.005
MAX_CALLS_PER_SAMPLE = 1000


def op_quant_kernel(name: str, device_kind: str) -> str:
    """The int8 kernel an 'int8_<scheme>' operator runs on this device ('' for other operators)."""
    if not name.startswith("int8_"):
        return ""
    found = KERNELS.get((device_kind, name.split("_", 1)[1]))
    return found[0] if found else ""


def run_step(
    session: PerfSession, test_id: str, kind: str, precision: Precision, batch_size: int, length: int,
    tolerances: Mapping[str, float], budgets: Mapping[str, float], mode: ExecutionMode,
) -> TestOutcome:
    """One prefill forward over ``length`` tokens, or one decode step at context ``length``
    (graph mode: graph mode's compiled decode step over a static cache)."""
    if mode.graph and kind != "decode":
        raise KernelError(f"graph mode times the decode step only (what graph mode compiles), not {kind!r}")
    run = TestRun(session, test_id)
    loaded = run.load(precision)
    torch_device = session.device().torch_device
    if mode.graph:
        plan = GraphPlan(session.graph_runner(loaded), loaded)

        def setup() -> Any:  # compiles the shape: errors and OOM recorded like a measurement's
            kernel, shape, eager = graph_decode_kernel(loaded, plan, batch_size, length, torch_device)
            kernel.reset()
            reference = eager()
            kernel.reset()
            plan.set_agreement(plan.runner.logits_agreement(reference[:batch_size], kernel.fn()[:batch_size]))
            return kernel, shape

        kernel, shape = run.guard(setup)
        workload = Workload(loaded.model_id, loaded.fingerprint, precision.name, batch_size, (kind,), (length,), 1,
                            kind="step-decode-graph",
                            generation=f"forward, cache=static({shape.cache_len}), decode step compiled, "
                                       f"attn={loaded.attn_implementation}",
                            quant_kernel=plan.quant_kernel(), graph=plan.identity([(shape.batch, shape.cache_len)]))
        return _run_kernel(run, kernel, workload, precision.dtype, tolerances, budgets, plan)
    kernel = step_kernel(loaded, kind, batch_size, length, torch_device)
    workload = Workload(loaded.model_id, loaded.fingerprint, precision.name, batch_size, (kind,), (length,),
                        1 if kind == "decode" else 0, kind=f"step-{kind}",
                        generation=f"forward, cache=dynamic, attn={loaded.attn_implementation}",
                        quant_kernel=loaded.quant_kernel)
    return _run_kernel(run, kernel, workload, precision.dtype, tolerances, budgets)


def run_op(
    session: PerfSession, test_id: str, name: str, precision: Precision, tokens: int,
    tolerances: Mapping[str, float], budgets: Mapping[str, float],
) -> TestOutcome:
    """One operator at the model config's shapes, with ``tokens`` rows (or sequence length)."""
    run = TestRun(session, test_id)
    device = session.device()
    if name.startswith("int8_"):  # the int8 operators at this activation dtype
        require_int8_on_npu(device, precision, name[len("int8_"):], precision.dtype)
    config = model_config(session.model_name)
    kernel = kernels.op_kernel(config, name, tokens, precision.dtype, device.kind, device.torch_device)
    workload = Workload(model_key(session.model_name),
                        config_fingerprint(config, precision.name, "op"), precision.name, 1, (name,), (tokens,), 0,
                        kind="op", quant_kernel=op_quant_kernel(name, device.kind))
    return _run_kernel(run, kernel, workload, precision.dtype, tolerances, budgets)


def _run_kernel(
    run: TestRun,
    kernel: Kernel,
    workload: Workload,
    dtype_name: str,
    tolerances: Mapping[str, float],
    budgets: Mapping[str, float],
    graph: Optional[GraphPlan] = None,
) -> TestOutcome:
    session = run.session
    device = session.device()
    calibration = session.calibration()
    published = peak_gb_s(device.name())
    calls = {"per_sample": 1}

    def call() -> None:
        kernel.reset()
        kernel.fn()

    def warm() -> None:
        for _ in range(session.settings.warmup):
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
        problem = check_bandwidth(kernel.bytes, seconds, calibration, run.test_id, published)
        if problem:
            raise MeasurementError(problem)
        sample = Sample(time_s=seconds, achieved_tflops=kernel.flops / seconds / 1e12,
                        achieved_gb_s=kernel.bytes / seconds / 1e9)
        if graph:
            graph.stamp(sample)
        return sample

    samples = run.samples(warm, measure, session.settings.runs)
    seconds = statistics.median(s.time_s for s in samples)
    peak_tflops = calibration.get(f"matmul_{dtype_name}_tflops") or calibration.get("matmul_bfloat16_tflops")
    extra = {
        "flops": kernel.flops,
        "bytes": kernel.bytes,
        "calls_per_sample": calls["per_sample"],
        "fraction_of_calibrated_tflops": kernel.flops / seconds / 1e12 / peak_tflops if peak_tflops else None,
        "fraction_of_calibrated_bandwidth": kernel.bytes / seconds / 1e9 / calibration["copy_gb_s"],
        "execution_mode": GRAPH if graph else EAGER,
    }
    if graph:
        extra["graph"] = graph.summary()
    return run.judge(run.result(workload, samples, extra), measure, tolerances, budgets)
