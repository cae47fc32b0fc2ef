"""Serving through the whole gate on a noisy simulated device: A/A and a 10% slower device.

The static engine of the plugin (``flows/serving/engines.run_static``: its batching, metrics and
saturation check) serves requests on a virtual clock, warmed up by the plugin's own
``flows/serving/flow.warm_up`` and judged by the plugin's comparison and sampling plan; only the
model is simulated. One decode step takes STEP_S at batch 1 plus STEP_PER_ROW per extra row, a
prefill PREFILL_PER_TOKEN_S per prompt token, each multiplied by the device's noise:

- a PROCESS shift exp(N(0, --between)), drawn once per fresh process (3% by default);
- a warm-up transient 1 + a x 0.5^k on the k-th run of a process (runs counted from 0,
  warm-ups included), a drawn per process uniformly from 0 to twice --transient: the step time
  falls as caches and clocks settle, by a different amount in each process, as it did over a
  record pass of the committed H200 run (35.4 ms -> 21.8 ms);
- a run's own jitter exp(N(0, --within)).

The step times (25 ms, host-bound, as on the H200) make the engine's capacity about 9 requests/s.

Per trial and case (64 requests per run, the full preset, at 40% or 80% of the capacity measured
by two all-at-once runs in the baseline's first process and frozen for every later process):
a baseline of --baseline-processes processes x 5 runs, then the current side as the plugin runs
it (flows/measurement.py ``TestRun.judge`` then fixture.py's loop): 5 runs, ``compare``, the runs
``runs_to_add`` asks for, then fresh processes while ``next_step`` asks for one, each warmed up
and judged on its own first, within the time cap per test (--time-cap, the plugin's default 600 s,
counted in virtual seconds: warm-ups and runs; starting a process is free here). The budgets are
the defaults (TPOT and tokens/s 3%, goodput 5%).

Two rules, on the same draws (each process's noise comes from a stream keyed by trial, side and
process):

- ``before``: the suite at git 74bd306: warm-up runs at the test's load until the output tokens/s
  of the last two agree within 5% (which, under a load below the capacity, they do from the second
  run: the tokens/s follow the offered rate), and the median TTFT gated with a 5% budget;
- ``now``: ``warm_up`` (every request at once until the median TPOT settles, then one run at the
  load) and the median TTFT reported, not gated.

Printed per rule, case and effect (A/A, --slowdown): per metric and per test the share of trials
REGRESSED, INCONCLUSIVE and passed (OK, DRIFT, IMPROVED, UNCONFIRMED); the final estimate's A/A
change (95th percentile of its size); fresh processes per test and the virtual seconds they took
(the test's first process not counted); why sampling stopped. Then why the TTFT is not gated:
the median TTFT, queueing and TPOT of one fixed arrival schedule (the suite's, seed 0) against
the device's speed, over --sensitivity-runs runs per speed, and the same averaged over as many
schedules (seeds).

    python benchmarks/serving_aa.py                         # 1000 trials per cell
    python benchmarks/serving_aa.py --trials 50 --json /tmp/serving.json
    python benchmarks/serving_aa.py --rules now --time-cap 1200    # what a longer cap buys
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np
from power import ALPHA, MAX_RUNS, StoredEntry, category, final_status, fresh_processes  # benchmarks/power.py

from pytest_npuperf.flows.serving.engines import Clock, Scenario, run_static, serving_sample, summarize
from pytest_npuperf.flows.serving.flow import MAX_WARMUP_RUNS, offered_rate, settled, warm_up
from pytest_npuperf.judge import metrics as metrics_module
from pytest_npuperf.judge import noise as noise_module
from pytest_npuperf.judge.compare import Comparison, budgets_for, compare
from pytest_npuperf.judge.gate import Caps
from pytest_npuperf.judge.result import Result, Sample, Workload, tag_process
from pytest_npuperf.judge.sampling import runs_to_add
from pytest_npuperf.judge.stats import INCONCLUSIVE, REGRESSED
from pytest_npuperf.settings import DEFAULT_ACCELERATOR_PROCESSES, DEFAULT_MAX_PROCESSES, DEFAULT_TIME_CAP_S

STEP_S = 0.025
STEP_PER_ROW = 0.02
PREFILL_PER_TOKEN_S = 0.0001
PROMPT_TOKENS = (38, 52, 61, 45, 70, 33, 57, 49)  # cycled over the requests
NEW_TOKENS = 32
REQUESTS = 64
RUNS = 5
METRICS = ("serving_ttft_p50_s", "serving_tpot_p50_s", "serving_tokens_per_s", "goodput_rps")
PROFILE = "sim-static"
LOADS = (0.4, 0.8)
RULES = ("before", "now")
BASELINE_SIDE, CURRENT_SIDE = 0, 1
SPEEDS = (0.94, 0.97, 1.0, 1.03, 1.06)  # device time factors of the sensitivity table


class Prompt:
    def __init__(self, tokens: int) -> None:
        self.tokens = tokens


class Shape:
    def __init__(self, rows: int, width: int) -> None:
        self.shape = (rows, width)


class Batch:
    def __init__(self, prompts: Sequence[Prompt]) -> None:
        self.prompt_tokens = [p.tokens for p in prompts]
        self.input_ids = Shape(len(prompts), max(self.prompt_tokens))


class Device:
    torch_device = "sim"

    def synchronize(self) -> None:
        pass


PROMPTS = [Prompt(PROMPT_TOKENS[i % len(PROMPT_TOKENS)]) for i in range(REQUESTS)]


class Process:
    """One fresh process of the simulated device: its own shift, its own count of runs."""

    def __init__(self, rng: np.random.Generator, between: float, within: float, transient: float,
                 slowdown: float = 0.0) -> None:
        self.rng, self.within, self.slowdown = rng, within, 1.0 + slowdown
        self.shift = math.exp(rng.normal(0.0, between))
        self.transient = transient * rng.uniform(0.0, 2.0)  # how far from settled a process starts
        self.runs = 0
        self.factor = 1.0
        self.t = 0.0
        self.clock = Clock(now=lambda: self.t, sleep=self.advance)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def generate(self, loaded: Any, batch: Batch, new: int, streamer: Any) -> Shape:
        rows = batch.input_ids.shape[0]
        self.advance(PREFILL_PER_TOKEN_S * sum(batch.prompt_tokens) * self.factor)
        streamer.put(None)  # the prompt
        streamer.put(None)  # the first token, from the prefill
        step = STEP_S * (1 + STEP_PER_ROW * (rows - 1)) * self.factor
        for _ in range(new - 1):
            self.advance(step)
            streamer.put(None)
        return Shape(rows, batch.input_ids.shape[1] + new)

    def records(self, scenario: Scenario) -> Tuple[List[Any], float]:
        self.factor = (self.slowdown * self.shift * (1 + self.transient * 0.5 ** self.runs)
                       * math.exp(self.rng.normal(0.0, self.within)))
        self.runs += 1
        return run_static(None, Device(), PROMPTS, scenario, self.generate, self.clock,  # type: ignore[arg-type]
                          lambda loaded, chosen, where: Batch(chosen))

    def serve(self, scenario: Scenario) -> Dict[str, Any]:
        records, wall = self.records(scenario)
        return summarize(records, wall, scenario.slos, scenario.rate)


def warm_before(process: Process, scenario: Scenario) -> None:
    """The warm-up at git 74bd306: runs at the load until two agree on output tokens/s."""
    tokens_per_s: List[float] = []
    while not tokens_per_s or (not settled(tokens_per_s) and len(tokens_per_s) < MAX_WARMUP_RUNS):
        tokens_per_s.append(process.serve(scenario)["output_tokens_per_s"])


def warm(process: Process, scenario: Scenario, rule: str) -> None:
    if rule == "before":
        warm_before(process, scenario)
    else:
        warm_up(process.serve, scenario, 1)


def take(process: Process, scenario: Scenario, runs: int) -> List[Sample]:
    return [serving_sample(process.serve(scenario), scenario.slos) for _ in range(runs)]


def capacity_rate(process: Process, load: float) -> float:
    """Two all-at-once runs, the second measures, as the flow does."""
    for _ in range(2):
        probe = process.serve(Scenario(REQUESTS, math.inf, max_new_tokens=NEW_TOKENS))
    return offered_rate(load, probe["request_throughput"])


def workload(load: float, rate: float) -> Workload:
    return Workload("sim", "sim", "bf16", 8, (), (), NEW_TOKENS, kind=f"serving-static-load{load:g}-rate{rate:g}")


@contextlib.contextmanager
def ttft_gated(gated: bool) -> Iterator[None]:
    """Gate the serving TTFT as the suite did before (and pool its noise, as noise.py did)."""
    name = "serving_ttft_p50_s"
    metric, pooled = metrics_module.METRICS[name], noise_module.NOISE_METRICS
    if gated:
        metrics_module.METRICS[name] = replace(metric, gated=True)
        noise_module.NOISE_METRICS = tuple(pooled) + (name,)
    try:
        yield
    finally:
        metrics_module.METRICS[name], noise_module.NOISE_METRICS = metric, pooled


@dataclass
class Cell:
    rule: str
    load: float
    slowdown: float


def process_rng(seed: int, trial: int, load: float, side: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, trial, int(load * 100), side, index])


def trial(cell: Cell, index: int, args: argparse.Namespace) -> Dict[str, Any]:
    """One trial of one cell: a baseline recorded, the current side judged through the whole gate."""
    noise = (args.between, args.within, args.transient)
    samples: List[Sample] = []
    rate = 0.0
    for p in range(args.baseline_processes):
        process = Process(process_rng(args.seed, index, cell.load, BASELINE_SIDE, p), *noise)
        if not rate:
            rate = capacity_rate(process, cell.load)
        scenario = Scenario(REQUESTS, rate, max_new_tokens=NEW_TOKENS)
        warm(process, scenario, cell.rule)
        samples += tag_process(take(process, scenario, RUNS), p)
    entry = StoredEntry(f"load{cell.load:g}", PROFILE, workload(cell.load, rate), samples)
    prior = noise_module.run_noise([entry])
    budgets, caps = budgets_for(None, {}), Caps(MAX_RUNS, args.max_processes)
    scenario = Scenario(REQUESTS, rate, max_new_tokens=NEW_TOKENS)

    def judged(result: Result) -> Comparison:
        return compare(result, entry, budgets, ALPHA, prior, caps)

    def first_process(index_: int) -> Tuple[Result, Comparison, float]:
        """TestRun.judge: warm-up, the runs, the comparison, the runs the plan adds, again."""
        process = Process(process_rng(args.seed, index, cell.load, CURRENT_SIDE, index_), *noise, cell.slowdown)
        warm(process, scenario, cell.rule)
        result = Result(entry.test_id, PROFILE, entry.workload, take(process, scenario, RUNS),
                        extra={"device_kind": "npu"})
        comparison = judged(result)
        more = runs_to_add(comparison, len(result.samples), caps.runs)
        if more:
            result.samples += take(process, scenario, more)
            comparison = judged(result)
        return result, comparison, process.t

    def child(index_: int) -> Tuple[Result, float]:
        child_result, _, seconds = first_process(index_)
        return child_result, seconds

    result, comparison, _ = first_process(0)
    first = comparison.status
    first_metric = {m: comparison.verdict(m).status for m in METRICS}
    comparison, fresh, elapsed, why = fresh_processes(result, comparison, judged, child, caps.processes,
                                                      args.time_cap)
    row: Dict[str, Any] = {"status": category(final_status(first, comparison.status)), "fresh": fresh,
                           "virtual_s": elapsed, "why": stop_reason(why or "decided")}
    for metric in METRICS:
        v = comparison.verdict(metric)
        row[metric] = {"status": category(final_status(first_metric[metric], v.status)) if v.gated else "reported",
                       "change": v.worse_change}
    return row


def stop_reason(why: str) -> str:
    for key, short in (("time cap", "time cap"), ("would not decide", "futile"), ("the cap", "process cap"),
                       ("TIMEOUT", "time cap"), ("decided", "decided")):
        if key in why:
            return short
    return why


def summary(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    n = len(rows)
    statuses = Counter(r["status"] for r in rows)
    out: Dict[str, Any] = {
        "trials": n, "test": {k: statuses[k] / n for k in (REGRESSED, INCONCLUSIVE, "passed")},
        "fresh_processes": statistics.mean(r["fresh"] for r in rows),
        "virtual_s": statistics.mean(r["virtual_s"] for r in rows),
        "stopped": {k: v / n for k, v in Counter(r["why"] for r in rows).items()},
    }
    for metric in METRICS:
        got = Counter(r[metric]["status"] for r in rows)
        changes = sorted(abs(r[metric]["change"]) for r in rows if r[metric]["change"] is not None)
        out[metric] = {k: got[k] / n for k in (REGRESSED, INCONCLUSIVE, "passed", "reported")}
        out[metric]["abs_change_p95"] = changes[min(len(changes) - 1, int(0.95 * len(changes)))] if changes else None
    return out


def sensitivity(args: argparse.Namespace, rate: float) -> Dict[str, Any]:
    """Median TTFT, queueing and TPOT against the device's speed: one schedule, and many."""
    out: Dict[str, Any] = {}
    for schedules in ("one", "many"):
        rows = {}
        for speed in SPEEDS:
            figures: Dict[str, List[float]] = {"ttft_s_p50": [], "queue_s_p50": [], "tpot_s_p50": []}
            rng = np.random.default_rng([args.seed, int(speed * 1000)])
            for k in range(args.sensitivity_runs):
                process = Process(rng, 0.0, args.within, 0.0)
                process.slowdown = speed
                seed = k if schedules == "many" else 0
                summary_ = process.serve(Scenario(REQUESTS, rate, seed=seed, max_new_tokens=NEW_TOKENS))
                for name in figures:
                    figures[name].append(summary_[name])
            rows[f"{speed:g}"] = {name: statistics.mean(v) for name, v in figures.items()}
            rows[f"{speed:g}"]["ttft_run_cv"] = statistics.stdev(figures["ttft_s_p50"]) / statistics.mean(figures["ttft_s_p50"])
        out[schedules] = rows
    return out


