"""Measure between-process noise: the same perf tests in several fresh pytest processes.

Within one process the samples of a test are tight; a new nightly run is a new process, and
its medians move more. This script runs the suite N times, each in a fresh process, and
prints, per test and metric, the in-process robust CV and the CV of the per-process medians.
The CPU tolerance floor (devices/cpu.py) must cover the latter.

    python benchmarks/noise.py --processes 5 -- --npuperf-preset quick -k "bs1 or bs8"
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s")


def robust_cv(values: List[float]) -> float:
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    return 1.4826 * mad / med if med else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    per_test: Dict[str, Dict[str, List[float]]] = {}
    in_process: Dict[str, Dict[str, List[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.processes):
            out = Path(tmp) / f"run{i}.json"
            cmd = [sys.executable, "-m", "pytest", "perf_tests", "-m", "npu", "-q", "-p", "no:cacheprovider",
                   "-W", "ignore", f"--npuperf-results={out}", f"--npuperf-baseline-dir={tmp}/none", *args.pytest_args]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if not out.exists():
                print(proc.stdout[-2000:], proc.stderr[-2000:])
                return 1
            for test in json.loads(out.read_text())["tests"]:
                if not test["result"]:
                    continue
                tid = test["test_id"].split("[")[-1].rstrip("]")
                for metric in METRICS:
                    values = [s[metric] for s in test["result"]["samples"]]
                    per_test.setdefault(tid, {}).setdefault(metric, []).append(statistics.median(values))
                    in_process.setdefault(tid, {}).setdefault(metric, []).append(robust_cv(values))
    print(f"between-process noise over {args.processes} fresh processes ({' '.join(args.pytest_args)})")
    print(f"{'test':<18}{'metric':<14}{'in-process CV':>14}{'between CV':>12}{'max/min':>9}")
    worst = 0.0
    for tid, metrics in per_test.items():
        for metric, medians in metrics.items():
            between = statistics.pstdev(medians) / statistics.mean(medians)
            worst = max(worst, between)
            inside = statistics.median(in_process[tid][metric])
            print(f"{tid:<18}{metric:<14}{inside * 100:>13.1f}%{between * 100:>11.1f}%{max(medians) / min(medians):>9.2f}")
    print(f"largest between-process CV: {worst * 100:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
