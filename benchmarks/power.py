"""Power of the budget rule on the fake NPU's virtual clock: false alarms, detection, undecided.

A simulated suite of T = 8 generation tests (2 workloads x batch 1, 2, 4, 8, like the quick bf16
suite) is timed on the fake torch_npu of tests/fakes (virtual clocks, no sleeping). One
generation is a prefill (about 60 ms x the batch size x the workload's prompt factor of device
work) then 31 decode steps (about 20 ms each, device-bound: the host waits for every token).

Noise, all of it multiplicative on the device durations:
- a PROCESS is one fresh ``build()`` of the fake with its own shift exp(N(0, between_cv)); the
  suite processes (the baseline's and the current run's first) run all 8 tests one after another,
  so their shift is shared by the tests (``--shared``, the part of the shift variance shared,
  1 by default), while a fresh process of the confirmation loop runs one test;
- every run has its own jitter exp(N(0, within_cv)), drawn once for its prefill and once for its
  decode steps (so TTFT and TPOT do not move in lockstep);
- a slowdown s multiplies every device duration of the current side by (1 + s).

Baseline: ``--baseline-processes`` suite processes (default 6, the plugin's
settings.DEFAULT_ACCELERATOR_PROCESSES) x 5 runs per test, samples tagged by process;
the run-wide noise prior is ``noise.run_noise`` over the 8 entries, as the plugin computes it.

Current side, the budget rule driven exactly as the plugin drives it (flows/measurement.py
``TestRun.judge`` then fixture.py ``_settle``): 5 runs in process 0, ``compare``, the runs
``runs_to_add`` asks for, ``compare`` again, then ``next_step`` in a loop, each NEW_PROCESS a
fresh process that judges itself first (5 runs, its own ``runs_to_add``) and hands its samples
over tagged with the next process index; then ``finalize``, and UNCONFIRMED for a regression the
pooled processes no longer show. Fresh processes are on (the accelerator default).

The rule before the budget rule runs on the same draws for comparison (a compact copy of git
2691053: judge/stats.py ``decide``, the resampling of flows/measurement.py and the confirmation
of fixture.py ``_confirm``): practical gate tau = max(floor, 3 x between-process CV of the
baseline's process medians) on the ratio of medians, statistical gate a one-sided exact
Mann-Whitney at alpha; INCONCLUSIVE -> 10 runs at alpha / 2; a REGRESSED test re-run once in a
fresh process, which stands unless that process judges OK/DRIFT/IMPROVED and the pooled samples
of both no longer regress.

Every draw comes from a stream keyed by (seed, trial, side, process, test), with standard normal
draws scaled by the cell's CVs: the cells of one trial, and both rules, see the same draws (common
random numbers), and the figures do not depend on the order in which anything runs.

    python benchmarks/power.py                       # 1000 trials per cell, all cells
    python benchmarks/power.py --quick               # a smoke run
    python benchmarks/power.py --between 0.03 --trials 200 --json /tmp/power.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pytest_npuperf.judge.compare import Comparison, budgets_for, compare, finalize
from pytest_npuperf.judge.gate import Caps, NoisePrior
from pytest_npuperf.judge.noise import run_noise
from pytest_npuperf.judge.result import Result, Sample, Workload, tag_process
from pytest_npuperf.judge.sampling import NEW_PROCESS, next_step, runs_to_add
from pytest_npuperf.judge.stats import DRIFT, IMPROVED, INCONCLUSIVE, OK, REGRESSED, UNCONFIRMED
from pytest_npuperf.settings import DEFAULT_ACCELERATOR_PROCESSES, DEFAULT_MAX_PROCESSES

REPO = Path(__file__).resolve().parent.parent

# The simulated suite.
PREFILL_S = 0.060  # device time of the prefill of one prompt of the first workload
DECODE_S = 0.020  # device time of one decode step at batch 1
DECODE_PER_ROW = 0.02  # decode is memory-bound: each extra row adds 2% to a step
NEW_TOKENS = 32  # the prefill's token and 31 decode steps
WORKLOADS = (("zh_qa", 38, 1.0), ("en_qa", 52, 1.35))  # name, prompt tokens, prefill factor
BATCHES = (1, 2, 4, 8)
GATED = ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s")
PROFILE = "npu-Ascend910B3-sim"

# The plugin's defaults on an accelerator.
RUNS = 5
WARMUP = 1
MAX_RUNS = 10
ALPHA = 0.05

# The cells.
BETWEEN_CVS = (0.01, 0.03, 0.06)
WITHIN_CV = 0.01
GOAL_BETWEEN = 0.03

# Stream keys.
BASELINE_SIDE, CURRENT_SIDE = 0, 1
SHARED_KEY = 1_000_000  # the stream of a process's shared shift (never a test index)

PASSED = "passed"
OUTCOMES = (REGRESSED, INCONCLUSIVE, PASSED)


def category(status: str) -> str:
    """REGRESSED, INCONCLUSIVE or passed (OK, DRIFT, IMPROVED, UNCONFIRMED)."""
    if status in (REGRESSED, INCONCLUSIVE):
        return status
    if status in (OK, DRIFT, IMPROVED, UNCONFIRMED):
        return PASSED
    raise ValueError(f"unexpected final status {status}")


# -- the simulated device and suite ----------------------------------------------------------


def fake_torch_npu() -> ModuleType:
    """tests/fakes/torch_npu.py, imported as the tests import it."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from fakes import torch_npu

    return torch_npu


