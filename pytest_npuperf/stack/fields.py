"""Fields that the ``pytest_npuperf_stack_fields`` hooks add to the stack fingerprint.

A team's own facts (a driver build id, a container image tag) are kept under one key of the
stack, :data:`HOOK_FIELDS`, so that they can never overwrite a measured fact, and every later
report shows a change of them next to the verdict like a change of the built-in fields
(stack/changes.py). Pure: the hooks' answers in, the checked fields out.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Mapping, Sequence, Tuple

from .changes import HOOK_FIELDS, STACK_KEYS

# Every key that stack.fingerprint.collect writes itself (a device's own facts start with
# 'device_'): a field a hook adds may not take one of these names, nor start with the prefix.
BUILT_IN_FIELDS = frozenset(STACK_KEYS) | {
    "platform", "mistral_common", "pytest_npuperf", "torch_cuda_build", "cpu_count", "cpu_affinity",
    "cann_ops_version", "npu_jit_compile", "torchair", "torchair_source", "npugraph_ex", "env", HOOK_FIELDS,
}
DEVICE_PREFIX = "device_"
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
SCALARS = (str, int, float, bool)
FIX = "return a dict of field name (str) -> str, int, float, bool or None, or None"


class StackFieldError(ValueError):
    """A field a hook returned that cannot be recorded; the message names the plugin and the fix."""


def hook_fields(answers: Sequence[Tuple[str, Any]]) -> Dict[str, Any]:
    """The fields of each (plugin name, answer) of the hook, checked: an answer is None or a dict
    of names to plain JSON scalars; a name is new (not built-in, not given by another plugin)."""
    fields: Dict[str, Any] = {}
    owner: Dict[str, str] = {}
    for plugin, answer in answers:
        if answer is None:
            continue
        if not isinstance(answer, Mapping):
            raise StackFieldError(f"plugin {plugin!r} returned {type(answer).__name__}; {FIX}")
        for name, value in answer.items():
            where = f"plugin {plugin!r}, field {name!r}"
            if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
                raise StackFieldError(f"{where}: a field name must be a str starting with a letter, then letters, "
                                      "digits, '_', '.' or '-'; rename it")
            if name in BUILT_IN_FIELDS or name.startswith(DEVICE_PREFIX):
                raise StackFieldError(f"{where}: the fingerprint records {name!r} itself (names starting with "
                                      f"{DEVICE_PREFIX!r} are the device's); choose another name, such as 'team_{name}'")
            if name in owner:
                raise StackFieldError(f"{where}: plugin {owner[name]!r} gives this field too; give each field once")
            if value is not None and type(value) not in SCALARS:  # exactly: no numpy scalars, no enums
                raise StackFieldError(f"{where}: a {type(value).__name__} is not a plain JSON scalar; convert it "
                                      f"with str(), int() or float() ({FIX})")
            if isinstance(value, float) and not math.isfinite(value):
                raise StackFieldError(f"{where}: {value!r} is not a finite number; give a finite number or a str")
            fields[name] = value
            owner[name] = plugin
    return fields


def with_hook_fields(stack: Mapping[str, Any], fields: Mapping[str, Any]) -> Dict[str, Any]:
    """``stack`` with the hooks' fields under :data:`HOOK_FIELDS` (none: the stack as it is)."""
    out = {k: v for k, v in stack.items() if k != HOOK_FIELDS}
    if fields:
        out[HOOK_FIELDS] = dict(sorted(fields.items()))
    return out
