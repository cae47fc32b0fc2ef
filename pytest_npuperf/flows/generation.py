"""The generation flow: a batch of prompts through a whole generate call, timed and judged."""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..judge.result import Sample
from ..model.loader import LoadedModel, kv_bytes_per_token


def decode_step_bytes(loaded: LoadedModel, prompt_tokens: List[int], new_tokens: int,
                      static_cache: Optional[Tuple[int, int]] = None) -> Dict[str, int]:
    """Bytes one decode step reads, mid-generation (the average step), and the final KV cache.

    ``static_cache`` (rows, length): graph mode's static cache, whose attention reads every
    position of every row each step (positions not yet written are masked, not skipped).
    """
    from .kernels import decode_cost

    config = loaded.model.config
    item = next(loaded.model.parameters()).element_size()
    per_token_kv = kv_bytes_per_token(config, item)
    width = max(prompt_tokens)
    if static_cache is None:  # the KV cache read mid-generation (the average step)
        rows, attended = len(prompt_tokens), width + new_tokens // 2
        kv_bytes = per_token_kv * len(prompt_tokens) * (width + new_tokens)
    else:
        rows, attended = static_cache
        kv_bytes = per_token_kv * rows * attended
    # Weights read per decode step (decoder linears as stored, the lm_head) and the KV cache.
    step_bytes = int(decode_cost(loaded, rows, attended)[1])
    return {"kv_cache_bytes": kv_bytes, "decode_bytes_per_step": step_bytes}


def generation_picture(loaded: LoadedModel, prompt_tokens: List[int], new_tokens: int, samples: List[Sample],
                       calibration: Optional[Mapping[str, Any]] = None, published_gb_s: Optional[float] = None,
                       static_cache: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    """Memory split (weights, KV cache, activations), the decode bandwidth the TPOT implies and
    its roofline fraction: of the calibrated copy bandwidth and of the published peak."""
    picture: Dict[str, Any] = dict(decode_step_bytes(loaded, prompt_tokens, new_tokens, static_cache))
    kv_bytes, step_bytes = picture["kv_cache_bytes"], picture["decode_bytes_per_step"]
    tpots = [s.tpot_s for s in samples if s.tpot_s]
    if tpots:
        gb_s = step_bytes / statistics.median(tpots) / 1e9
        picture["decode_gb_s"] = gb_s
        copy = (calibration or {}).get("copy_gb_s")
        picture["decode_fraction_of_copy"] = gb_s / copy if copy else None
        picture["decode_fraction_of_peak"] = gb_s / published_gb_s if published_gb_s else None
    peaks = [s.peak_allocated_bytes for s in samples if s.peak_allocated_bytes]
    if peaks:
        picture["activations_peak_bytes"] = max(0, statistics.median(peaks) - loaded.weight_bytes - kv_bytes)
    return picture


def batch_fidelity(loaded: LoadedModel, prompt_ids: List[str]) -> Dict[str, float]:
    """Mean fidelity over the batch's prompts ({} for 16-bit precisions)."""
    rows = [loaded.fidelity[p] for p in prompt_ids if p in loaded.fidelity]
    if not rows:
        return {}
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}