@dataclass(frozen=True)
class TestSpec:
    """One generation test of the simulated suite."""

    __test__ = False  # not a pytest test class

    index: int
    workload: str
    prompt_tokens: int
    prefill_factor: float
    batch: int

    @property
    def test_id(self) -> str:
        return f"perf_tests/test_generation.py::test_generate[bf16-bs{self.batch}-{self.workload}]"

    @property
    def identity(self) -> Workload:
        prompts = tuple(f"{self.workload}_{i}" for i in range(self.batch))
        return Workload(model_id="mistral-7b-sim", model_fingerprint="sim-0", precision="bf16",
                        batch_size=self.batch, prompt_ids=prompts, prompt_tokens=(self.prompt_tokens,) * self.batch,
                        max_new_tokens=NEW_TOKENS)

    @property
    def prefill_s(self) -> float:
        return PREFILL_S * self.prefill_factor * self.batch

    @property
    def decode_s(self) -> float:
        return DECODE_S * (1 + DECODE_PER_ROW * (self.batch - 1))


SUITE: Tuple[TestSpec, ...] = tuple(
    TestSpec(i, name, tokens, factor, batch)
    for i, ((name, tokens, factor), batch) in enumerate((w, b) for w in WORKLOADS for b in BATCHES)
)


def stream(seed: int, trial: int, *key: int) -> np.random.Generator:
    """The draws of one (trial, side, process, test): independent of every other key."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(trial, *key))))


@dataclass
class Noise:
    between: float  # CV of the process shift
    within: float  # CV of one run's jitter
    shared: float  # part of the shift variance shared by the tests of one suite process


class TestDraws:
    """The standard normal draws of one test in one process: its part of the shift, then two per
    run (prefill, decode). Scaled by the cell's CVs only when used."""

    __test__ = False

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.shift_z = float(rng.standard_normal())

    def run(self) -> Tuple[float, float]:
        a, b = self._rng.standard_normal(2)
        return float(a), float(b)


class Process:
    """One simulated process: a fresh fake torch_npu and the shift all its device work shares."""

    def __init__(self, npu_module: ModuleType, seed: int, trial: int, side: int, index: int,
                 noise: Noise, slowdown: float, test: Optional[int] = None) -> None:
        self.npu = npu_module.build().npu
        self.seed, self.trial, self.side, self.index = seed, trial, side, index
        self.noise, self.slowdown = noise, slowdown
        # A suite process shares one part of its shift among all its tests; a fresh process of
        # the confirmation loop runs one test, so its whole shift is its own.
        shared_key = (side, index, SHARED_KEY) if test is None else (side, index, SHARED_KEY, test)
        self.shared_z = float(stream(seed, trial, *shared_key).standard_normal())
        self._draws: Dict[int, TestDraws] = {}
        self._scale: Dict[int, float] = {}

    def draws(self, spec: TestSpec) -> TestDraws:
        if spec.index not in self._draws:
            d = TestDraws(stream(self.seed, self.trial, self.side, self.index, spec.index))
            n = self.noise
            z = math.sqrt(n.shared) * self.shared_z + math.sqrt(1.0 - n.shared) * d.shift_z
            self._draws[spec.index] = d
            self._scale[spec.index] = math.exp(n.between * z) * (1.0 + self.slowdown)
        return self._draws[spec.index]

    def generate(self, spec: TestSpec) -> Sample:
        """One timed generation, read off the fake's clocks as flows/measure.py reads them: e2e
        from device events, TTFT from the host clock when the first token is on the host."""
        draws = self.draws(spec)
        z_prefill, z_decode = draws.run()
        scale, within = self._scale[spec.index], self.noise.within
        prefill = spec.prefill_s * scale * math.exp(within * z_prefill)
        decode = spec.decode_s * scale * math.exp(within * z_decode)
        npu = self.npu
        npu.synchronize()
        start, end = npu.Event(enable_timing=True), npu.Event(enable_timing=True)
        start.record()
        t0 = npu._host_clock()
        npu._launch(prefill)
        npu._copy_to_host()  # greedy decoding reads each token back
        ttft = npu._host_clock() - t0
        for _ in range(NEW_TOKENS - 1):
            npu._launch(decode)
            npu._copy_to_host()
        end.record()
        e2e = start.elapsed_time(end) / 1e3
        return Sample(e2e_s=e2e, ttft_s=ttft, tpot_s=(e2e - ttft) / (NEW_TOKENS - 1),
                      tokens_per_s=spec.batch * NEW_TOKENS / e2e)

    def take(self, spec: TestSpec, runs: int, warmup: int = 0) -> Tuple[List[Sample], float]:
        """``warmup`` untimed generations then ``runs`` samples; with the virtual seconds spent."""
        began = self.npu._host_clock()
        for _ in range(warmup):
            self.generate(spec)
        samples = [self.generate(spec) for _ in range(runs)]
        self.npu.synchronize()
        return samples, self.npu._host_clock() - began


