"""The CPU device: perf_counter timing and the process memory high-water mark."""

from __future__ import annotations

import os
import resource
import time
from typing import Any, Dict, Optional

from ..stack.fingerprint import cpu_model_name
from .base import profile_name

# Between fresh processes the median of the same tiny-model test moves a lot on a shared
# 2-core CPU: benchmarks/noise.py measured between-process CVs up to 17% and a largest/smallest
# median ratio of 1.60 for e2e (1.68 for TTFT) over 5 processes, and a fresh-clone CI run saw its
# compare pass slow down by up to 2.05x against the record pass of the same job (neighbours on the
# host); operators and model steps of the tiny model (20-60 microseconds per call, looped to
# 5 ms per sample) moved by up to 2.5x between an A/A pair of fresh processes. A gate must not
# fire on that, so on a CPU every timing budget is raised to 300% (the run header says so): here
# the suite exercises the pipeline; it is no performance gate.
CPU_TIME_FLOOR = 3.0


class PerfCounterTimer:
    def __init__(self) -> None:
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self._t0


def _read_vmhwm() -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class CpuDevice:
    kind = "cpu"
    torch_device = "cpu"
    timing_source = "perf_counter"

    def __init__(self) -> None:
        self._resettable = self._try_reset()
        self.memory_source = (
            "process peak RSS (VmHWM, reset via /proc/self/clear_refs)"
            if self._resettable
            else "process peak RSS since start (ru_maxrss; not resettable here)"
        )

    @staticmethod
    def _try_reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    def name(self) -> str:
        return cpu_model_name()

    def profile(self) -> str:
        return profile_name("cpu", self.name())

    def synchronize(self) -> None:
        """CPU work is synchronous: there is nothing queued to wait for."""

    def timer(self) -> PerfCounterTimer:
        return PerfCounterTimer()

    def reset_peak_memory(self) -> None:
        if self._resettable:
            self._try_reset()

    def memory(self) -> Dict[str, Optional[int]]:
        peak = _read_vmhwm() if self._resettable else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {
            "peak_allocated_bytes": None,
            "peak_reserved_bytes": None,
            "device_used_bytes": None,
            "peak_rss_bytes": int(peak),
        }

    def empty_cache(self) -> None:
        """The CPU allocator has no cache to empty."""

    def info(self) -> Dict[str, Any]:
        try:
            affinity = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = None
        return {
            "device_kind": "cpu",
            "device_name": self.name(),
            "device_count": 1,
            "cpu_count": os.cpu_count(),
            "cpu_affinity": affinity,
        }

    def time_floor(self) -> Optional[float]:
        return CPU_TIME_FLOOR