def print_cells(results: Mapping[str, Any], budgets: Mapping[str, float]) -> None:
    for key, s in results.items():
        print(f"\n{key}: per test REGRESSED {s['test'][REGRESSED]:.1%}, INCONCLUSIVE "
              f"{s['test'][INCONCLUSIVE]:.1%}, passed {s['test']['passed']:.1%}; fresh processes "
              f"{s['fresh_processes']:.2f}, {s['virtual_s']:.0f} virtual s per test; stopped: "
              + ", ".join(f"{k} {v:.0%}" for k, v in sorted(s["stopped"].items())))
        print(f"  {'metric':<22} {'budget':>6} {'REGRESSED':>9} {'INCONCL.':>9} {'passed':>7} {'reported':>8} "
              f"{'|change| p95':>12}")
        for metric in METRICS:
            m = s[metric]
            p95 = "-" if m["abs_change_p95"] is None else f"{m['abs_change_p95']:.1%}"
            print(f"  {metric:<22} {budgets[metric]:>6.0%} {m[REGRESSED]:>9.1%} {m[INCONCLUSIVE]:>9.1%} "
                  f"{m['passed']:>7.1%} {m['reported']:>8.0%} {p95:>12}")


def print_sensitivity(table: Mapping[str, Any], rate: float, runs: int) -> None:
    print(f"\nwhy the TTFT is not gated: load 40% ({rate:g} requests/s), {REQUESTS} requests, mean over {runs} "
          "runs per device speed (1% run jitter, no process shift)")
    print(f"  {'schedules':<10} {'device time':>11} {'TTFT p50':>18} {'queueing p50':>18} {'TPOT p50':>18} "
          f"{'TTFT p50 CV over runs':>22}")
    for schedules, rows in table.items():
        base = rows["1"]
        for speed, f in rows.items():
            print(f"  {schedules:<10} {float(speed):>10.2f}x" + "".join(
                f"{f[name] * 1e3:>9.1f}ms ({f[name] / base[name] - 1:+6.1%})"
                for name in ("ttft_s_p50", "queue_s_p50", "tpot_s_p50")) + f"{f['ttft_run_cv']:>23.1%}")


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--between", type=float, default=0.03, help="between-process noise (CV)")
    parser.add_argument("--within", type=float, default=0.01, help="run-to-run noise (CV)")
    parser.add_argument("--transient", type=float, default=0.6, help="warm-up transient of the first run")
    parser.add_argument("--baseline-processes", type=int, default=DEFAULT_ACCELERATOR_PROCESSES)
    parser.add_argument("--max-processes", type=int, default=DEFAULT_MAX_PROCESSES)
    parser.add_argument("--time-cap", type=float, default=DEFAULT_TIME_CAP_S, help="virtual seconds per test")
    parser.add_argument("--slowdown", type=float, default=0.10, help="the slower device's extra time (0.1: 10%%)")
    parser.add_argument("--sensitivity-runs", type=int, default=300)
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(list(argv))
    if (args.trials < 1 or args.baseline_processes < 2 or args.max_processes < 1 or args.time_cap <= 0
            or min(args.between, args.within, args.transient, args.slowdown) < 0 or args.sensitivity_runs < 2):
        parser.error("--trials >= 1, --baseline-processes >= 2, --max-processes >= 1, --time-cap > 0, "
                     "noise and slowdown >= 0, --sensitivity-runs >= 2")
    started = time.perf_counter()
    budgets = budgets_for(None, {})
    print(f"serving through the whole gate, static engine on a virtual clock: {args.trials} trials per cell, "
          f"between-process noise {args.between:.0%}, run noise {args.within:.0%}, warm-up transient up to "
          f"+{2 * args.transient:.0%}, baseline {args.baseline_processes} processes x {RUNS} runs, at most "
          f"{args.max_processes} processes and {args.time_cap:g} virtual s per test, {REQUESTS} requests per run")
    results: Dict[str, Any] = {}
    for rule in args.rules:
        with ttft_gated(rule == "before"):
            for load in LOADS:
                for slowdown in (0.0, args.slowdown):
                    cell = Cell(rule, load, slowdown)
                    rows = [trial(cell, i, args) for i in range(args.trials)]
                    effect = "A/A" if not slowdown else f"{slowdown:.0%} slower"
                    results[f"{rule} load{load * 100:.0f} {effect}"] = summary(rows)
    print_cells(results, budgets)
    rate = capacity_rate(Process(np.random.default_rng(args.seed), 0.0, 0.0, 0.0), LOADS[0])
    table = sensitivity(args, rate)
    print_sensitivity(table, rate, args.sensitivity_runs)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "results": results, "ttft_sensitivity": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