@dataclass
class StoredEntry(Result):
    """A recorded baseline as the judge reads it (compare.StoredBaseline): a Result with noise_cv."""

    noise_cv: Dict[str, float] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)  # no earlier baselines: no drift
    recorded_at: str = ""
    drift_reset: bool = False


@dataclass
class Baseline:
    """The baseline of one trial: every test's entry, the run's noise prior, and what the rule
    before the budget rule read (pooled samples, between-process CV of the process medians)."""

    entries: Dict[int, StoredEntry]
    prior: Dict[str, NoisePrior]
    old: Dict[int, Dict[str, Tuple[List[float], float]]]


def record_baseline(npu_module: ModuleType, cfg: "Config", noise: Noise, trial: int) -> Baseline:
    """``cfg.baseline_processes`` suite processes, each running every test (1 warm-up, 5 runs)."""
    samples: Dict[int, List[Sample]] = {spec.index: [] for spec in SUITE}
    for p in range(cfg.baseline_processes):
        process = Process(npu_module, cfg.seed, trial, BASELINE_SIDE, p, noise, 0.0)
        for spec in SUITE:
            taken, _ = process.take(spec, RUNS, WARMUP)
            samples[spec.index] += tag_process(taken, p)
    entries = {spec.index: StoredEntry(spec.test_id, PROFILE, spec.identity, samples[spec.index])
               for spec in SUITE}
    old: Dict[int, Dict[str, Tuple[List[float], float]]] = {}
    for spec in SUITE:
        entry = entries[spec.index]
        old[spec.index] = {}
        for name in GATED:
            medians = [statistics.median(g) for g in entry.values_by_process(name)]
            cv = statistics.stdev(medians) / statistics.mean(medians) if len(medians) >= 2 else 0.0
            old[spec.index][name] = (entry.values(name), cv)
    return Baseline(entries, run_noise(entries.values()), old)


# -- one test judged by each rule -------------------------------------------------------------


@dataclass
class Outcome:
    """How one test ended under one rule, and what it cost."""

    status: str
    metrics: Dict[str, str]  # gated metric -> REGRESSED, INCONCLUSIVE or passed
    resolvable: Dict[str, float]
    fresh: int  # fresh processes started (a timed-out one included)
    runs: int  # samples on the current side, every process
    seconds: float  # virtual seconds on the current side, every process
    first: str = ""  # the status after the first process's runs
    result: Optional[Result] = None  # the current side's samples, every process (benchmarks/own_noise.py)


@dataclass
class Config:
    seed: int = 1
    trials: int = 1000
    baseline_processes: int = DEFAULT_ACCELERATOR_PROCESSES
    max_processes: int = DEFAULT_MAX_PROCESSES
    max_runs: int = MAX_RUNS
    process_start_s: float = 0.0
    time_cap_s: float = 600.0
    shared: float = 1.0


def current_result(spec: TestSpec, samples: List[Sample]) -> Result:
    return Result(spec.test_id, PROFILE, spec.identity, samples, extra={"device_kind": "npu"})


def final_status(first: str, status: str) -> str:
    """fixture.py's verdict: a regression of the first process that the pooled processes no
    longer show is UNCONFIRMED (a pass, with a warning)."""
    return UNCONFIRMED if first == REGRESSED and status in (OK, DRIFT, IMPROVED) else status


