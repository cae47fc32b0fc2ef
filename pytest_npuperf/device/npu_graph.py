"""torchair graph mode on an Ascend NPU (placeholder until the torchair backend lands)."""

from __future__ import annotations

from ..compat import Unsupported


def npu_backend(device_name: str):
    raise Unsupported("graph mode on an NPU needs the torchair backend, which this build does not have yet")
