"""Validate the regression rule: false-alarm rate on A/A comparisons, detection of slowdowns.

Two parts, both printing a table:

synthetic  Samples drawn from a noise model (per-process shift x per-sample noise x occasional
           slow outliers), compared with the rule exactly as the plugin applies it, for:
           - the noise measured on this project's CPU with the tiny model (benchmarks/noise.py);
           - the statistics scenario of docs/measurement.md (3% noise, 10% of runs slowed), a stand-in
             for an accelerator until one is measured.
real       Fresh processes running the tiny model on this machine, some with real extra work
           injected into every forward pass (a busy loop sized to slow generation by 5/10/20%),
           compared pairwise with the same rule.

    python benchmarks/false_alarms.py synthetic --trials 1000
    python benchmarks/false_alarms.py real --processes 6
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from pytest_npuperf.devices.cpu import CPU_TIME_FLOOR
from pytest_npuperf.judge.metrics import METRICS
from pytest_npuperf.judge.noise import between_process_cv
from pytest_npuperf.judge.stats import DRIFT, IMPROVED, INCONCLUSIVE, OK, REGRESSED, decide

E2E = METRICS["e2e_s"]
RUNS = 5
MAX_RUNS = 10
SLOWDOWNS = (0.0, 0.05, 0.10, 0.20)


class NoiseModel:
    def __init__(self, name: str, in_cv: float, between_cv: float, outlier_p: float, outlier_max: float) -> None:
        self.name, self.in_cv, self.between_cv = name, in_cv, between_cv
        self.outlier_p, self.outlier_max = outlier_p, outlier_max

    def process(self, rng: random.Random, slowdown: float) -> Callable[[int], List[float]]:
        """A fresh process: one shift for all its samples."""
        shift = math.exp(rng.gauss(0, self.between_cv)) * (1 + slowdown)

        def draw(n: int) -> List[float]:
            out = []
            for _ in range(n):
                x = shift * math.exp(rng.gauss(0, self.in_cv))
                if rng.random() < self.outlier_p:
                    x *= rng.uniform(1.05, self.outlier_max)
                out.append(x)
            return out

        return draw


def judge(current: Callable[[int], List[float]], baseline: Sequence[float], floor: float,
          noise_cv: Optional[float]) -> str:
    """The plugin's flow: decide; if INCONCLUSIVE, more samples up to the cap, alpha/2."""
    return judge_samples(current, baseline, floor, noise_cv)[0]


def judge_samples(current: Callable[[int], List[float]], baseline: Sequence[float], floor: float,
                  noise_cv: Optional[float]) -> Tuple[str, List[float]]:
    """judge(), also returning the samples it took."""
    cur = current(RUNS)
    verdict = decide(E2E, cur, baseline, floor, 0.05, noise_cv)
    if verdict.status == INCONCLUSIVE:
        cur += current(MAX_RUNS - RUNS)
        verdict = decide(E2E, cur, baseline, floor, 0.025, noise_cv)
    return verdict.status, cur


def confirmed(rule: str, parent: List[float], child: Callable[[int], List[float]], baseline: Sequence[float],
              floor: float, noise_cv: Optional[float]) -> bool:
    """Whether a regression stands after a confirmation process.

    'repeat' (the rule before issue 13): only a child that regresses again confirms it.
    'pooled' (the plugin's rule): a child that does not judge OK/DRIFT/IMPROVED confirms it (fail
    closed: INCONCLUSIVE too); otherwise the pooled samples of both processes decide.
    """
    status, samples = judge_samples(child, baseline, floor, noise_cv)
    if rule == "repeat":
        return status == REGRESSED
    if status not in (OK, DRIFT, IMPROVED):
        return True
    return decide(E2E, parent + samples, baseline, floor, 0.05, noise_cv).status == REGRESSED


