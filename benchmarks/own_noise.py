"""How often the compare pass's own-noise check fires, on the fake NPU's virtual clock.

The simulation of benchmarks/power.py (8 generation tests, the plugin's own judging and
sampling loop, a baseline of 6 suite processes at --baseline-between noise between processes):
the compare pass runs with another between-process noise, the check of
pytest_npuperf/judge/own_noise.py pools the fresh processes that undecided tests took and holds
them against the baseline's recorded noise (one-sided F test at 99%). Printed per compare-pass
noise: the share of compare passes that the check calls noisier ("NOISE needs attention"),
that measured nothing of their own (no test took two fresh processes), and the median ratio of
the measured to the baseline's CV. No slowdown: the question is the noise, not the change.

    python benchmarks/own_noise.py                     # 300 trials per cell
    python benchmarks/own_noise.py --trials 50 --current 0.03 0.09
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from power import CURRENT_SIDE, SUITE, Config, Noise, Process, fake_torch_npu, judge_new, record_baseline

from pytest_npuperf.judge.own_noise import NOISIER_LEVEL, check


def cell(cfg: Config, base_noise: Noise, current: Noise) -> Dict[str, Any]:
    npu = fake_torch_npu()
    noisier = nothing = 0
    ratios: List[float] = []
    for trial in range(cfg.trials):
        base = record_baseline(npu, cfg, base_noise, trial)
        suite = Process(npu, cfg.seed, trial, CURRENT_SIDE, 0, current, 0.0)
        results = [judge_new(npu, cfg, current, 0.0, trial, suite, spec, base).result for spec in SUITE]
        checks = [c for c in check([r for r in results if r is not None], base.prior) if c.prior is not None]
        if not checks:
            nothing += 1
            continue
        noisier += any(c.noisier for c in checks)
        tpot = [c for c in checks if c.metric == "tpot_s"]
        if tpot and tpot[0].prior is not None:
            ratios.append(math.sqrt(tpot[0].variance / tpot[0].prior.variance))
    return {"noisier": noisier / cfg.trials, "measured_nothing": nothing / cfg.trials,
            "tpot_cv_ratio_median": statistics.median(ratios) if ratios else None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline-between", type=float, default=0.03)
    parser.add_argument("--current", type=float, nargs="+", default=[0.01, 0.03, 0.06, 0.09],
                        help="the compare pass's between-process CVs")
    parser.add_argument("--within", type=float, default=0.01)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.baseline_between <= 0 or min(args.current) < 0:
        parser.error("--trials >= 1, noise > 0")
    cfg = Config(seed=args.seed, trials=args.trials)
    started = time.perf_counter()
    print(f"own-noise check (F test at {NOISIER_LEVEL:.0%}) on the fake NPU: {cfg.trials} compare passes of "
          f"{len(SUITE)} tests per cell; baseline {cfg.baseline_processes} processes at {args.baseline_between:.0%} "
          f"between processes, {args.within:.0%} within; at most {cfg.max_processes} processes per test; no slowdown")
    print(f"{'compare-pass noise':>18} | {'NOISE needs attention':>21} | {'measured nothing':>16} | "
          f"{'tpot CV ratio (median)':>22}")
    cells = {}
    for between in args.current:
        out = cell(cfg, Noise(args.baseline_between, args.within, 1.0), Noise(between, args.within, 1.0))
        cells[str(between)] = out
        ratio = out["tpot_cv_ratio_median"]
        print(f"{between:>18.0%} | {out['noisier']:>21.1%} | {out['measured_nothing']:>16.1%} | "
              f"{'-' if ratio is None else f'{ratio:.2f}':>22}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cells": cells}, indent=1), encoding="utf-8")
        print(f"figures written to {args.json}")
    print(f"wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
