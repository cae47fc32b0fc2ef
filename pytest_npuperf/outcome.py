"""What one test produced, and the plain functions that describe it.

No pytest here; PerfSession (session.py) fills these, the fixture, plugin and reports read them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .compare import Comparison
from .metrics import METRICS, format_value
from .model import LoadedModel, kv_bytes_per_token
from .result import Result, Sample, Workload
from .stats import INCONCLUSIVE, REGRESSED


@dataclass
class TestOutcome:
    __test__ = False  # not a test class, despite the name
    test_id: str
    result: Optional[Result] = None
    comparison: Optional[Comparison] = None
    budget_failures: List[str] = field(default_factory=list)
    error: str = ""
    passed: Optional[bool] = None  # filled from the test report

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        return self.comparison.status if self.comparison else "-"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "test_id": self.test_id,
            "status": self.status,
            "passed": self.passed,
            "error": self.error,
            "budget_failures": self.budget_failures,
            "result": self.result.to_dict() if self.result else None,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TestOutcome":
        """The inverse of to_dict (outcomes travel from xdist workers to the controller)."""
        return cls(
            test_id=data["test_id"],
            result=Result.from_dict(data["result"]) if data.get("result") else None,
            comparison=Comparison.from_dict(data["comparison"]) if data.get("comparison") else None,
            budget_failures=list(data.get("budget_failures", [])),
            error=data.get("error", ""),
            passed=data.get("passed"),
        )


def _serving_sample(summary: Mapping[str, Any], slos: Sequence[Any]) -> Sample:
    return Sample(
        serving_ttft_p50_s=summary["ttft_s_p50"], serving_tpot_p50_s=summary["tpot_s_p50"],
        serving_tokens_per_s=summary["output_tokens_per_s"],
        goodput_rps=summary[f"goodput_{slos[0].name}"] if slos else None,
    )


def calibration_lines(device_name: str, cal: Mapping[str, Any]) -> List[str]:
    """The calibration next to the published peak of this device, when one is known."""
    from .roofline import known_peak

    fp16 = cal.get("matmul_float16_tflops")
    line = (f"npuperf calibration: matmul bf16 {cal['matmul_bfloat16_tflops']:.3g} TFLOP/s, "
            + (f"fp16 {fp16:.3g} TFLOP/s" if fp16 else "fp16 not timed (no fp16 matmul on this device)")
            + f", copy {cal['copy_gb_s']:.3g} GB/s")
    peak = known_peak(device_name)
    if peak is None:
        return [line + f"; no published peak known for {device_name}"]
    parts = []
    if peak.bf16_tflops:
        parts.append(f"bf16 {peak.bf16_tflops:g} TFLOP/s ({cal['matmul_bfloat16_tflops'] / peak.bf16_tflops:.0%} reached)")
    if peak.hbm_tb_s:
        parts.append(f"HBM {peak.hbm_tb_s:g} TB/s ({cal['copy_gb_s'] / 1e3 / peak.hbm_tb_s:.0%} reached by copy)")
    return [line, f"npuperf published peak of {peak.name}: {', '.join(parts) or 'none'} [{peak.source}]"]


GENERATION_MODE = Workload.__dataclass_fields__["mode"].default
GRAPH_GENERATION_MODE = "graph-greedy-fixed-length"


def related_regressions(outcomes: Mapping[str, TestOutcome], limit: int = 8) -> List[str]:
    """Step and operator results of this run that got worse: where a generation slowdown comes from."""
    rows = []
    for o in outcomes.values():
        if not o.result or not o.comparison or o.result.workload.mode in (GENERATION_MODE, GRAPH_GENERATION_MODE):
            continue
        verdict = o.comparison.verdict("time_s")
        if verdict and verdict.status in (REGRESSED, INCONCLUSIVE) and verdict.change is not None:
            name = o.test_id.rsplit("[", 1)[-1].rstrip("]")
            rows.append((verdict.change, f"{name} time {verdict.change * 100:+.1f}% ({verdict.status})"))
    return [text for _, text in sorted(rows, reverse=True)[:limit]]


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


def check_budgets(result: Result, budgets: Mapping[str, float]) -> List[str]:
    """Absolute limits on a metric's median: upper for lower-is-better, lower otherwise."""
    failures = []
    for name, limit in budgets.items():
        metric = METRICS[name]
        values = result.values(name)
        if not values:
            failures.append(f"{name}: no value measured on this device, budget {format_value(metric, limit)} unchecked")
            continue
        med = statistics.median(values)
        bad = med < limit if metric.higher_is_better else med > limit
        if bad:
            side = "at least" if metric.higher_is_better else "at most"
            failures.append(
                f"{name}: median {format_value(metric, med)} breaks the budget of {side} "
                f"{format_value(metric, limit)}"
            )
    return failures
