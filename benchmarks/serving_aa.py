"""Serving A/A on a noisy simulated device: do the serving metrics stay inside their budgets?

The static engine of the plugin (``flows/serving/engines.run_static``, its batching, metrics and
saturation check) serves requests on a virtual clock; only the model is simulated. One decode
step takes STEP_S at batch 1 plus STEP_PER_ROW per extra row, a prefill PREFILL_PER_TOKEN_S per
prompt token, each multiplied by the device's noise:

- a PROCESS shift exp(N(0, --between)), drawn once per fresh process (3% by default);
- a warm-up transient 1 + a x 0.5^k on the k-th run of a process (runs counted from 0,
  warm-ups included), a drawn per process uniformly from 0 to twice --transient: the step time
  falls as caches and clocks settle, by a different amount in each process, as it did over a
  record pass of the committed H200 run (35.4 ms -> 21.8 ms);
- a run's own jitter exp(N(0, --within)).

The step times (25 ms, host-bound, as on the H200) make the engine's capacity about 9 requests/s.

Two scenarios, A/A (the same device on both sides, new processes):
- ``before``: the suite before this change, 16 requests per run at 20 and 80 requests/s (both
  above the capacity, as on the H200), one warm-up run;
- ``now``: 64 requests per run (the full preset) at 40% and 80% of the capacity, measured by
  two all-at-once runs in the baseline's first process and frozen for every later process, and
  warm-up runs until the output tokens/s of the last two agree within 5% (flows/serving/flow.py
  ``settled``, at most ``MAX_WARMUP_RUNS``).

``--slowdown 0.1`` slows the current side's device by 10% (every step and prefill), to see what
the same figures catch.

Per trial: a baseline of --baseline-processes processes x 5 runs, then one new process x 5 runs,
judged by the plugin's ``compare`` with the default budgets and the run-wide noise prior over
the scenario's tests. This is the first comparison of the compare pass, before the fresh
processes an undecided test would take. Printed per scenario and metric: the A/A change of the
medians (50th and 95th percentile of its size), and the share of tests whose first verdict is
REGRESSED, passed (OK, DRIFT or IMPROVED) or undecided; and the share of saturated runs.

    python benchmarks/serving_aa.py                  # 300 trials per scenario
    python benchmarks/serving_aa.py --trials 50 --json /tmp/aa.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from power import StoredEntry  # benchmarks/power.py: a recorded baseline as the judge reads it

from pytest_npuperf.flows.serving.engines import Clock, Scenario, run_static, serving_sample, summarize
from pytest_npuperf.flows.serving.flow import MAX_WARMUP_RUNS, settled
from pytest_npuperf.judge.compare import budgets_for, compare
from pytest_npuperf.judge.gate import Caps
from pytest_npuperf.judge.noise import run_noise
from pytest_npuperf.judge.result import Result, Workload, tag_process
from pytest_npuperf.judge.stats import DRIFT, IMPROVED, OK, REGRESSED

STEP_S = 0.025
STEP_PER_ROW = 0.02
PREFILL_PER_TOKEN_S = 0.0001
PROMPT_TOKENS = (38, 52, 61, 45, 70, 33, 57, 49)  # cycled over the requests
NEW_TOKENS = 32
RUNS = 5
METRICS = ("serving_ttft_p50_s", "serving_tpot_p50_s", "serving_tokens_per_s", "goodput_rps")
PROFILE = "sim-static"


@dataclass(frozen=True)
class Case:
    name: str
    requests: int
    rate: float  # requests/s; 0: given by load
    load: float  # fraction of the capacity; 0: given by rate
    settle: bool  # warm-up until settled (else one warm-up run)


SCENARIOS = {
    "before": (Case("rate20", 16, 20.0, 0.0, False), Case("rate80", 16, 80.0, 0.0, False)),
    "now": (Case("load40", 64, 0.0, 0.4, True), Case("load80", 64, 0.0, 0.8, True)),
    # What more requests per run would buy (the full preset's 64 x 4).
    "now-256": (Case("load40", 256, 0.0, 0.4, True),),
}


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

    def serve(self, scenario: Scenario, prompts: Sequence[Prompt]) -> Dict[str, Any]:
        self.factor = self.slowdown * self.shift * (1 + self.transient * 0.5 ** self.runs) * math.exp(self.rng.normal(0.0, self.within))
        self.runs += 1
        records, wall = run_static(None, Device(), prompts, scenario, self.generate, self.clock,  # type: ignore[arg-type]
                                   lambda loaded, chosen, where: Batch(chosen))
        return summarize(records, wall, scenario.slos, scenario.rate)


def one_process(process: Process, case: Case, rate: float) -> Tuple[List[Any], List[Dict[str, Any]], float]:
    """Probe (when the rate is not frozen yet), warm up, take RUNS runs: (samples, summaries, rate)."""
    prompts = [Prompt(PROMPT_TOKENS[i % len(PROMPT_TOKENS)]) for i in range(case.requests)]
    scenario = Scenario(case.requests, rate or case.rate, max_new_tokens=NEW_TOKENS)
    if case.load and not rate:
        for _ in range(2):
            probe = process.serve(replace(scenario, rate=math.inf), prompts)
        rate = float(f"{case.load * probe['request_throughput']:.4g}")
        scenario = replace(scenario, rate=rate)
    warm: List[float] = []
    while not warm or (case.settle and not settled(warm) and len(warm) < MAX_WARMUP_RUNS):
        warm.append(process.serve(scenario, prompts)["output_tokens_per_s"])
    summaries = [process.serve(scenario, prompts) for _ in range(RUNS)]
    return [serving_sample(s, scenario.slos) for s in summaries], summaries, scenario.rate


def workload(case: Case, rate: float) -> Workload:
    return Workload("sim", "sim", "bf16", 8, (), (), NEW_TOKENS, kind=f"serving-static-{case.name}-rate{rate:g}")


def trial(seed: int, index: int, cases: Sequence[Case], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """One A/A trial of one scenario: every case recorded, then judged once."""
    rng = np.random.default_rng([seed, index])
    noise = (args.between, args.within, args.transient)
    entries, rates, saturated, runs = {}, {}, 0, 0
    for case in cases:
        samples: List[Any] = []
        rate = 0.0
        for p in range(args.baseline_processes):
            taken, summaries, rate = one_process(Process(rng, *noise), case, rate)
            samples += tag_process(taken, p)
        entries[case.name] = StoredEntry(case.name, PROFILE, workload(case, rate), samples)
        rates[case.name] = rate
    prior = run_noise(entries.values())
    budgets, caps = budgets_for(None, {}), Caps(10, 6)
    out = []
    for case in cases:
        taken, summaries, _ = one_process(Process(rng, *noise, args.slowdown), case, rates[case.name])
        saturated += sum(1 for s in summaries if s["saturated"])
        runs += len(summaries)
        result = Result(case.name, PROFILE, workload(case, rates[case.name]), taken, extra={"device_kind": "npu"})
        comparison = compare(result, entries[case.name], budgets, 0.05, prior, caps)
        row: Dict[str, Any] = {"case": case.name, "rate": rates[case.name], "saturated": saturated / runs}
        for metric in METRICS:
            v = comparison.verdict(metric)
            base = statistics.median(entries[case.name].values(metric))
            now = statistics.median(result.values(metric))
            row[metric] = {"status": v.status if v else "none", "change": now / base - 1 if base else None}
        out.append(row)
    return out


def summary(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"tests": len(rows), "saturated_runs": statistics.mean(r["saturated"] for r in rows)}
    for metric in METRICS:
        changes = sorted(abs(r[metric]["change"]) for r in rows if r[metric]["change"] is not None)
        statuses = [r[metric]["status"] for r in rows]
        out[metric] = {
            "abs_change_p50": changes[len(changes) // 2] if changes else None,
            "abs_change_p95": changes[min(len(changes) - 1, int(0.95 * len(changes)))] if changes else None,
            "regressed": statuses.count(REGRESSED) / len(statuses),
            "passed": sum(statuses.count(s) for s in (OK, DRIFT, IMPROVED)) / len(statuses),
        }
        out[metric]["undecided"] = 1 - out[metric]["regressed"] - out[metric]["passed"]
    return out


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--between", type=float, default=0.03, help="between-process noise (CV)")
    parser.add_argument("--within", type=float, default=0.01, help="run-to-run noise (CV)")
    parser.add_argument("--transient", type=float, default=0.6, help="warm-up transient of the first run")
    parser.add_argument("--baseline-processes", type=int, default=6)
    parser.add_argument("--slowdown", type=float, default=0.0,
                        help="slow the current side's device by this fraction (0.1: 10%%); 0: A/A")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(list(argv))
    if args.trials < 1 or args.baseline_processes < 2 or min(args.between, args.within, args.transient) < 0:
        parser.error("--trials >= 1, --baseline-processes >= 2, noise >= 0")
    started = time.perf_counter()
    budgets = budgets_for(None, {})
    results: Dict[str, Dict[str, Any]] = {}
    what = f"a {args.slowdown:.0%} slowdown" if args.slowdown else "A/A"
    print(f"serving {what}, static engine on a virtual clock: {args.trials} trials per scenario, between-process "
          f"noise {args.between:.0%}, run noise {args.within:.0%}, warm-up transient +{args.transient:.0%}, "
          f"{args.baseline_processes} baseline processes")
    for name, cases in SCENARIOS.items():
        rows: Dict[str, List[Dict[str, Any]]] = {c.name: [] for c in cases}
        for i in range(args.trials):
            for row in trial(args.seed, i, cases, args):
                rows[row["case"]].append(row)
        for case in cases:
            s = results.setdefault(name, {})[case.name] = summary(rows[case.name])
            rate = statistics.median(r["rate"] for r in rows[case.name])
            print(f"\n{name} {case.name}: {case.requests} requests per run at {rate:.3g} requests/s; "
                  f"saturated runs {s['saturated_runs']:.0%}")
            print(f"  {'metric':<22} {'budget':>6} {'|A/A| p50':>9} {'|A/A| p95':>9} {'REGRESSED':>9} "
                  f"{'passed':>7} {'undecided':>9}")
            for metric in METRICS:
                m = s[metric]
                print(f"  {metric:<22} {budgets[metric]:>6.0%} {m['abs_change_p50']:>9.1%} {m['abs_change_p95']:>9.1%} "
                      f"{m['regressed']:>9.1%} {m['passed']:>7.1%} {m['undecided']:>9.1%}")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
