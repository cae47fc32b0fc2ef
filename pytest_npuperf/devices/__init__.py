"""Device resolution: ``auto`` tries NPU, then CUDA, then CPU.

Nothing here imports torch at module import time. ``import torch_npu`` fails in several
documented ways on machines without a working CANN (docs/torch-npu.md#importing-torch_npu); each
becomes a :class:`DeviceUnavailable` whose message names the cause and the fix.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import sys
from typing import Any, List, Tuple

from ..stack.npu_api import DEVICE_CONFLICT_PHRASE
from ..stack.versions import package_requires, package_version
from . import accel
from .base import Device, DeviceUnavailable, Timer
from .cpu import CpuDevice

__all__ = [
    "Device", "DeviceBroken", "DeviceShared", "DeviceUnavailable", "Timer",
    "resolve_device", "import_torch_npu", "import_error_hint",
]

_CANN_HINT = (
    "CANN is not set up in this environment: run 'source /usr/local/Ascend/ascend-toolkit/set_env.sh' "
    "(CANN <= 8.3) or 'source /usr/local/Ascend/cann/set_env.sh' (CANN >= 8.5) before pytest"
)


def prepare_torch_import() -> None:
    """Stop torch from auto-loading torch_npu on its own import.

    torch >= 2.5 imports torch_npu through an entry point while ``import torch`` runs; without
    CANN that makes ``import torch`` itself fail, and torch cannot be imported again in the
    process. With auto-loading off, we import torch_npu explicitly and can report the error.
    Only has an effect before the first ``import torch``.
    """
    if "torch" not in sys.modules and importlib.util.find_spec("torch_npu") is not None:
        os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")


# Shared libraries and variables of CANN named in the errors of a missing or unsourced CANN.
_CANN_KEYS = ("libhccl", "libascendcl", "libacl_op_compiler", "libge_runner", "libgraph.so", "libruntime.so",
              "ascend_home_path", "ascend_opp_path", "set_env.sh")
# A torch_npu that does not match the installed torch (or CANN/NNAL libraries).
_MISMATCH = re.compile(r"cannot import name|undefined symbol|no module named 'torch[._']|has no attribute")


def _version_hint() -> str:
    """'torch_npu 2.5.1 requires torch==2.5.1+cpu, installed torch is 2.13.0' from package metadata."""
    npu_version = package_version("torch-npu")
    if npu_version is None:
        return ""
    pins = [r for r in package_requires("torch-npu") if re.match(r"torch\b(?!_|-)", r)]
    torch_version = package_version("torch") or "not installed"
    pin = f" requires {pins[0].replace(' ', '')}" if pins else ""
    return f" (torch_npu {npu_version}{pin}, installed torch is {torch_version})"


def import_error_hint(text: str) -> str:
    """The cause and the fix for the text of a failed ``import torch_npu``."""
    lowered = text.lower()
    if DEVICE_CONFLICT_PHRASE.lower() in lowered:
        return ("torch_npu refuses to load next to a CUDA (or other accelerator) build of torch: install the "
                "CPU build of torch that your torch_npu release pins (pip install torch==X --index-url "
                "https://download.pytorch.org/whl/cpu), or run on the GPU with --npuperf-device cuda")
    if any(key in lowered for key in _CANN_KEYS) or re.search(r"\bcann\b", lowered):
        return _CANN_HINT
    if _MISMATCH.search(lowered):
        return ("torch_npu does not match the installed torch (or its CANN/NNAL libraries)"
                f"{_version_hint()}: install the torch version torch_npu pins, and the CANN its release notes name")
    return "check that torch, torch_npu and CANN versions match"


def import_torch_npu() -> Any:
    """Import torch_npu or raise DeviceUnavailable with the reason and the fix."""
    if "torch_npu" not in sys.modules and importlib.util.find_spec("torch_npu") is None:
        raise DeviceUnavailable("torch_npu is not installed (pip install torch-npu matching your torch and CANN)")
    prepare_torch_import()
    try:
        import torch  # noqa: F401
        import torch_npu
    except Exception as exc:  # ImportError, OSError, RuntimeError and plain Exception are all documented
        text = f"{type(exc).__name__}: {exc}".strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise DeviceUnavailable(f"import torch_npu failed ({first}); {import_error_hint(text)}") from None
    return torch_npu


def _npu(index: int) -> Device:
    torch_npu = import_torch_npu()
    module = torch_npu.npu
    count = int(module.device_count())
    if count == 0:
        visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
        extra = f" (ASCEND_RT_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise DeviceUnavailable(f"torch_npu imported but no NPU is visible{extra}; check npu-smi info")
    if not 0 <= index < count:
        raise DeviceUnavailable(f"NPU index {index} is out of range: {count} NPU(s) visible")
    try:
        module.set_device(index)
    except AssertionError as exc:  # torch_npu's "Invalid device id"
        raise DeviceUnavailable(f"torch.npu.set_device({index}) failed: {exc}") from None

    return accel.AcceleratorDevice("npu", module, index)


def _cuda(index: int) -> Device:
    try:
        import torch
    except Exception as exc:
        raise DeviceUnavailable(f"import torch failed: {exc}") from None
    if not torch.cuda.is_available():
        raise DeviceUnavailable("torch.cuda.is_available() is False (no GPU, or a CPU-only torch build)")
    torch.cuda.set_device(index)

    return accel.AcceleratorDevice("cuda", torch.cuda, index)


def _cpu(index: int) -> Device:
    return CpuDevice()


_FACTORIES = {"npu": _npu, "cuda": _cuda, "cpu": _cpu}


class DeviceShared(Exception):
    """More parallel workers than devices: two would time on one device."""


class DeviceBroken(DeviceUnavailable):
    """An accelerator is in the machine but torch cannot use it: with ``--npuperf-device auto`` that
    fails the perf tests instead of measuring the CPU (a broken ``import torch_npu`` after an
    upgrade must not turn the nightly job green)."""


# Device files and tools that show an accelerator is installed, per kind.
HARDWARE_SIGNS = {
    "npu": ("/dev/davinci[0-9]*", "npu-smi"),
    "cuda": ("/dev/nvidia[0-9]*", None),
}


def hardware_present(kind: str) -> str:
    """What shows that a ``kind`` accelerator is installed ('' when nothing does)."""
    pattern, tool = HARDWARE_SIGNS.get(kind, (None, None))
    found = sorted(glob.glob(pattern)) if pattern else []
    if found:
        return ", ".join(found[:4]) + (" ..." if len(found) > 4 else "")
    if tool and shutil.which(tool):
        return f"{tool} on PATH"
    return ""


def resolve_device(requested: str, index: int = 0, workers: int = 1) -> Tuple[Device, List[str]]:
    """The device to run on, and why each better candidate was passed over (for the header).

    ``index`` is this process's device (the xdist worker number), ``workers`` the number of
    processes sharing the machine. An explicit request that cannot be met raises
    DeviceUnavailable; more workers than devices raises DeviceShared.
    """
    skipped: List[str] = []
    if requested != "auto":
        kind = requested
        device = _FACTORIES[kind](0)
    else:
        for kind in ("npu", "cuda", "cpu"):
            try:
                device = _FACTORIES[kind](0)
                break
            except DeviceUnavailable as exc:
                signs = hardware_present(kind) if kind != "cpu" else ""
                if signs:
                    raise DeviceBroken(
                        f"this machine has a {kind.upper()} ({signs}) but torch cannot use it: {exc}. Fix the "
                        f"install; to measure the CPU on purpose, pass --npuperf-device cpu") from None
                skipped.append(f"{kind}: {exc}")
    count = int(device.info().get("device_count") or 1)
    if workers > count:
        raise DeviceShared(
            f"{workers} parallel workers but only {count} {kind} device(s): workers sharing one device "
            f"disturb each other's timing and memory, so the numbers would be meaningless; run at most "
            f"-n {count}, one worker per device"
        )
    if index:
        device = _FACTORIES[kind](index)
    return device, skipped
