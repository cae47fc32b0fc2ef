"""What changed between two stack fingerprints: the lines shown next to every verdict.

Pure: two dictionaries in, text out.
"""

from __future__ import annotations

from typing import Any, List, Mapping

# The keys whose change is called out next to every verdict, in this order.
STACK_KEYS = (
    "device_name", "driver_version", "firmware_version", "cann_version", "torch", "torch_npu",
    "transformers", "python", "cpu_model", "torch_threads", "vllm", "vllm_ascend",
)


def stack_changes(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> List[str]:
    """'cann_version 8.0.RC1 -> 8.0.0' for each key that differs, the important keys first."""
    keys = list(STACK_KEYS) + sorted(
        k for k in set(baseline) | set(current) if k not in STACK_KEYS and k != "env"
    )
    lines = []
    for key in keys:
        old, new = baseline.get(key), current.get(key)
        if old != new:
            lines.append(f"{key} {_fmt(old)} -> {_fmt(new)}")
    old_env, new_env = dict(baseline.get("env") or {}), dict(current.get("env") or {})
    for key in sorted(set(old_env) | set(new_env)):
        if old_env.get(key) != new_env.get(key):
            lines.append(f"env {key} {_fmt(old_env.get(key))} -> {_fmt(new_env.get(key))}")
    return lines


def _fmt(value: Any) -> str:
    return "unknown" if value is None else str(value)
