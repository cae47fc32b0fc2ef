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
# The key of the fields that hooks add (stack/fields.py); shown like the built-in fields, after them.
HOOK_FIELDS = "hook_fields"
# Keys holding a dictionary of their own, compared key by key.
NESTED = ("env", HOOK_FIELDS)


def stack_changes(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> List[str]:
    """'cann_version 8.0.RC1 -> 8.0.0' for each key that differs, the important keys first, then
    the fields hooks added ('driver_build 1043 -> 1051'), then the environment ('env KEY a -> b')."""
    keys = list(STACK_KEYS) + sorted(
        k for k in set(baseline) | set(current) if k not in STACK_KEYS and k not in NESTED
    )
    lines = _changed(baseline, current, keys, "")
    for key, prefix in ((HOOK_FIELDS, ""), ("env", "env ")):
        old, new = dict(baseline.get(key) or {}), dict(current.get(key) or {})
        lines += _changed(old, new, sorted(set(old) | set(new)), prefix)
    return lines


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], keys: List[str], prefix: str) -> List[str]:
    return [f"{prefix}{key} {_fmt(old.get(key))} -> {_fmt(new.get(key))}"
            for key in keys if old.get(key) != new.get(key)]


def _fmt(value: Any) -> str:
    return "unknown" if value is None else str(value)
