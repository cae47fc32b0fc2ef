"""Noise between processes: pool the results of fresh processes and measure how their medians move.

Pure functions over Results; used by ``--npuperf-processes`` (plugin) and ``calibrate`` (cli).
"""

from __future__ import annotations

import statistics
from typing import Dict, Iterable, List, Protocol, Sequence

from .gate import NoisePrior, log_medians, spread
from .metrics import METRICS
from .result import Result, tag_process

# Every gated metric: generation, steps, operators, serving and memory alike.
NOISE_METRICS = tuple(name for name, m in METRICS.items() if m.gated)


class ProcessSamples(Protocol):
    """Anything with samples grouped by process: a Result or a stored baseline."""

    def values_by_process(self, metric: str) -> List[List[float]]: ...


def run_noise(entries: Iterable[ProcessSamples], minimum_df: int = 2) -> Dict[str, NoisePrior]:
    """The between-process variance of each timing metric pooled over ``entries`` (the baselines
    of one device profile and model): the spread of each test's log process medians about its
    own mean, summed, over the summed degrees of freedom.

    The recording processes each ran the whole suite, so a process's shift (clocks, placement)
    is shared by its tests, and the tests' spreads are not independent evidence: the pooled
    variance is steadier than any one test's, but it is credited with the degrees of freedom of
    the processes alone (processes - 1), not the sum over tests. Metrics with fewer than
    ``minimum_df`` degrees of freedom are left out."""
    totals: Dict[str, List[float]] = {}
    most: Dict[str, int] = {}
    for entry in entries:
        for name in NOISE_METRICS:
            metric = METRICS[name]
            if not metric.statistical:
                continue
            groups = entry.values_by_process(name)
            if len(groups) < 2 or any(v <= 0 for g in groups for v in g):
                continue
            total = totals.setdefault(name, [0.0, 0.0])
            total[0] += spread(log_medians(groups, metric.higher_is_better))
            total[1] += len(groups) - 1
            most[name] = max(most.get(name, 0), len(groups))
    return {name: NoisePrior(ss / df, float(most[name] - 1),
                             f"the {most[name]} recorded processes, pooled over the run's baselines")
            for name, (ss, df) in totals.items() if most[name] - 1 >= minimum_df and ss > 0}


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
    samples = [s for i, r in enumerate(runs) for s in tag_process(r.samples, i)]
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
