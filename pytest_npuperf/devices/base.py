"""The one Device interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Protocol


def profile_name(kind: str, name: str) -> str:
    """'cpu' + 'AMD EPYC 7B13' -> 'cpu-AMD-EPYC-7B13': readable and usable as a folder name."""
    return "-".join([kind] + name.split())


class DeviceUnavailable(Exception):
    """The requested device cannot be used here; the message says why and what to do."""


class Timer(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float:
        """Seconds since start, after the device finished all work queued before stop."""
        ...


class Device(Protocol):
    """What measurement needs from a backend. Every method raises on failure; none is a no-op."""

    kind: str  # 'npu', 'cuda' or 'cpu'
    torch_device: str  # what torch accepts: 'npu:0', 'cuda:0', 'cpu'
    timing_source: str  # e.g. 'npu events', 'cuda events', 'perf_counter'
    memory_source: str

    def name(self) -> str: ...

    def profile(self) -> str:
        """The baseline key: kind + chip (SoC name, GPU name or CPU model)."""
        ...

    def synchronize(self) -> None: ...

    def timer(self) -> Timer: ...

    def reset_peak_memory(self) -> None: ...

    def memory(self) -> Dict[str, Optional[int]]:
        """peak_allocated_bytes, peak_reserved_bytes, device_used_bytes, peak_rss_bytes."""
        ...

    def empty_cache(self) -> None: ...

    def info(self) -> Dict[str, Any]:
        """Facts for the stack fingerprint (name, total memory, core counts...)."""
        ...

    def time_floor(self) -> Optional[float]:
        """A larger regression budget for timing metrics on a profile that is only a pipeline check (None: the defaults)."""
        ...


@dataclass(frozen=True)
class GraphBackend:
    name: str  # 'inductor', 'inductor-cudagraphs', 'torchair-reduce-overhead', ...
    compile_kwargs: Dict[str, Any]  # keyword arguments of torch.compile (backend object included)
    description: str  # every setting that changes the compiled work, for the workload identity
    versions: Dict[str, str] = field(default_factory=dict)  # e.g. {'torchair': '...'}