def fresh_processes(result: Result, comparison: Comparison, judged: Callable[[Result], Comparison],
                    child: Callable[[int], Tuple[Result, float]], max_processes: int,
                    time_cap_s: float) -> Tuple[Comparison, int, float, str]:
    """fixture.py's loop after a test's own process: while ``next_step`` asks for one, a fresh
    process (``child(index)``: the test run as a confirmation child, which judges its own samples
    and may add runs; its samples and virtual seconds come back, added to ``result``) within the
    time cap; then ``finalize``. Returns (the final comparison, fresh processes, their virtual
    seconds, why sampling stopped)."""
    first = comparison.status
    elapsed, slowest, why, fresh = 0.0, 0.0, "", 0
    while True:
        processes = result.processes()
        left = time_cap_s - elapsed
        step = next_step(comparison, first, processes, max_processes, True, left, slowest)
        if step.action != NEW_PROCESS:
            why = step.why
            break
        child_result, child_s = child(processes)
        fresh += 1
        if child_s > left:  # run_child's timeout: killed, no samples
            elapsed += left
            why = "fresh process: TIMEOUT"
            break
        elapsed += child_s
        slowest = max(slowest, child_s)
        result.samples += tag_process(child_result.samples, processes)
        comparison = judged(result)
    finalize(comparison, why or "no more samples")
    return comparison, fresh, elapsed, why


def judge_new(npu_module: ModuleType, cfg: Config, noise: Noise, slowdown: float, trial: int, suite: Process,
              spec: TestSpec, base: Baseline) -> Outcome:
    """The budget rule, in the plugin's order: TestRun.judge, then NpuPerf._settle."""
    budgets, caps = budgets_for(None, {}), Caps(cfg.max_runs, cfg.max_processes)
    entry, prior = base.entries[spec.index], base.prior

    def judged(result: Result) -> Comparison:
        return compare(result, entry, budgets, ALPHA, prior, caps)

    def first_process(process: Process) -> Tuple[Result, Comparison, float]:
        """TestRun.judge: the runs, the comparison, the runs the plan adds, the comparison again."""
        taken, seconds = process.take(spec, RUNS, WARMUP)
        result = current_result(spec, taken)
        comparison = judged(result)
        more = runs_to_add(comparison, len(result.samples), cfg.max_runs)
        if more:
            extra, spent = process.take(spec, more)
            result.samples += extra
            seconds += spent
            comparison = judged(result)
        return result, comparison, seconds

    def child(index: int) -> Tuple[Result, float]:
        process = Process(npu_module, cfg.seed, trial, CURRENT_SIDE, index, noise, slowdown, test=spec.index)
        child_result, _, child_s = first_process(process)
        return child_result, child_s + cfg.process_start_s

    result, comparison, seconds = first_process(suite)
    first = comparison.status
    comparison, fresh, elapsed, _ = fresh_processes(result, comparison, judged, child, cfg.max_processes,
                                                    cfg.time_cap_s)
    seconds += elapsed
    status = final_status(first, comparison.status)
    metrics = {v.metric: category(v.status) for v in comparison.verdicts if v.metric in GATED}
    resolvable = {v.metric: v.resolvable for v in comparison.verdicts if v.metric in GATED and v.resolvable}
    return Outcome(status, metrics, resolvable, fresh, len(result.samples), seconds, first, result)


# -- the rule before the budget rule, for comparison (git 2691053) ------------------------------

MAD_SCALE = 1.4826
OLD_ORDER = (REGRESSED, INCONCLUSIVE, DRIFT, IMPROVED, OK)
OLD_ACCEPTED = (OK, DRIFT, IMPROVED)  # a confirmation child that may turn a regression UNCONFIRMED
OLD_FLOORS = {name: budgets_for(None, {})[name] for name in GATED}
HIGHER_IS_BETTER = {"e2e_s": False, "ttft_s": False, "tpot_s": False, "tokens_per_s": True}


@lru_cache(maxsize=None)
def u_tail(n: int, m: int) -> Tuple[float, ...]:
    """P(U >= u) for u = 0 .. n*m, where U counts the (x, y) pairs with x > y among n x's and
    m y's drawn from one continuous distribution (the exact null of Mann-Whitney, no ties)."""
    # ways[j][u]: orderings of i x's and j y's with U = u, built up one x at a time; the largest of
    # the i + j values is either an x (beating all j y's) or a y (adding nothing).
    ways: List[List[int]] = [[1] for _ in range(m + 1)]
    for i in range(1, n + 1):
        row: List[List[int]] = [[1]]
        for j in range(1, m + 1):
            counts = [0] * (i * j + 1)
            for u, k in enumerate(ways[j]):
                counts[u + j] += k
            for u, k in enumerate(row[j - 1]):
                counts[u] += k
            row.append(counts)
        ways = row
    total = math.comb(n + m, n)
    tail, acc = [0.0] * (n * m + 1), 0
    for u in range(n * m, -1, -1):
        acc += ways[m][u]
        tail[u] = acc / total
    return tuple(tail)


