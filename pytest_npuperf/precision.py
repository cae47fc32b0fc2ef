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
    )
}


def get_precision(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown precision {name!r}; accepted: {', '.join(PRECISIONS)}"
        ) from None
