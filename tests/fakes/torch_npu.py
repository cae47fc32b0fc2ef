"""A fake ``torch_npu`` with the documented API surface and quirks (docs/torch-npu.md#device-api).

``build(version=...)`` / ``install(monkeypatch, version=...)`` behave like that torch_npu release:
its int8 operators and their keyword arguments (tests/fakes/npu_ops.py, checked against the
published wheels by tests/stack/test_npu_api_conformance.py), ``get_cann_version`` (absent in 2.1.0.post8,
'' before CANN 8.1.RC1), and the device properties (core counts from 2.1.0.post17 and 2.8).

Reproduced quirks:
- memory getters and ``memory_stats`` return 0 / {} before the NPU is initialized; ``set_device``
  does not initialize it (a tensor op, ``synchronize``, ``get_device_properties`` or
  ``is_jit_compile_false`` does);
- ``get_device_name`` returns the SoC name and raises AssertionError when no device is visible;
  ``set_device``, ``get_device_name`` and ``get_device_properties`` raise AssertionError for an
  index out of range;
- ``Event.elapsed_time`` is in milliseconds, drains the queue itself, and raises if either
  event was never recorded; events need ``enable_timing=True``;
- ``device_count`` honours ``ASCEND_RT_VISIBLE_DEVICES`` (parsing stops at the first bad char);
- ``utils.get_cann_version`` returns '' for an unknown module name.

The device runs ahead of the host, on virtual clocks: ``npu._launch(seconds)`` queues device work
and returns after a launch cost (the host clock moves by that only); the device works through its
queue in order. ``synchronize``, ``Event.synchronize`` and ``elapsed_time`` make the host wait;
an event carries the device time at which the work queued before it finished, on the device's own
epoch (``DEVICE_EPOCH_S`` ahead of the host clock), so a duration computed from one host and one
device time is visibly wrong. ``npu._host_clock`` is the host clock to hand to timing code;
``npu._advance(seconds)`` queues work without a launch cost. ``build(realtime=True)`` puts the
host on ``time.perf_counter`` (waits sleep), for code that reads the host clock itself.
"""

from __future__ import annotations

import os
import sys
import time
import types
from collections import OrderedDict
from typing import Any, Optional, Tuple

from packaging.version import Version

from fakes.npu_ops import ContractError, make_ops

__all__ = ["ContractError", "build", "install"]


DEVICE_EPOCH_S = 1000.0  # device timestamps = host time line + this
LAUNCH_S = 1e-5  # host time to queue one piece of device work


class _State:
    def __init__(self, devices: int, soc: str, total: int) -> None:
        self.devices = devices
        self.soc = soc
        self.total = total
        self.initialized = False
        self.host = 0.0  # the host's clock, seconds
        self.busy_until = 0.0  # when the device finishes its queue, on the host's time line
        self.allocated = 0
        self.peak = 0
        self.reserved = 0
        self.peak_reserved = 0
        self.syncs = 0
        self.current = 0


def _visible(state: _State) -> int:
    """device_count() under ASCEND_RT_VISIBLE_DEVICES, as torch_npu 2.6+ parses it.

    Only the digits and commas before the first other character count ("0,1x,2" -> [0, 1]); an
    empty entry ends the list; the ids must ascend (else no device); the list is cut at the first
    id the machine does not have.
    """
    env = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if env is None:
        return state.devices
    prefix = ""
    for ch in env:
        if not (ch.isdigit() or ch == ","):
            break
        prefix += ch
    ids: list = []
    for entry in prefix.split(",") if prefix else []:
        if not entry:
            break
        ids.append(int(entry))
    for position, value in enumerate(ids):
        if position and value <= ids[position - 1]:
            return 0
        if value >= state.devices:
            return position
    return len(ids)


def _has_core_counts(version: str) -> bool:
    v = Version(version)
    return v >= Version("2.8") or Version("2.1.0.post17") <= v < Version("2.2")


