"""Which int8 schemes an Ascend chip and torch_npu release can run (docs/ascend.md#chips-and-int8).

The NPU kernels of model/quant.py exist on every checked torch_npu release, but not on every chip:

- Atlas inference cards (Ascend 310P): ``npu_dynamic_quant`` and per-token scales are not
  supported (so no w8a8 here), and ``npu_weight_quant_batchmatmul`` takes fp16 activations only;
- torch_npu 2.1.0.post8 documents both int8 matmuls for Atlas A2 (Ascend910B*) only;
- the ops are documented for Atlas A2, A3 and 310P (and tested upstream on Ascend950); other
  SoCs (Ascend910A, Ascend310B) are not supported.

An unsupported combination is a skip with this reason, never a crash in the kernel.
"""

from __future__ import annotations

import sys
from typing import Optional

from packaging.version import InvalidVersion, Version

from ..precision import Precision
from ..stack.compat import Unsupported
from ..stack.versions import package_version
from .base import Device


class PrecisionUnsupported(Unsupported):
    """This device cannot run the precision; the test is skipped with the reason."""


def _is_a2(soc: str) -> bool:
    return soc.startswith("Ascend910B")


def _is_a3(soc: str) -> bool:
    return soc.startswith("Ascend910_93")


def unsupported(soc: str, torch_npu_version: Optional[str], scheme: str, act_dtype: str) -> Optional[str]:
    """Why ``scheme`` with ``act_dtype`` activations cannot run on ``soc``, or None when it can."""
    if torch_npu_version and _a2_only(torch_npu_version) and not _is_a2(soc):
        return (f"torch_npu {torch_npu_version} documents the int8 matmuls for Atlas A2 (Ascend910B*) only, "
                f"this is {soc}")
    if soc.startswith("Ascend310P"):
        if scheme == "w8a8":
            return f"{soc} (Atlas inference series) has no npu_dynamic_quant and no per-token scales, which w8a8 needs"
        if act_dtype != "float16":
            return f"npu_weight_quant_batchmatmul on {soc} takes fp16 activations only, this precision computes in {act_dtype}"
        return None
    if _is_a2(soc) or _is_a3(soc) or soc.startswith("Ascend950"):
        return None
    return f"the int8 NPU kernels are documented for Atlas A2/A3 and 310P, not for {soc}"


def _a2_only(version: str) -> bool:
    """2.1.0.post8 and earlier 2.1.0 builds (their documentation restricts the ops to Atlas A2)."""
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    return v < Version("2.1.0.post10")


def require_int8_on_npu(device: Device, precision: Precision, scheme: Optional[str] = None,
                        dtype_name: Optional[str] = None) -> None:
    """Skip, with the reason, an int8 scheme the chip or torch_npu release cannot run
    (``scheme``/``dtype_name``: an int8 operator's own, else the precision's)."""
    scheme = precision.quant if scheme is None else scheme
    if device.kind != "npu" or scheme is None:
        return
    module = sys.modules.get("torch_npu")
    version = package_version("torch-npu") or getattr(module, "__version__", None)
    why = unsupported(device.name(), version, scheme, dtype_name or precision.dtype)
    if why:
        raise PrecisionUnsupported(f"{precision.name}: {why}")
