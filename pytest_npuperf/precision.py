"""Precisions of the suite: name -> compute dtype and weight scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class Precision:
    name: str
    dtype: str  # torch dtype attribute name of activations / dense weights
    quant: Optional[str] = None  # weight scheme, None for dense 16-bit


PRECISIONS: Dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp16", "float16"),
        Precision("bf16", "bfloat16"),
        # int8 schemes keep bf16 activations: the fast CPU int8 kernel needs them, and the
        # NPU (Atlas A2/A3) and CUDA kernels accept them.
        Precision("int8-w8a16", "bfloat16", "w8a16"),
        Precision("int8-w8a8", "bfloat16", "w8a8"),
    )
}


def get_precision(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown precision {name!r}; accepted: {', '.join(PRECISIONS)}"
        ) from None
