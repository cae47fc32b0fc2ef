"""A fake ``torch_npu`` with the documented API surface and quirks (reference/torch_npu.md).

Reproduced quirks:
- memory getters and ``memory_stats`` return 0 / {} before the NPU is initialized;
- ``get_device_name`` returns the SoC name and raises AssertionError when no device is visible;
- ``Event.elapsed_time`` is in milliseconds, drains the queue itself, and raises if either
  event was never recorded; events need ``enable_timing=True``;
- ``device_count`` honours ``ASCEND_RT_VISIBLE_DEVICES`` (parsing stops at the first bad char);
- ``utils.get_cann_version`` returns '' for an unknown module name.
The device clock is virtual: ``npu._advance(seconds)`` stands for queued device work.
"""

from __future__ import annotations

import os
import sys
import types
from collections import OrderedDict
from typing import Any, Optional, Tuple


class _State:
    def __init__(self, devices: int, soc: str, total: int) -> None:
        self.devices = devices
        self.soc = soc
        self.total = total
        self.initialized = False
        self.clock = 0.0  # device time, seconds
        self.allocated = 0
        self.peak = 0
        self.reserved = 0
        self.peak_reserved = 0
        self.syncs = 0
        self.current = 0


def _visible(state: _State) -> int:
    env = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if env is None:
        return state.devices
    ids = []
    for part in env.split(","):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        ids.append(int(digits))
    return len([i for i in ids if i < state.devices])


def build(devices: int = 1, soc: str = "Ascend910B3", total: int = 64 * 2**30, version: str = "2.5.1",
          cann: str = "8.3.RC1", new_props: bool = False) -> types.ModuleType:
    state = _State(devices, soc, total)
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

    def set_device(device: Any) -> None:
        index = int(str(device).split(":")[-1])
        if index >= device_count():
            raise RuntimeError(f"Invalid device index {index}")
        state.current = index
        _lazy_init()

    def synchronize(device: Optional[Any] = None) -> None:
        _lazy_init()
        state.syncs += 1

    class Event:
        def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
            self.enable_timing = enable_timing
            self._time: Optional[float] = None

        def record(self, stream: Any = None) -> None:
            _lazy_init()
            self._time = state.clock

        def wait(self, stream: Any = None) -> None:
            pass

        def query(self) -> bool:
            return self._time is not None

        def synchronize(self) -> None:
            pass

        def elapsed_time(self, end_event: "Event") -> float:
            if not (self.enable_timing and end_event.enable_timing):
                raise RuntimeError("Events must be created with enable_timing=True to measure elapsed time")
            if self._time is None or end_event._time is None:
                raise RuntimeError("Both events must be recorded before calculating elapsed time.")
            return (end_event._time - self._time) * 1e3

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
        return state.soc

    class _Props:
        def __init__(self) -> None:
            self.name = state.soc
            self.total_memory = state.total
            if new_props:
                self.cube_core_num = 24
                self.vector_core_num = 48

    def get_device_properties(device: Optional[Any] = None) -> _Props:
        return _Props()

    jit = {"value": False}

    def set_compile_mode(jit_compile: bool = False) -> None:
        jit["value"] = jit_compile

    def is_jit_compile_false() -> bool:
        return not jit["value"]

    # Test helpers (not torch_npu API): stand-ins for device work.
    def _advance(seconds: float) -> None:
        state.clock += seconds

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
               get_device_properties, set_compile_mode, is_jit_compile_false, _advance, _allocate, _free):
        setattr(npu, fn.__name__, fn)
    npu.Event = Event  # type: ignore[attr-defined]

    utils = types.ModuleType("torch_npu.npu.utils")

    def get_cann_version(module: str = "CANN") -> str:
        known = ("CANN", "RUNTIME", "COMPILER", "HCCL", "TOOLKIT", "OPP", "OPP_KERNEL", "DRIVER")
        return cann if module in known else ""

    utils.get_cann_version = get_cann_version  # type: ignore[attr-defined]
    npu.utils = utils  # type: ignore[attr-defined]

    mod = types.ModuleType("torch_npu")
    mod.__version__ = version  # type: ignore[attr-defined]
    mod.npu = npu  # type: ignore[attr-defined]
    mod.npu_weight_quant_batchmatmul = npu_weight_quant_batchmatmul  # type: ignore[attr-defined]
    mod.npu_dynamic_quant = npu_dynamic_quant  # type: ignore[attr-defined]
    mod.npu_quant_matmul = npu_quant_matmul  # type: ignore[attr-defined]
    return mod