def old_p_worse(current: Sequence[float], baseline: Sequence[float], higher_is_better: bool) -> float:
    """One-sided exact Mann-Whitney p-value for 'current is worse than baseline'."""
    if higher_is_better:
        u = sum((x < y) + 0.5 * (x == y) for x in current for y in baseline)
    else:
        u = sum((x > y) + 0.5 * (x == y) for x in current for y in baseline)
    return u_tail(len(current), len(baseline))[math.ceil(u)]


def old_screen(values: Sequence[float], higher_is_better: bool) -> List[float]:
    """Drop slow outliers beyond median + 3 x 1.4826 MAD, worst first, at most n // 5."""
    limit = len(values) // 5
    if limit == 0:
        return list(values)
    m = statistics.median(values)
    reach = 3 * MAD_SCALE * statistics.median(abs(v - m) for v in values)
    sign = -1.0 if higher_is_better else 1.0
    beyond = sorted((i for i, v in enumerate(values) if sign * (v - m) > reach),
                    key=lambda i: sign * (values[i] - m), reverse=True)[:limit]
    return [v for i, v in enumerate(values) if i not in set(beyond)]


def old_decide(name: str, current: Sequence[float], baseline: Sequence[float], cv: float, alpha: float) -> str:
    hib = HIGHER_IS_BETTER[name]
    cur, base = old_screen(current, hib), old_screen(baseline, hib)
    cur_med, base_med = statistics.median(cur), statistics.median(base)
    tau = max(OLD_FLOORS[name], 3.0 * cv)
    ratio = base_med / cur_med if hib else cur_med / base_med
    worse = old_p_worse(cur, base, hib) < alpha
    if ratio > 1.0 + tau:
        return REGRESSED if worse else INCONCLUSIVE
    if ratio * (1.0 + tau) < 1.0 and old_p_worse(cur, base, not hib) < alpha:
        return IMPROVED
    return DRIFT if worse else OK


def old_compare(samples: Sequence[Sample], baseline: Dict[str, Tuple[List[float], float]],
                alpha: float) -> Tuple[str, Dict[str, str]]:
    statuses = {}
    for name in GATED:
        values, cv = baseline[name]
        statuses[name] = old_decide(name, [float(getattr(s, name)) for s in samples], values, cv, alpha)
    worst = next((s for s in OLD_ORDER if s in statuses.values()), OK)
    return worst, statuses


def judge_old(npu_module: ModuleType, cfg: Config, noise: Noise, slowdown: float, trial: int, suite: Process,
              spec: TestSpec, base: Baseline) -> Outcome:
    """The old flow: 5 runs; INCONCLUSIVE -> 10 runs at alpha / 2; REGRESSED -> one fresh process."""
    baseline = base.old[spec.index]

    def measured(process: Process) -> Tuple[List[Sample], str, Dict[str, str], float]:
        samples, seconds = process.take(spec, RUNS, WARMUP)
        status, metrics = old_compare(samples, baseline, ALPHA)
        if status == INCONCLUSIVE and len(samples) < MAX_RUNS:
            extra, spent = process.take(spec, MAX_RUNS - len(samples))
            samples += extra
            seconds += spent
            status, metrics = old_compare(samples, baseline, ALPHA / 2)
        return samples, status, metrics, seconds

    samples, status, metrics, seconds = measured(suite)
    first, fresh, runs = status, 0, len(samples)
    if status == REGRESSED:
        child = Process(npu_module, cfg.seed, trial, CURRENT_SIDE, 1, noise, slowdown, test=spec.index)
        child_samples, child_status, _, child_s = measured(child)
        fresh, runs, seconds = 1, runs + len(child_samples), seconds + child_s + cfg.process_start_s
        if child_status in OLD_ACCEPTED:
            pooled, pooled_metrics = old_compare(samples + child_samples, baseline, ALPHA)
            if pooled == REGRESSED:
                metrics = pooled_metrics
            else:
                status = UNCONFIRMED
                metrics = {k: (OK if v == REGRESSED else v) for k, v in metrics.items()}
    return Outcome(status, {k: category(v) for k, v in metrics.items()}, {}, fresh, runs, seconds, first)


