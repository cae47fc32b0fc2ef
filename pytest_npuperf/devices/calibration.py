"""Calibration: achieved matmul TFLOP/s and copy bandwidth of this device, measured once per session.

Stored with every result, so that step and operator results report their fraction of what this
device achieves, and the judge can tell a slower device (``judge/roofline.py``) from a slower stack.
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any, Dict, List

from ..stack.compat import calibration_dtypes
from .base import Device


def _timed(device: Device, fn: Any, budget_s: float) -> float:
    """Median seconds of ``fn`` over repeats that fill about ``budget_s`` (at least 3)."""
    fn()
    device.synchronize()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 50):
        timer = device.timer()
        timer.start()
        fn()
        times.append(timer.stop())
    return statistics.median(times)


def calibrate(device: Device, budget_s: float = 1.0) -> Dict[str, Any]:
    """Achieved bf16/fp16 matmul TFLOP/s and copy GB/s (2 x bytes / time) on this device."""
    import torch

    accel = device.kind != "cpu"
    n = 8192 if accel else 1024
    copy_bytes = (1 << 30) if accel else (256 << 20)
    out: Dict[str, float] = {}
    with torch.inference_mode():
        for dtype in calibration_dtypes(device.kind):  # fp16 is absent on CPUs before torch 2.2
            size = n if (accel or dtype == "bfloat16") else 512  # fp16 has no fast CPU kernel
            a = torch.randn(size, size, device=device.torch_device).to(getattr(torch, dtype))
            seconds = _timed(device, functools.partial(torch.matmul, a, a), budget_s / 3)
            out[f"matmul_{dtype}_tflops"] = 2 * size**3 / seconds / 1e12
            del a
        src = torch.ones(copy_bytes, dtype=torch.uint8, device=device.torch_device)
        dst = torch.empty_like(src)
        seconds = _timed(device, functools.partial(dst.copy_, src), budget_s / 3)
        out["copy_gb_s"] = 2 * copy_bytes / seconds / 1e9
        out["copy_buffer_bytes"] = float(copy_bytes)
        out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        del src, dst
    device.empty_cache()
    return out
