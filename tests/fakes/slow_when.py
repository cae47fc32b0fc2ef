"""A slowdown tied to the stack, for the attribution's tests (NPUPERF_FAKE_NPU_SLOW_WHEN).

'cann=8.5.0*2' doubles device times under CANN 8.5.0; conditions are joined by '&'
('cann=8.5.0&torch_npu=2.6.0*2': only both together), entries by ','. A key is one of the facts
the caller passes (cann, torch_npu, torch, ...) or env.NAME, an environment variable's value.
"""

from __future__ import annotations

import os
from typing import Mapping


def slowdown(facts: Mapping[str, str], spec: str) -> float:
    """The product of the factors of ``spec`` whose conditions hold (1.0: none)."""
    factor = 1.0
    for entry in filter(None, spec.split(",")):
        conditions, _, times = entry.rpartition("*")
        met = True
        for condition in conditions.split("&"):
            key, _, value = condition.partition("=")
            seen = os.environ.get(key[4:]) if key.startswith("env.") else facts.get(key)
            met = met and seen == value
        if met:
            factor *= float(times)
    return factor