def synthetic(trials: int, seed: int) -> None:
    models = [
        NoiseModel("CPU tiny, measured: in-process CV 5%, between-process CV 12%, 5% outliers", 0.05, 0.12, 0.05, 1.6),
        NoiseModel("statistics scenario (docs/measurement.md): 3% noise, 10% of runs slowed up to 1.5x", 0.03, 0.0, 0.10, 1.5),
        NoiseModel("quiet accelerator, assumed: 1% in-process, 1% between processes, 5% outliers", 0.01, 0.01, 0.05, 1.5),
    ]
    rules: List[Tuple[str, Callable[[NoiseModel, random.Random], Tuple[List[float], float, Optional[float]]], str]] = [
        ("floor 3%, --npuperf-no-confirm", _plain(E2E.floor), ""),
        ("floor 3% + confirmation, old rule (child must regress)", _plain(E2E.floor), "repeat"),
        ("floor 3% + confirmation, pooled (default on npu/cuda)", _plain(E2E.floor), "pooled"),
        (f"CPU profile floor {CPU_TIME_FLOOR:.0%}", _plain(CPU_TIME_FLOOR), ""),
        ("calibrated over 3 processes (pytest_npuperf calibrate)", _calibrated, ""),
        ("calibrated + confirmation, old rule", _calibrated, "repeat"),
        ("calibrated + confirmation, pooled", _calibrated, "pooled"),
    ]
    print(f"synthetic: {trials} trials per cell, {RUNS} runs per side (up to {MAX_RUNS} when inconclusive), e2e_s")
    print(f"{'noise model / rule':<64}" + "".join(f"{'A/A' if s == 0 else f'+{s:.0%}':>9}" for s in SLOWDOWNS))
    for model in models:
        print(model.name)
        for name, floor_of, confirm in rules:
            rates = []
            for slowdown in SLOWDOWNS:
                rng = random.Random(f"{seed}|{model.name}|{slowdown}")  # every rule sees the same draws
                hits = 0
                for _ in range(trials):
                    baseline, floor, noise = floor_of(model, rng)
                    status, samples = judge_samples(model.process(rng, slowdown), baseline, floor, noise)
                    regressed = status == REGRESSED
                    if regressed and confirm:
                        regressed = confirmed(confirm, samples, model.process(rng, slowdown), baseline, floor, noise)
                    hits += regressed
                rates.append(hits / trials)
            print(f"  {name:<62}" + "".join(f"{r * 100:8.1f}%" for r in rates))
    print("A/A = false alarms (target <= 1%); +x% = detection of an x% slowdown (targets: 95% at 10%, 80% at 5%)")


def _plain(floor: float) -> Callable[[NoiseModel, random.Random], Tuple[List[float], float, Optional[float]]]:
    """A baseline recorded by one --npuperf-save-baseline process."""
    return lambda model, rng: (model.process(rng, 0.0)(RUNS), floor, None)


def _calibrated(model: NoiseModel, rng: random.Random) -> Tuple[List[float], float, Optional[float]]:
    """What `python -m pytest_npuperf calibrate --processes 3` stores: the pooled samples of 3
    processes and the CV of their medians."""
    runs = [model.process(rng, 0.0)(RUNS) for _ in range(3)]
    medians = [statistics.median(r) for r in runs]
    return [x for r in runs for x in r], E2E.floor, between_process_cv(medians)


# --- real runs ----------------------------------------------------------------------------------

def child(slowdown: float, new_tokens: int) -> None:
    import torch

    from pytest_npuperf.devices.cpu import CpuDevice
    from pytest_npuperf.flows.measure import make_batch, measure_once, warm_up
    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.model.workloads import batch_prompts
    from pytest_npuperf.precision import get_precision

    device = CpuDevice()
    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    batch = make_batch(loaded, batch_prompts("en_qa", 4), "cpu")
    warm_up(loaded, device, batch, new_tokens, 2)
    # Size the extra work from this process's own speed: slowdown x the time of one step.
    step = statistics.median(measure_once(loaded, device, batch, new_tokens).e2e_s for _ in range(3)) / new_tokens
    spin = slowdown * step

    def extra_work(module, args, output):
        end = time.perf_counter() + spin
        while time.perf_counter() < end:
            pass

    if spin > 0:
        loaded.model.model.register_forward_hook(extra_work)
    samples = [measure_once(loaded, device, batch, new_tokens).e2e_s for _ in range(MAX_RUNS)]
    print(json.dumps({"slowdown": slowdown, "e2e_s": samples, "threads": torch.get_num_threads()}))