def build(devices: int = 1, soc: str = "Ascend910B3", total: int = 64 * 2**30, version: str = "2.5.1",
          cann: str = "8.3.RC1", new_props: Optional[bool] = None, driver: str = "24.1.rc3",
          realtime: bool = False) -> types.ModuleType:
    """A fake torch_npu of the given release; ``cann`` is what get_cann_version("CANN") returns.

    ``realtime``: the host clock is ``time.perf_counter`` and waiting for the device sleeps, for
    code that reads the host clock itself (the plugin's own measurement); otherwise the host
    clock is virtual and advanced by launches and waits only.
    """
    state = _State(devices, soc, total)
    if new_props is None:
        new_props = _has_core_counts(version)
    npu = types.ModuleType("torch_npu.npu")
    npu._state = state  # type: ignore[attr-defined]

    def _lazy_init() -> None:
        state.initialized = True

    def is_available() -> bool:
        return _visible(state) > 0

    def device_count() -> int:
        return _visible(state)

    def current_device() -> int:
        return state.current

    def _index(device: Optional[Any]) -> int:
        index = state.current if device is None else int(str(device).split(":")[-1])
        if not 0 <= index < device_count():
            raise AssertionError(f"Invalid device id {index}")
        return index

    def set_device(device: Any) -> None:
        # The real set_device selects the device but does not run lazy init: memory_stats()
        # stays {} until a tensor op or synchronize.
        state.current = _index(device)

    def _now() -> float:
        return time.perf_counter() if realtime else state.host

    def _wait_until(t: float) -> None:
        if realtime:
            delay = t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        else:
            state.host = max(state.host, t)

    def synchronize(device: Optional[Any] = None) -> None:
        _lazy_init()
        state.syncs += 1
        _wait_until(state.busy_until)

    class Event:
        def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
            self.enable_timing = enable_timing
            self._time: Optional[float] = None  # on the host's time line

        def record(self, stream: Any = None) -> None:
            _lazy_init()
            # The event completes once the work queued before it has run.
            self._time = max(state.busy_until, _now())

        def recorded_time(self) -> float:
            """The device timestamp, in the device's epoch."""
            if self._time is None:
                raise RuntimeError("Event has not been recorded")
            return self._time + DEVICE_EPOCH_S

        def wait(self, stream: Any = None) -> None:
            pass

        def query(self) -> bool:
            return self._time is not None and _now() >= self._time

        def synchronize(self) -> None:
            if self._time is not None:
                _wait_until(self._time)

        def elapsed_time(self, end_event: "Event") -> float:
            if not (self.enable_timing and end_event.enable_timing):
                raise RuntimeError("Events must be created with enable_timing=True to measure elapsed time")
            if self._time is None or end_event._time is None:
                raise RuntimeError("Both events must be recorded before calculating elapsed time.")
            # torch_npu drains the task queue and synchronizes both events itself.
            _wait_until(max(self._time, end_event._time))
            return (end_event.recorded_time() - self.recorded_time()) * 1e3

    def memory_stats(device: Optional[Any] = None) -> "OrderedDict[str, int]":
        if not state.initialized:
            return OrderedDict()
        return OrderedDict(
            [
                ("allocated_bytes.all.current", state.allocated),
                ("allocated_bytes.all.peak", state.peak),
                ("reserved_bytes.all.current", state.reserved),
                ("reserved_bytes.all.peak", state.peak_reserved),
            ]
        )

    def memory_allocated(device: Optional[Any] = None) -> int:
        return memory_stats(device).get("allocated_bytes.all.current", 0)

    def max_memory_allocated(device: Optional[Any] = None) -> int:
        return memory_stats(device).get("allocated_bytes.all.peak", 0)

    def memory_reserved(device: Optional[Any] = None) -> int:
        return memory_stats(device).get("reserved_bytes.all.current", 0)

    def max_memory_reserved(device: Optional[Any] = None) -> int:
        return memory_stats(device).get("reserved_bytes.all.peak", 0)

    def reset_peak_memory_stats(device: Optional[Any] = None) -> None:
        state.peak = state.allocated
        state.peak_reserved = state.reserved

    def mem_get_info(device: Optional[Any] = None) -> Tuple[int, int]:
        _lazy_init()
        used = state.reserved + 3 * 2**30  # CANN context and other processes
        return state.total - used, state.total

    def empty_cache() -> None:
        if state.initialized:
            state.reserved = state.allocated

    def get_device_name(device: Optional[Any] = None) -> str:
        if device_count() == 0:
            raise AssertionError("Invalid device id")
        _index(device)
        return state.soc

    class _Props:
        def __init__(self) -> None:
            self.name = state.soc
            self.total_memory = state.total
            if new_props:
                self.cube_core_num = 24
                self.vector_core_num = 48

    def get_device_properties(device: Optional[Any] = None) -> _Props:
        _lazy_init()
        _index(device)
        return _Props()

    jit = {"value": False}

    def set_compile_mode(jit_compile: bool = False) -> None:
        jit["value"] = jit_compile

    def is_jit_compile_false() -> bool:
        _lazy_init()
        return not jit["value"]

    # Test helpers (not torch_npu API): stand-ins for device work.
    def _launch(seconds: float, launch_s: float = LAUNCH_S) -> None:
        """Queue ``seconds`` of device work; the host only pays the launch."""
        _lazy_init()
        if not realtime:  # in real time the launch costs what the caller's code costs
            state.host += launch_s
        state.busy_until = max(state.busy_until, _now()) + seconds

    def _advance(seconds: float) -> None:
        _launch(seconds, launch_s=0.0)

    def _host_clock() -> float:
        return _now()

    def _copy_to_host() -> None:
        """A device-to-host copy (``.cpu()``, ``.item()``): the host waits for the queue."""
        _wait_until(state.busy_until)

    def _allocate(nbytes: int) -> None:
        _lazy_init()
        state.allocated += nbytes
        state.peak = max(state.peak, state.allocated)
        state.reserved = max(state.reserved, state.allocated)
        state.peak_reserved = max(state.peak_reserved, state.reserved)

    def _free(nbytes: int) -> None:
        state.allocated -= nbytes

    for fn in (is_available, device_count, current_device, set_device, synchronize, memory_stats,
               memory_allocated, max_memory_allocated, memory_reserved, max_memory_reserved,
               reset_peak_memory_stats, mem_get_info, empty_cache, get_device_name,
               get_device_properties, set_compile_mode, is_jit_compile_false, _advance, _allocate, _free,
               _launch, _host_clock, _copy_to_host):
        setattr(npu, fn.__name__, fn)
    npu.Event = Event  # type: ignore[attr-defined]

    utils = types.ModuleType("torch_npu.npu.utils")

    def get_cann_version(module: str = "CANN") -> str:
        known = ("CANN", "RUNTIME", "COMPILER", "HCCL", "TOOLKIT", "OPP", "OPP_KERNEL")
        if module == "DRIVER":  # read from the driver's install files, whatever the CANN version
            return driver
        return cann if module in known else ""

    if Version(version) >= Version("2.1.0.post12"):  # absent in 2.1.0.post8 and post10
        utils.get_cann_version = get_cann_version  # type: ignore[attr-defined]
    npu.utils = utils  # type: ignore[attr-defined]

    mod = types.ModuleType("torch_npu")
    mod.__version__ = version  # type: ignore[attr-defined]
    mod.npu = npu  # type: ignore[attr-defined]
    for name, op in make_ops(version, soc).items():
        setattr(mod, name, op)
    return mod


def install(monkeypatch: Any, **kwargs: Any) -> types.ModuleType:
    """Put a fake torch_npu in sys.modules and expose it as torch.npu, as the real import does."""
    import torch

    mod = build(**kwargs)
    monkeypatch.setitem(sys.modules, "torch_npu", mod)
    monkeypatch.setitem(sys.modules, "torch_npu.npu", mod.npu)
    monkeypatch.setattr(torch, "npu", mod.npu, raising=False)
    return mod
