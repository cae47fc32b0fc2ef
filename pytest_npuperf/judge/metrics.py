"""The metrics the suite measures, with their direction, unit and default regression budget.

The formulas live in docs/measurement.md#metrics; the names carry their unit so that nobody mistakes a batch
time for a per-request time or seconds for milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

MIB = 1024 * 1024


@dataclass(frozen=True)
class Metric:
    """One measured quantity.

    ``budget`` is the default regression budget, the largest relative change in the worse
    direction a team accepts; ``abs_floor`` (memory and compile time) is an absolute slack in the
    metric's unit under which no change counts. ``statistical`` says whether the metric is noisy
    and judged with confidence bounds over processes (timing); the others are deterministic
    enough to compare their medians directly (memory, graph counts, fidelity).
    """

    name: str
    unit: str
    higher_is_better: bool
    budget: float
    gated: bool = True
    statistical: bool = True
    abs_floor: float = 0.0
    label: str = ""
    # Gated only for a model with real weights (a checkpoint): over random weights the logits are
    # flat, and which token wins flips on a harmless change of accumulation order.
    needs_real_weights: bool = False

    def gates(self, real_weights: bool) -> bool:
        """Whether this metric can fail a test of a model with (or without) real weights."""
        return self.gated and (real_weights or not self.needs_real_weights)

    def worse_ratio(self, current: float, baseline: float) -> float:
        """How many times worse ``current`` is than ``baseline`` (>1 means worse)."""
        if self.higher_is_better:
            return baseline / current if current > 0 else float("inf")
        return current / baseline if baseline > 0 else float("inf")

    def budget_for(self, budget: float, baseline_median: float) -> float:
        """The relative budget in force: ``budget``, or the absolute slack as a fraction of the
        baseline where that is larger. Noise never widens it."""
        if self.abs_floor and baseline_median > 0:
            return max(budget, self.abs_floor / baseline_median)
        return budget


_METRICS: Tuple[Metric, ...] = (
    Metric("e2e_s", "s", False, 0.03, label="e2e latency"),
    Metric("ttft_s", "s", False, 0.05, label="time to first token"),
    Metric("tpot_s", "s", False, 0.03, label="time per output token"),
    Metric("tokens_per_s", "tok/s", True, 0.03, label="output throughput"),
    Metric("peak_allocated_bytes", "B", False, 0.01, statistical=False, abs_floor=64 * MIB,
           label="peak allocated device memory"),
    # Reported, not gated: the process's RSS holds what earlier tests left behind (the Python heap,
    # compile caches, allocator arenas), so its peak during one test depends on what ran before it
    # in that process; in a fresh process the same test reads hundreds of MiB lower.
    Metric("peak_rss_bytes", "B", False, 0.01, gated=False, statistical=False, abs_floor=64 * MIB,
           label="peak process memory (RSS)"),
    # Gated: an allocator that keeps freed memory reserved (the 16-bit weights of an int8 model)
    # holds it from every other user of the device.
    Metric("peak_reserved_bytes", "B", False, 0.01, statistical=False,
           abs_floor=64 * MIB, label="peak reserved device memory"),
    Metric("device_used_bytes", "B", False, 0.01, gated=False, statistical=False,
           abs_floor=64 * MIB, label="device-wide used memory"),
    # Model steps and operators: the timed call, and what it achieved (report only).
    Metric("time_s", "s", False, 0.03, label="time of one step or operator call"),
    Metric("achieved_tflops", "TFLOP/s", True, 0.03, gated=False, statistical=False, label="achieved TFLOP/s"),
    Metric("achieved_gb_s", "GB/s", True, 0.03, gated=False, statistical=False, label="achieved GB/s"),
    # Serving under load: per run of N arriving requests (the run is the sample).
    # Reported, not gated: under arrivals a request's TTFT is mostly the wait for the batch that is
    # running when it arrives, and which requests share a batch changes with the step time, so for
    # one fixed arrival schedule the expected median TTFT is not even monotone in the device's
    # speed (benchmarks/serving_aa.py, 40% load: a device 3% slower read 10.2% lower, 6% slower
    # 3.5% higher). A device that got slower shows in the serving TPOT and the generation tests' TTFT.
    Metric("serving_ttft_p50_s", "s", False, 0.05, gated=False,
           label="median TTFT under load (queueing included)"),
    Metric("serving_tpot_p50_s", "s", False, 0.03, label="median TPOT under load"),
    Metric("serving_tokens_per_s", "tok/s", True, 0.03, label="output tokens/s under load"),
    Metric("goodput_rps", "req/s", True, 0.05, label="requests/s meeting the first SLO"),
    # Graph mode: compiling the decode step's graphs (cold compiler cache) and how many graphs its
    # shapes needed. One figure per test, repeated in each sample; a stack that compiles twice as
    # slowly, or needs more graphs, is felt at every service start.
    Metric("compile_s", "s", False, 0.5, statistical=False, abs_floor=1.0,
           label="graph compile time (cold cache, until ready)"),
    Metric("graph_compiles", "", False, 0.0, statistical=False, label="graphs compiled for the test's shapes"),
    # Fidelity of int8 against the same model's 16-bit weights; deterministic, so ratio gates.
    Metric("fidelity_kl", "nats", False, 0.10, statistical=False, abs_floor=0.01,
           label="KL(16-bit || int8) of next-token distributions"),
    Metric("fidelity_top1", "", True, 0.01, statistical=False, label="top-1 next-token agreement",
           needs_real_weights=True),
    Metric("fidelity_cosine", "", True, 0.005, statistical=False, label="cosine of logits"),
    # Real weights only (a checkpoint): greedy continuations of int8 vs 16-bit.
    Metric("fidelity_greedy_agreement", "", True, 0.02, statistical=False, label="greedy token agreement",
           needs_real_weights=True),
    Metric("fidelity_length_ratio", "", True, 0.10, gated=False, statistical=False,
           label="int8 / 16-bit greedy output length"),
)

METRICS: Dict[str, Metric] = {m.name: m for m in _METRICS}

# Timing metrics: the ones whose budget a device profile may raise (the CPU: a pipeline check).
TIME_METRICS = ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "time_s", "serving_ttft_p50_s",
                "serving_tpot_p50_s", "serving_tokens_per_s", "goodput_rps", "compile_s")


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(METRICS)
        raise KeyError(f"unknown metric {name!r}; known metrics: {known}") from None


def format_value(metric: Metric, value: Optional[float]) -> str:
    """Human units: ms for seconds, MiB for bytes."""
    if value is None:
        return "-"
    if metric.unit == "s":
        return f"{value * 1e3:.2f}ms"
    if metric.unit == "B":
        return f"{value / MIB:.1f}MiB"
    if metric.name == "graph_compiles":
        return f"{value:.0f}"
    if metric.name == "fidelity_kl":
        return f"{value:.2e}"
    if metric.name.startswith("fidelity_"):
        return f"{value:.4f}"
    if metric.name.startswith("achieved_"):
        return f"{value:.4g}"
    return f"{value:.2f}"
