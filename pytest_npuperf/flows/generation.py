"""The generation flow: a batch of prompts through a whole generate call, timed and judged.

Eager mode runs transformers' generate; graph mode prefills eagerly into a static KV cache and
runs the compiled decode step, its output checked against eager on the same weights before
anything is timed. Either way one sample is one whole generation of the batch.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..devices.profiler import profile_generation
from ..errors import MeasurementError
from ..judge.outcome import TestOutcome
from ..judge.result import GENERATION_MODE, GRAPH_GENERATION_MODE, Sample, Workload
from ..judge.roofline import check_bandwidth, peak_gb_s
from ..judge.stats import REGRESSED
from ..model.loader import LoadedModel, kv_bytes_per_token, tokenizer_identity
from ..modes import ExecutionMode
from ..precision import Precision
from .graph.plan import GraphPlan
from .kernels import decode_cost
from .measure import GENERATION_SETTINGS, generate_fixed, make_batch, measure_once, warm_up
from .measurement import TestRun
from .session import PerfSession


def run_generation(
    session: PerfSession,
    test_id: str,
    precision: Precision,
    batch_size: int,
    workload: str,
    tolerances: Mapping[str, float],
    budgets: Mapping[str, float],
    max_new_tokens: Optional[int],
    mode: ExecutionMode,
) -> TestOutcome:
    """Measure, compare with the baseline, check budgets. Raises on invalid measurements."""
    s = session.settings
    prompts = session.workloads.batch(workload, batch_size)
    new_tokens = s.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
    if new_tokens < 2:
        raise ValueError(f"max_new_tokens must be >= 2 (TPOT needs two tokens), got {new_tokens}")
    run = TestRun(session, test_id)
    device = session.device()
    loaded = run.load(precision)
    batch = make_batch(loaded, prompts, device.torch_device)
    graph = GraphPlan(session.graph_runner(loaded), loaded) if mode.graph else None
    generate = graph.runner.generate_fixed if graph else generate_fixed
    static = graph.shape_for(batch.input_ids.shape[0], batch.input_ids.shape[1] + new_tokens) if graph else None
    workload_rec = Workload(
        model_id=loaded.model_id,
        model_fingerprint=loaded.fingerprint,
        precision=precision.name,
        batch_size=batch_size,
        prompt_ids=tuple(batch.prompt_ids),
        prompt_tokens=tuple(batch.prompt_tokens),
        max_new_tokens=new_tokens,
        kind=GRAPH_GENERATION_MODE if graph else GENERATION_MODE,
        input_ids_hash=batch.ids_hash,
        prompt_texts=session.workloads.texts_hash(prompts),
        tokenizer=tokenizer_identity(loaded),
        generation=(graph.generation(static[1]) if graph and static else GENERATION_SETTINGS)
                   + f", attn={loaded.attn_implementation}",
        quant_kernel=graph.quant_kernel() if graph else loaded.quant_kernel,
        graph=graph.identity([static]) if graph and static else "",
    )
    fidelity = batch_fidelity(loaded, batch.prompt_ids)
    step_bytes = decode_step_bytes(loaded, batch.prompt_tokens, new_tokens, static)["decode_bytes_per_step"]
    calibration, published = session.calibration(), peak_gb_s(device.name())

    def measure() -> Sample:
        sample = measure_once(loaded, device, batch, new_tokens, generate=generate)
        # The physical limit: a decode step reads the weights and the KV cache once.
        problem = check_bandwidth(step_bytes, sample.tpot_s or 0.0, calibration,
                                  f"{test_id}: a decode step (TPOT)", published)
        if problem:
            raise MeasurementError(problem)
        for key, value in fidelity.items():
            setattr(sample, key, value)
        if graph:
            graph.stamp(sample)
        return sample

    def warm() -> None:
        if graph:  # compiles this shape (once per model) and proves the output matches eager
            graph.use(*batch.input_ids.shape[:1], batch.input_ids.shape[1] + new_tokens)
            graph.check_agreement(batch, new_tokens)
        warm_up(loaded, device, batch, new_tokens, s.warmup, generate)
        if graph:
            graph.start_timing()

    samples = run.samples(warm, measure, s.runs)
    extra = {
        "execution_mode": mode.name,
        "weight_bytes": loaded.weight_bytes,
        "linear_weight_bytes": loaded.linear_weight_bytes,
        "dense_linear_weight_bytes": loaded.dense_linear_weight_bytes or loaded.linear_weight_bytes,
        "quant_kernel": workload_rec.quant_kernel,
        "quant_released_bytes": loaded.quant_released_bytes,
        "attn_implementation": loaded.attn_implementation,
        "tokenizer": getattr(loaded.tokenizer, "name", ""),
        "real_weights": loaded.real_weights,
    }
    extra.update(generation_picture(loaded, batch.prompt_tokens, new_tokens, samples, calibration, published, static))
    if graph:
        extra["graph"] = graph.summary()
    outcome = run.judge(run.result(workload_rec, samples, extra), measure, tolerances, budgets)
    if s.profile_dir is not None and outcome.comparison and outcome.comparison.status == REGRESSED:
        path = profile_generation(device, lambda: measure_once(loaded, device, batch, new_tokens, generate=generate),
                                  test_id, s.profile_dir)
        outcome.result.extra["profile"] = outcome.comparison.profile = str(path)
    return outcome


def decode_step_bytes(loaded: LoadedModel, prompt_tokens: List[int], new_tokens: int,
                      static_cache: Optional[Tuple[int, int]] = None) -> Dict[str, int]:
    """Bytes one decode step reads, mid-generation (the average step), and the final KV cache.

    ``static_cache`` (rows, length): graph mode's static cache, whose attention reads every
    position of every row each step (positions not yet written are masked, not skipped).
    """
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