# -- the cells ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """The outcomes of one rule in one cell, counted per test and per metric."""

    tests: int = 0
    status: Dict[str, int] = field(default_factory=dict)  # final status -> tests
    outcome: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    per_test: Dict[str, Dict[str, int]] = field(default_factory=dict)
    per_metric: Dict[str, Dict[str, int]] = field(default_factory=dict)
    fresh_sum: int = 0
    fresh_max: int = 0
    runs_sum: int = 0
    runs_max: int = 0
    seconds_sum: float = 0.0
    first_regressed: int = 0
    resolvable: Dict[str, List[float]] = field(default_factory=dict)
    resolvable_inconclusive: Dict[str, List[float]] = field(default_factory=dict)
    suites: int = 0  # suite compares (trials)
    suites_regressed: int = 0  # suite compares in which at least one test ended REGRESSED

    def add_suite(self, outcomes: Sequence[Outcome]) -> None:
        self.suites += 1
        self.suites_regressed += any(o.status == REGRESSED for o in outcomes)

    def add(self, spec: TestSpec, o: Outcome) -> None:
        self.tests += 1
        self.status[o.status] = self.status.get(o.status, 0) + 1
        self.outcome[category(o.status)] += 1
        per = self.per_test.setdefault(spec.test_id, dict.fromkeys(OUTCOMES, 0))
        per[category(o.status)] += 1
        for name, cat in o.metrics.items():
            self.per_metric.setdefault(name, dict.fromkeys(OUTCOMES, 0))[cat] += 1
        for name, value in o.resolvable.items():
            self.resolvable.setdefault(name, []).append(value)
            if o.metrics.get(name) == INCONCLUSIVE:
                self.resolvable_inconclusive.setdefault(name, []).append(value)
        self.fresh_sum += o.fresh
        self.fresh_max = max(self.fresh_max, o.fresh)
        self.runs_sum += o.runs
        self.runs_max = max(self.runs_max, o.runs)
        self.seconds_sum += o.seconds
        self.first_regressed += o.first == REGRESSED

    def rate(self, outcome: str) -> float:
        return self.outcome[outcome] / self.tests if self.tests else 0.0

    def figures(self) -> Dict[str, Any]:
        n = max(self.tests, 1)

        def med(values: Dict[str, List[float]]) -> Dict[str, Optional[float]]:
            return {k: statistics.median(v) for k, v in sorted(values.items()) if v}

        return {
            "tests": self.tests,
            "rates": {k: v / n for k, v in self.outcome.items()},
            "counts": dict(self.outcome),
            "statuses": dict(sorted(self.status.items())),
            "per_metric": {k: {o: c / n for o, c in v.items()} for k, v in self.per_metric.items()},
            "per_test": {k: {o: c / max(sum(v.values()), 1) for o, c in v.items()} for k, v in self.per_test.items()},
            "fresh_processes": {"mean": self.fresh_sum / n, "max": self.fresh_max},
            "runs": {"mean": self.runs_sum / n, "max": self.runs_max},
            "virtual_seconds_mean": self.seconds_sum / n,
            "first_process_regressed": self.first_regressed / n,
            "suites": self.suites,
            "suites_with_a_regressed_test": self.suites_regressed / max(self.suites, 1),
            "median_resolvable": med(self.resolvable),
            "median_resolvable_inconclusive": med(self.resolvable_inconclusive),
        }


def effects() -> Tuple[Tuple[str, float], ...]:
    budget = budgets_for(None, {})["e2e_s"]
    return (("A/A", 0.0), ("1x budget", budget), ("1.5x budget", 1.5 * budget), ("2x budget", 2 * budget),
            ("10%", 0.10))


def simulate(cfg: Config, between: float, within: float, slowdowns: Sequence[float],
             trials: Optional[int] = None) -> Dict[float, Dict[str, Tally]]:
    """Trials of one noise level: per slowdown, a Tally per rule ('new', 'old'). Each trial records
    one baseline and compares the suite against it once per slowdown."""
    npu_module = fake_torch_npu()
    noise = Noise(between, within, cfg.shared)
    out = {s: {"new": Tally(), "old": Tally()} for s in slowdowns}
    for trial in range(cfg.trials if trials is None else trials):
        base = record_baseline(npu_module, cfg, noise, trial)
        for slowdown in slowdowns:
            for rule, judge in (("new", judge_new), ("old", judge_old)):
                suite = Process(npu_module, cfg.seed, trial, CURRENT_SIDE, 0, noise, slowdown)
                tally, outcomes = out[slowdown][rule], []
                for spec in SUITE:
                    outcomes.append(judge(npu_module, cfg, noise, slowdown, trial, suite, spec, base))
                    tally.add(spec, outcomes[-1])
                tally.add_suite(outcomes)
    return out


# -- the report --------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{x * 100:5.1f}%"