def real(processes: int, new_tokens: int) -> None:
    runs: Dict[float, List[List[float]]] = {s: [] for s in SLOWDOWNS}
    order = [s for _ in range(processes) for s in SLOWDOWNS]  # interleaved: drifts hit every level
    for i, slowdown in enumerate(order):
        out = subprocess.run([sys.executable, __file__, "child", "--slowdown", str(slowdown), "--new-tokens", str(new_tokens)],
                             capture_output=True, text=True, check=True).stdout
        runs[slowdown].append(json.loads(out.strip().splitlines()[-1])["e2e_s"])
        print(f"  process {i + 1}/{len(order)} (+{slowdown:.0%}) median e2e {statistics.median(runs[slowdown][-1]) * 1e3:.1f} ms",
              flush=True)
    base = runs[0.0]
    print(f"real: tiny bf16, batch 4, {new_tokens} new tokens, {processes} fresh processes per level; every baseline "
          "process against every other process of a level")
    print(f"{'rule':<40}" + "".join(f"{'A/A' if s == 0 else f'+{s:.0%}':>14}" for s in SLOWDOWNS))
    cal_cv = between_process_cv([statistics.median(b[:RUNS]) for b in base])
    rules = (("default floor 3%", E2E.floor, None, ""),
             ("floor 3% + confirmation, old rule", E2E.floor, None, "repeat"),
             ("floor 3% + confirmation, pooled", E2E.floor, None, "pooled"),
             (f"CPU profile floor {CPU_TIME_FLOOR:.0%}", CPU_TIME_FLOOR, None, ""),
             (f"calibrated (between-process CV {cal_cv:.1%})", E2E.floor, cal_cv, ""))
    for name, floor, noise, confirm in rules:
        cells = []
        for slowdown in SLOWDOWNS:
            level = runs[slowdown]
            triples = [(i, j, (j + k) % len(level)) for i, j in itertools.product(range(len(base)), range(len(level)))
                       for k in range(1, len(level)) if slowdown or i != j]
            # The confirmation child of a pair: the next process of the level that is neither side.
            pairs = {}
            for i, j, child in triples:
                if (i, j) not in pairs and (slowdown or child != i):
                    pairs[(i, j)] = child
            hits = 0
            for (i, j), child in pairs.items():
                status, samples = judge_samples(_replay(level[j]), base[i][:RUNS], floor, noise)
                regressed = status == REGRESSED
                if regressed and confirm:
                    regressed = confirmed(confirm, samples, _replay(level[child]), base[i][:RUNS], floor, noise)
                hits += regressed
            cells.append(f"{hits}/{len(pairs)}")
        print(f"{name:<40}" + "".join(f"{c:>14}" for c in cells))
    print("the calibrated row uses noise measured on the same A processes it is tested on: optimistic")


def _replay(samples: List[float]) -> Callable[[int], List[float]]:
    taken = {"n": 0}

    def draw(n: int) -> List[float]:
        out = samples[taken["n"]: taken["n"] + n]
        taken["n"] += n
        return out

    return draw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p_syn = sub.add_parser("synthetic")
    p_syn.add_argument("--trials", type=int, default=1000)
    p_syn.add_argument("--seed", type=int, default=7)
    p_real = sub.add_parser("real")
    p_real.add_argument("--processes", type=int, default=6)
    p_real.add_argument("--new-tokens", type=int, default=32)
    p_child = sub.add_parser("child")
    p_child.add_argument("--slowdown", type=float, required=True)
    p_child.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    if args.mode == "synthetic":
        synthetic(args.trials, args.seed)
    elif args.mode == "real":
        real(args.processes, args.new_tokens)
    else:
        child(args.slowdown, args.new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
