"""NPU and CUDA devices: both expose the torch.cuda-shaped API, so one class drives both.

The differences that matter are handled explicitly:

- ``torch.npu.Event.elapsed_time`` drains the task queue and synchronizes both events itself;
  on CUDA the end event must be synchronized first. Both paths synchronize the end event.
- ``torch.npu.memory_stats`` is ``{}`` until the NPU is initialized, so allocator figures are
  read only after the first device operation (the model load), and an all-zero reading after
  work has run is reported as an error, not as zero memory.
- ``get_device_name`` on NPU returns the SoC name (``Ascend910B3``) and raises
  ``AssertionError`` when no device is visible.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..errors import MeasurementError
from .base import profile_name

# The caching allocator's peaks that every memory sample reads.
PEAK_KEYS = ("allocated_bytes.all.peak", "reserved_bytes.all.peak")


class EventTimer:
    """Device events around the timed region; a synchronize before start."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._start = module.Event(enable_timing=True)
        self._end = module.Event(enable_timing=True)

    def start(self) -> None:
        self._module.synchronize()
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end)) / 1e3


class AcceleratorDevice:
    """A torch.cuda-shaped device module (``torch.cuda`` or ``torch_npu.npu``)."""

    def __init__(self, kind: str, module: Any, index: int = 0) -> None:
        self.kind = kind
        self._module = module
        self.index = index
        self.torch_device = f"{kind}:{index}"
        self.timing_source = f"{kind} events"
        self.memory_source = f"torch.{kind} caching allocator + mem_get_info"
        self._name: Optional[str] = None

    def name(self) -> str:
        if self._name is None:
            self._name = str(self._module.get_device_name(self.index))
        return self._name

    def profile(self) -> str:
        return profile_name(self.kind, self.name())

    def synchronize(self) -> None:
        self._module.synchronize(self.index)

    def timer(self) -> EventTimer:
        return EventTimer(self._module)

    def reset_peak_memory(self) -> None:
        self._module.reset_peak_memory_stats(self.index)

    def memory(self) -> Dict[str, Optional[int]]:
        stats = self._module.memory_stats(self.index)
        if not stats:
            raise RuntimeError(
                f"torch.{self.kind}.memory_stats() is empty: the {self.kind} was not initialized "
                "when memory was read; run a device operation (load the model) first"
            )
        missing = [key for key in PEAK_KEYS if key not in stats]
        if missing:
            raise MeasurementError(
                f"torch.{self.kind}.memory_stats() has no {', '.join(missing)}: the peak memory of this run cannot "
                "be read, and 0 bytes would pass any memory gate; check the torch / torch_npu install")
        free, total = self._module.mem_get_info(self.index)
        return {
            "peak_allocated_bytes": int(stats["allocated_bytes.all.peak"]),
            "peak_reserved_bytes": int(stats["reserved_bytes.all.peak"]),
            "device_used_bytes": int(total) - int(free),
            "peak_rss_bytes": None,
        }

    def empty_cache(self) -> None:
        self._module.empty_cache()

    def info(self) -> Dict[str, Any]:
        props = self._module.get_device_properties(self.index)
        info: Dict[str, Any] = {
            "device_kind": self.kind,
            "device_name": self.name(),
            "device_count": int(self._module.device_count()),
            "device_total_memory_bytes": int(getattr(props, "total_memory", 0)) or None,
        }
        # Newer torch_npu releases expose core counts; older ones only name and total_memory.
        for attr in ("cube_core_num", "vector_core_num", "multi_processor_count", "L2_cache_size"):
            value = getattr(props, attr, None)
            if value is not None:
                info[f"device_{attr}"] = value
        return info

    def time_floor(self) -> Optional[float]:
        return None