def print_tables(cfg: Config, cells: Dict[float, Dict[float, Dict[str, Tally]]]) -> None:
    names = dict((s, name) for name, s in effects())
    print(f"\nPer test (over {cfg.trials} trials x {len(SUITE)} tests per cell): REGR = REGRESSED, INCON = "
          "INCONCLUSIVE, PASS = OK/DRIFT/IMPROVED/UNCONFIRMED;\n"
          "suite = suite compares with at least one test REGRESSED; fresh, runs, virt s = per test, current side")
    head = (f"{'between':>7} {'effect':<12}| {'new: REGR':>9} {'INCON':>6} {'PASS':>6} {'suite':>6} {'fresh':>5} "
            f"{'max':>3} {'runs':>5} {'max':>3} {'virt s':>6} | {'old: REGR':>9} {'INCON':>6} {'PASS':>6} {'suite':>6} "
            f"{'fresh':>5} {'runs':>5} {'virt s':>6}")
    print(head)
    print("-" * len(head))
    for between, by_effect in cells.items():
        for slowdown, tallies in by_effect.items():
            new, old = tallies["new"], tallies["old"]
            n = max(new.tests, 1)
            print(f"{between * 100:6.0f}% {names.get(slowdown, f'{slowdown:.1%}'):<12}| "
                  f"{pct(new.rate(REGRESSED)):>9} {pct(new.rate(INCONCLUSIVE))} {pct(new.rate(PASSED))} "
                  f"{pct(new.suites_regressed / max(new.suites, 1))} {new.fresh_sum / n:5.2f} {new.fresh_max:3d} "
                  f"{new.runs_sum / n:5.1f} {new.runs_max:3d} {new.seconds_sum / n:6.1f} | "
                  f"{pct(old.rate(REGRESSED)):>9} {pct(old.rate(INCONCLUSIVE))} {pct(old.rate(PASSED))} "
                  f"{pct(old.suites_regressed / max(old.suites, 1))} {old.fresh_sum / n:5.2f} "
                  f"{old.runs_sum / n:5.1f} {old.seconds_sum / n:6.1f}")
    for rule, title in (("new", "new rule: REGRESSED / INCONCLUSIVE (budgets: e2e, tpot, tokens/s 3%, ttft 5%)"),
                        ("old", "old rule: REGRESSED / INCONCLUSIVE")):
        print(f"\nPer gated metric, {title}")
        print(f"{'between':>7} {'effect':<12}|" + "".join(f" {m:>15}" for m in GATED))
        for between, by_effect in cells.items():
            for slowdown, tallies in by_effect.items():
                t = tallies[rule]
                row = ""
                for m in GATED:
                    c = t.per_metric.get(m, {})
                    row += f" {c.get(REGRESSED, 0) / t.tests * 100:6.1f}/{c.get(INCONCLUSIVE, 0) / t.tests * 100:5.1f}%"
                print(f"{between * 100:6.0f}% {names.get(slowdown, ''):<12}|{row}")
    print("\nPer test, new rule: REGRESSED / INCONCLUSIVE of each test (bs = batch size)")
    labels = [f"{s.workload[:2]}-bs{s.batch}" for s in SUITE]
    print(f"{'between':>7} {'effect':<12}|" + "".join(f" {label:>11}" for label in labels))
    for between, by_effect in cells.items():
        for slowdown, tallies in by_effect.items():
            t = tallies["new"]
            row = ""
            for spec in SUITE:
                c = t.per_test.get(spec.test_id, dict.fromkeys(OUTCOMES, 0))
                k = max(sum(c.values()), 1)
                row += f" {c[REGRESSED] / k * 100:5.1f}/{c[INCONCLUSIVE] / k * 100:4.1f}"
            print(f"{between * 100:6.0f}% {names.get(slowdown, ''):<12}|{row}")
    print("\nMedian smallest resolvable regression the new rule's verdicts report (80% power), per metric:")
    print(f"{'between':>7} {'verdicts':<28}|" + "".join(f" {m:>12}" for m in GATED))
    for between, by_effect in cells.items():
        aa = by_effect.get(0.0, {}).get("new")
        inconclusive: Dict[str, List[float]] = {}
        for tallies in by_effect.values():
            for m, values in tallies["new"].resolvable_inconclusive.items():
                inconclusive.setdefault(m, []).extend(values)
        for label, source in (("A/A, all", aa.resolvable if aa else {}), ("INCONCLUSIVE, every effect", inconclusive)):
            row = "".join(f" {statistics.median(source[m]) * 100:11.1f}%" if source.get(m) else f" {'-':>12}"
                          for m in GATED)
            print(f"{between * 100:6.0f}% {label:<28}|{row}")


def goals(cells: Dict[float, Dict[float, Dict[str, Tally]]]) -> List[Dict[str, Any]]:
    """The goals at 3% between-process noise, for the new rule (the old rule's figure alongside)."""
    by_effect = cells.get(GOAL_BETWEEN)
    if not by_effect:
        return []
    budget = budgets_for(None, {})["e2e_s"]
    checks = []
    for slowdown, label, what, target, higher in (
        (0.0, "A/A false alarms (REGRESSED) <= 1%", (REGRESSED,), 0.01, False),
        (0.10, "10% slowdown caught (REGRESSED) >= 99%", (REGRESSED,), 0.99, True),
        (1.5 * budget, "1.5x budget caught or undecidable (REGRESSED + INCONCLUSIVE) >= 90%",
         (REGRESSED, INCONCLUSIVE), 0.90, True),
    ):
        tallies = by_effect.get(slowdown)
        if tallies is None:
            continue
        value = sum(tallies["new"].rate(w) for w in what)
        old = sum(tallies["old"].rate(w) for w in what)
        met = value >= target if higher else value <= target
        caught = tallies["new"].rate(REGRESSED)
        checks.append({"goal": label, "value": value, "target": target, "pass": met, "old_rule": old,
                       "regressed_only": caught, "tests": tallies["new"].tests})
    return checks