class ContractError(RuntimeError):
    """A call that the real operator would reject (reference/torch_npu.md section 3)."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ContractError(message)


def npu_weight_quant_batchmatmul(x, weight, antiquant_scale, antiquant_offset=None, quant_scale=None,
                                 quant_offset=None, bias=None, antiquant_group_size=0, inner_precise=0):
    """y = x @ ((weight + offset) * scale); weight (K, N) int8, per-channel scale (N,) in x's dtype."""
    import torch

    _require(x.dim() == 2 and x.dtype in (torch.float16, torch.bfloat16), "x must be 2-D fp16/bf16 (M, K)")
    _require(weight.dim() == 2 and weight.dtype == torch.int8, "weight must be a 2-D int8 tensor (K, N)")
    k, n = weight.shape
    _require(x.shape[1] == k, f"x is (M, {x.shape[1]}) but weight is ({k}, {n}): pass the (N, K) weight transposed")
    _require(1 <= k <= 65535 and 1 <= n <= 65535, "K and N must be in [1, 65535]")
    _require(antiquant_scale.dtype == x.dtype, "antiquant_scale must have x's dtype")
    _require(tuple(antiquant_scale.shape) in ((n,), (1, n), (1,), (1, 1)), "antiquant_scale must be (N,) or (1, N)")
    _require(antiquant_group_size == 0 or antiquant_group_size % 32 == 0, "group size must be 0 or a multiple of 32")
    w = weight.float()
    if antiquant_offset is not None:
        w = w + antiquant_offset.float().reshape(-1)
    y = x.float() @ (w * antiquant_scale.float().reshape(-1))
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def npu_dynamic_quant(input, *, smooth_scales=None, group_index=None, dst_type=None):
    """Per-token symmetric int8: scale = rowmax(|x|) / 127, y = round(x / scale)."""
    import torch

    _require(input.dtype in (torch.float16, torch.bfloat16), "input must be fp16 or bf16")
    _require(input.dim() > 1, "input must have rank > 1")
    _require(dst_type in (None, torch.int8), "only int8 is modelled here")
    xf = input.float()
    scale = xf.abs().amax(dim=-1).clamp(min=1e-8) / 127.0
    y = torch.round(xf / scale.unsqueeze(-1)).clamp(-128, 127).to(torch.int8)
    return y, scale


def npu_quant_matmul(x1, x2, scale, *, offset=None, pertoken_scale=None, bias=None, output_dtype=None, group_sizes=None):
    """out = x1 @ x2 * scale (* pertoken_scale); x2 (K, N) int8; scale (1,) or (N,)."""
    import torch

    _require(x1.dtype == torch.int8 and x2.dtype == torch.int8, "x1 and x2 must both be int8")
    _require(2 <= x1.dim() <= 6 and 2 <= x2.dim() <= 6, "x1 and x2 must have rank 2-6")
    _require(x1.shape[-1] == x2.shape[-2], f"x1 (..., m, {x1.shape[-1]}) and x2 ({tuple(x2.shape)}) do not chain: x2 must be (K, N)")
    _require(x1.shape[-1] <= 65535 and x2.shape[-1] <= 65535, "last dimensions must be <= 65535")
    n = x2.shape[-1]
    _require(scale.dim() == 1 and scale.shape[0] in (1, n), "scale must be 1-D (1,) or (N,)")
    _require(scale.dtype in (torch.float32, torch.int64, torch.bfloat16), "scale must be float32, int64 or bfloat16")
    out_dtype = torch.int8 if output_dtype is None else output_dtype
    _require(out_dtype in (torch.int8, torch.float16, torch.bfloat16, torch.int32), "unsupported output_dtype")
    if pertoken_scale is not None:
        _require(pertoken_scale.dtype == torch.float32, "pertoken_scale must be float32")
        _require(tuple(pertoken_scale.shape) == (x1.shape[-2],), "pertoken_scale must be (m,)")
        _require(out_dtype in (torch.float16, torch.bfloat16), "pertoken_scale needs an fp16 or bf16 output")
        if out_dtype == torch.float16:
            _require(scale.dtype == torch.float32, "fp16 output with pertoken_scale needs a float32 scale")
    acc = (x1.to(torch.int64) @ x2.to(torch.int64)).float() * scale.float()
    if pertoken_scale is not None:
        acc = acc * pertoken_scale.unsqueeze(-1)
    return acc.to(out_dtype)


def install(monkeypatch: Any, **kwargs: Any) -> types.ModuleType:
    """Put a fake torch_npu in sys.modules and expose it as torch.npu, as the real import does."""
    import torch

    mod = build(**kwargs)
    monkeypatch.setitem(sys.modules, "torch_npu", mod)
    monkeypatch.setitem(sys.modules, "torch_npu.npu", mod.npu)
    monkeypatch.setattr(torch, "npu", mod.npu, raising=False)
    return mod
