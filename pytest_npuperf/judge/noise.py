"""Noise between processes: pool the results of fresh processes and measure how their medians move.

Pure functions over Results; used by ``--npuperf-processes`` (plugin) and ``calibrate`` (cli).
"""

from __future__ import annotations

import statistics
from typing import Dict, List, Sequence

from .metrics import METRICS
from .result import Result

# Every gated metric: generation, steps, operators, serving and memory alike.
NOISE_METRICS = tuple(name for name, m in METRICS.items() if m.gated)


class PoolError(ValueError):
    """The processes did not measure the same workload; their samples cannot be pooled."""


def between_process_cv(medians: Sequence[float]) -> float:
    """Sample SD / mean of per-process medians: the (n-1) SD, because with 3-5 processes the
    population SD underestimates the spread the next process will show."""
    return statistics.stdev(medians) / statistics.mean(medians) if len(medians) >= 2 else 0.0


def noise_of(runs: Sequence[Result]) -> Dict[str, float]:
    """Between-process CV of every gated metric that every process measured."""
    out = {}
    for name in NOISE_METRICS:
        medians = [statistics.median(r.values(name)) for r in runs if r.values(name)]
        if len(medians) == len(runs) >= 2 and statistics.mean(medians) > 0:
            out[name] = between_process_cv(medians)
    return out


def pool(runs: Sequence[Result]) -> Result:
    """One result with the samples of every process (their workloads must be equal)."""
    first = runs[0]
    for other in runs[1:]:
        diff = other.workload.differences(first.workload)
        if diff:
            raise PoolError(f"{first.test_id}: workloads differ between processes: {'; '.join(diff)}")
    samples = [s for r in runs for s in r.samples]
    return Result(first.test_id, first.profile, first.workload, samples, first.stack, first.timestamp,
                  dict(first.extra, calibration_processes=len(runs)))


def pooled_with_noise(runs_per_test: Dict[str, List[Result]]) -> Dict[str, Result]:
    """Pooled results; each carries its noise in ``extra['noise_cv']``."""
    out = {}
    for tid, runs in runs_per_test.items():
        pooled = pool(runs)
        pooled.extra["noise_cv"] = noise_of(runs)
        out[tid] = pooled
    return out