RULE_FILES = ("gate.py", "sampling.py", "compare.py", "noise.py", "stats.py")


def rule_code() -> Dict[str, str]:
    """A short hash of each judge module the figures come from (the rule is still being worked on)."""
    judge = REPO / "pytest_npuperf" / "judge"
    return {name: hashlib.sha256((judge / name).read_bytes()).hexdigest()[:12] for name in RULE_FILES}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="simulated suite compares per cell (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 trials per cell")
    parser.add_argument("--baseline-processes", type=int, default=DEFAULT_ACCELERATOR_PROCESSES,
                        help="suite processes the baseline is recorded in (default %(default)s, the plugin's default on an accelerator)")
    parser.add_argument("--max-processes", type=int, default=DEFAULT_MAX_PROCESSES,
                        help="processes per test, its own included (default: the plugin's)")
    parser.add_argument("--process-start-s", type=float, default=0.0,
                        help="virtual seconds a fresh process costs before its first run (default 0)")
    parser.add_argument("--time-cap-s", type=float, default=600.0, help="virtual seconds for the fresh processes")
    parser.add_argument("--between", type=float, nargs="+", default=list(BETWEEN_CVS),
                        help="between-process CVs (default 0.01 0.03 0.06)")
    parser.add_argument("--within", type=float, default=WITHIN_CV)
    parser.add_argument("--shared", type=float, default=1.0,
                        help="part of the process shift's variance shared by the tests of one suite process "
                             "(1: one shift per process for all its device work; 0: independent per test)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.shared <= 1.0:
        parser.error("--shared must be between 0 and 1")
    cfg = Config(seed=args.seed, trials=20 if args.quick else args.trials, baseline_processes=args.baseline_processes,
                 max_processes=args.max_processes, process_start_s=args.process_start_s, time_cap_s=args.time_cap_s,
                 shared=args.shared)
    slowdowns = [s for _, s in effects()]
    print(f"power of the budget rule on the fake NPU: {len(SUITE)} tests, {cfg.trials} trials per cell, seed {cfg.seed}")
    print(f"baseline {cfg.baseline_processes} processes x {RUNS} runs; current {RUNS} runs (at most {cfg.max_runs}), "
          f"fresh processes on, at most {cfg.max_processes} processes, time cap {cfg.time_cap_s:g} virtual s, "
          f"process start cost {cfg.process_start_s:g} virtual s; within-process CV {args.within:.1%}, "
          f"shared part of the shift {cfg.shared:g}; alpha {ALPHA}")
    code = rule_code()
    print("rule code (sha256/12): " + ", ".join(f"{k} {v}" for k, v in code.items()))
    began = time.perf_counter()
    cells: Dict[float, Dict[float, Dict[str, Tally]]] = {}
    for between in args.between:
        t0 = time.perf_counter()
        cells[between] = simulate(cfg, between, args.within, slowdowns)
        print(f"  between-process CV {between:.0%}: {time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - began
    print_tables(cfg, cells)
    checks = goals(cells)
    if checks:
        print(f"\nGoals at {GOAL_BETWEEN:.0%} between-process noise ({WITHIN_CV:.0%} within), new rule (old rule alongside):")
        for c in checks:
            print(f"  {'PASS' if c['pass'] else 'MISS'}: {c['goal']}: {c['value'] * 100:.2f}% of {c['tests']} tests "
                  f"(REGRESSED alone {c['regressed_only'] * 100:.2f}%; old rule {c['old_rule'] * 100:.2f}%)")
    print(f"\nwall time {wall:.0f} s")
    if args.json:
        names = dict((s, name) for name, s in effects())
        doc = {
            "config": {**cfg.__dict__, "within": args.within, "alpha": ALPHA, "runs": RUNS, "warmup": WARMUP,
                       "tests": [s.test_id for s in SUITE]},
            "wall_s": wall,
            "rule_code": code,
            "cells": [{"between": b, "within": args.within, "effect": names.get(s, str(s)), "slowdown": s,
                       "new": t["new"].figures(), "old": t["old"].figures()}
                      for b, by_effect in cells.items() for s, t in by_effect.items()],
            "goals": checks,
        }
        args.json.write_text(json.dumps(doc, indent=1))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
