"""``python -m pytest_npuperf``: calibrate noise, compare two result files, show baselines, attribute a
regression to the component of an upgrade that caused it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .attribute.command import DEFAULT_BUDGET_S, load_stacks, run_attribution
from .attribute.stacks import StackError
from .devices.cpu import CPU_TIME_FLOOR
from .errors import BaselineError
from .flows.recording import SERVING_LOADS_ENV
from .judge.compare import budgets_for, compare, finalize
from .judge.metrics import METRICS, format_value
from .judge.noise import PoolError, noise_of, pool, run_noise
from .judge.outcome import TestOutcome
from .judge.result import Result
from .report.attribution import attribution_document, attribution_lines
from .report.export import benchmark_json, markdown_summary
from .report.html import render_html
from .report.terminal import short_id, summary_lines
from .store.baselines import SERVING_LOAD_KEY, BaselineEntry, BaselineStore, entry_medians
from .store.files import atomic_write_json

# The columns of calibrate's table (every gated metric is calibrated and stored).
CALIBRATED_METRICS = ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s")


class CliError(Exception):
    pass


def _load_results(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot read a results JSON ({exc})") from None
    if not isinstance(data, dict) or "tests" not in data:
        raise CliError(f"{path}: not a pytest-npuperf results file (no 'tests')")
    return data


def _results(data: Dict[str, Any]) -> Dict[str, Result]:
    return {t["test_id"]: Result.from_dict(t["result"]) for t in data["tests"] if t.get("result")}


def calibrate(processes: int, pytest_args: List[str], baseline_dir: Path, reason: str) -> int:
    """Run the suite in fresh processes, then save pooled samples with the measured noise."""
    if processes < 2:
        raise CliError("--processes must be at least 2 to measure noise between processes")
    if any(a.startswith(("--npuperf-baseline-dir", "--npuperf-results", "--npuperf-save-baseline")) for a in pytest_args):
        raise CliError("pass the baseline folder as --baseline-dir; results and saving are handled by calibrate")
    per_test: Dict[str, List[Result]] = {}
    passed_everywhere: Optional[set] = None
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(processes):
            out = Path(tmp) / f"run{i}.json"
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args,
                   f"--npuperf-results={out}", f"--npuperf-baseline-dir={tmp}/empty"]
            print(f"calibrate: process {i + 1}/{processes}: {' '.join(cmd[1:])}", flush=True)
            subprocess.run(cmd, check=False, env=env)
            if not out.exists():
                raise CliError(f"process {i + 1} wrote no results; see its output above")
            data = _load_results(out)
            ok = {t["test_id"] for t in data["tests"] if t.get("passed") and t.get("result")}
            passed_everywhere = ok if passed_everywhere is None else passed_everywhere & ok
            for tid, result in _results(data).items():
                per_test.setdefault(tid, []).append(result)
            if i == 0:
                # Serving tests given a load run, in every later process, at the rate the first
                # one measured: one workload, so their samples pool.
                loads = {tid: r.extra[SERVING_LOAD_KEY] for tid, r in _results(data).items()
                         if SERVING_LOAD_KEY in r.extra}
                (Path(tmp) / "serving_loads.json").write_text(json.dumps(loads), encoding="utf-8")
                env[SERVING_LOADS_ENV] = str(Path(tmp) / "serving_loads.json")
    keep = {tid: runs for tid, runs in per_test.items() if tid in (passed_everywhere or set()) and len(runs) == processes}
    if not keep:
        raise CliError("no test passed in every process; nothing to record")
    store = BaselineStore(baseline_dir)
    groups: Dict[tuple, List[Result]] = {}
    noise: Dict[str, Dict[str, float]] = {}
    for tid, runs in keep.items():
        try:
            pooled = pool(runs)
        except PoolError as exc:
            raise CliError(str(exc)) from None
        noise[tid] = noise_of(runs)
        groups.setdefault((pooled.profile, pooled.extra.get("model", pooled.workload.model_id)), []).append(pooled)
    print(f"{'test':<28}" + "".join(f"{m:>14}" for m in CALIBRATED_METRICS) + "   (between-process CV)")
    for tid in keep:
        print(f"{short_id(tid):<28}" + "".join(f"{noise[tid].get(m, 0) * 100:>13.1f}%" for m in CALIBRATED_METRICS))
    for (profile, model), results in groups.items():
        path = store.save(profile, model, results, reason=reason or f"noise calibration over {processes} processes",
                          noise_cv=noise)
        print(f"calibrate: saved {len(results)} entries with their between-process noise to {path}")
    dropped = sorted(set(per_test) - set(keep))
    if dropped:
        print(f"calibrate: not saved (failed or missing in some process): {', '.join(dropped)}")
    return 0


def compare_files(a: Path, b: Path, alpha: float) -> int:
    """Stack A (baseline) against stack B: the verdict table; exit 1 if anything regressed, or if B
    lost a test that A measured (a test that stopped running is a regression too)."""
    data_a, data_b = _load_results(a), _load_results(b)
    res_a, res_b = _results(data_a), _results(data_b)
    common = [tid for tid in res_b if tid in res_a]
    if not common:
        raise CliError(f"{a} and {b} have no test in common")
    # A's processes are a pool of the run's noise only when A recorded the whole suite in them
    # (--npuperf-processes); fresh processes of undecided tests alone are not.
    counts = {r.processes() for r in res_a.values()}
    noise = run_noise(res_a.values()) if len(counts) == 1 and min(counts) >= 2 else {}
    outcomes = []
    for tid in common:
        ra, rb = res_a[tid], res_b[tid]
        entry = BaselineEntry(tid, {"workload": ra.workload.to_dict(), "samples": [s.to_dict() for s in ra.samples],
                                    "stack": ra.stack}, a)
        cpu = rb.profile.startswith("cpu-")
        budgets = budgets_for(CPU_TIME_FLOOR if cpu else None, {})
        comparison = finalize(compare(rb, entry, budgets, alpha, noise), "two results files: no more samples")
        if ra.profile != rb.profile:
            comparison.mismatch.append(f"profile: {ra.profile} (A) vs {rb.profile} (B)")
            comparison.status = "MISMATCH"
        outcomes.append(TestOutcome(tid, rb, comparison))
    print(f"A: {a} ({data_a['run'].get('profile')}, {data_a['run'].get('started_at')})")
    print(f"B: {b} ({data_b['run'].get('profile')}, {data_b['run'].get('started_at')})")
    changes = outcomes[0].comparison.stack_changes if outcomes[0].comparison else []
    print("stack changes A -> B: " + ("; ".join(changes) if changes else "none recorded"))
    for line in summary_lines(outcomes):
        print(line)
    lost = sorted(set(res_a) - set(res_b))
    new = sorted(set(res_b) - set(res_a))
    if new:
        print(f"in B only (new): {', '.join(short_id(t) for t in new)}")
    if lost:
        print(f"LOST: in A but not measured in B: {', '.join(short_id(t) for t in lost)}")
    return 1 if lost or any(o.status in ("REGRESSED", "MISMATCH") for o in outcomes) else 0


def _headline(medians: Dict[str, float]) -> str:
    """The entry's main time and throughput, whichever kind of test it is."""
    parts = []
    for group in (("e2e_s", "time_s", "serving_ttft_p50_s"), ("tokens_per_s", "serving_tokens_per_s", "achieved_tflops")):
        name = next((n for n in group if medians.get(n) is not None), None)
        if name is not None:
            parts.append(f"{name} {format_value(METRICS[name], medians[name])}")
    return "  ".join(parts) or "no timed metric"


def show(baseline_dir: Path) -> int:
    files = sorted(Path(baseline_dir).glob("*/*.json"))
    if not files:
        print(f"no baselines under {baseline_dir}")
        return 0
    store = BaselineStore(baseline_dir)
    for path in files:
        try:
            data = store.read_file(path)
        except BaselineError as exc:
            print(f"{path}: UNREADABLE: {exc}")
            continue
        entries = data["entries"]
        print(f"{path}: profile {data.get('profile')}, model {data.get('model')}, {len(entries)} tests")
        for tid, entry in sorted(entries.items()):
            stack = entry.get("stack", {})
            medians, n = entry_medians(entry)
            noise = " noise-calibrated" if entry.get("noise_cv") else ""
            print(f"  {short_id(tid):<28} {_headline(medians)}  n={n}  "
                  f"{entry.get('recorded_at', '')}  cann={stack.get('cann_version')} torch_npu={stack.get('torch_npu')} "
                  f"torch={stack.get('torch')}{noise}  {entry.get('reason', '')}")
            for old in entry.get("history", []):
                print(f"    earlier: {_headline(old.get('medians', {}))}  {old.get('recorded_at', '')}  "
                      f"cann={old.get('stack', {}).get('cann_version')} torch_npu={old.get('stack', {}).get('torch_npu')} "
                      f"torch={old.get('stack', {}).get('torch')}  {old.get('reason', '')}")
    return 0


def report(results: Path, html_path: Optional[Path], markdown: Optional[Path], bench: Optional[Path],
           baseline_dir: Path) -> int:
    """Render the outputs of a stored results JSON."""
    doc = _load_results(results)
    if not (html_path or markdown or bench):
        raise CliError("nothing to write: give --html, --markdown and/or --benchmark-json")
    if html_path:
        html_path.write_text(render_html(doc, BaselineStore(baseline_dir)), encoding="utf-8")
        print(f"HTML report written to {html_path}")
    if markdown:
        markdown.write_text(markdown_summary(doc), encoding="utf-8")
        print(f"Markdown summary written to {markdown}")
    if bench:
        atomic_write_json(bench, benchmark_json(doc))
        print(f"pytest-benchmark JSON written to {bench}")
    return 0


def attribute(args: argparse.Namespace) -> int:
    """Run the selection on mixed stacks; 0 when one change (or one set) explains the regression."""
    selection = [a for a in args.pytest_args if a != "--"]
    if not selection:
        raise CliError("give the pytest selection after --, e.g. -- perf_tests -m npu -k 'bf16-bs1-zh_qa'")
    stacks = load_stacks(args.stacks, args.good, args.bad, args.candidate_python, args.candidate_cann)
    found = run_attribution(stacks, selection, args.baseline_dir, args.budget, args.workdir, Path.cwd(),
                            lambda line: print(line, flush=True))
    for line in attribution_lines(found):
        print(line)
    doc = attribution_document(found, {"command": "attribute", "selection": selection})
    if args.results:
        atomic_write_json(args.results, doc)
        print(f"attribution written to {args.results}")
    if args.html:
        args.html.write_text(render_html(doc), encoding="utf-8")
        print(f"HTML report written to {args.html}")
    return 0 if found["conclusion"]["explained"] else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_npuperf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_cal = sub.add_parser("calibrate", help="record baselines in several fresh processes, with their between-process noise")
    p_cal.add_argument("--processes", type=int, default=3)
    p_cal.add_argument("--baseline-dir", type=Path, default=Path("baselines"))
    p_cal.add_argument("--reason", default="")
    p_cal.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: the pytest command line, e.g. perf_tests -m npu")
    p_cmp = sub.add_parser("compare", help="compare two results JSON files (A = baseline, B = candidate)")
    p_cmp.add_argument("a", type=Path)
    p_cmp.add_argument("b", type=Path)
    p_cmp.add_argument("--alpha", type=float, default=0.05)
    p_rep = sub.add_parser("report", help="render HTML / Markdown / pytest-benchmark JSON from a results JSON")
    p_rep.add_argument("results", type=Path)
    p_rep.add_argument("--html", type=Path)
    p_rep.add_argument("--markdown", type=Path)
    p_rep.add_argument("--benchmark-json", type=Path)
    p_rep.add_argument("--baseline-dir", type=Path, default=Path("baselines"))
    p_show = sub.add_parser("show", help="list the stored baselines and their history")
    p_show.add_argument("--baseline-dir", type=Path, default=Path("baselines"))
    p_att = sub.add_parser("attribute", help="which change of an upgrade caused a regression: the selected tests "
                           "on mixed stacks (exit 0 when one change or one set of changes explains it)")
    p_att.add_argument("--good", type=Path, help="the good stack: a TOML or JSON file (python, cann, env)")
    p_att.add_argument("--bad", type=Path, help="the bad stack: a TOML or JSON file (python, cann, env)")
    p_att.add_argument("--stacks", type=Path, help="a file with [good], [bad] and [candidates] tables")
    p_att.add_argument("--candidate-python", action="append", default=[], metavar="PATH",
                       help="a further Python environment that may separate torch_npu, torch and transformers; repeatable")
    p_att.add_argument("--candidate-cann", action="append", default=[], metavar="PATH",
                       help="a further CANN set_env.sh that may separate the toolkit from the kernels; repeatable")
    p_att.add_argument("--baseline-dir", type=Path, default=Path("baselines"))
    p_att.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                       help=f"time budget for all mixes (default {DEFAULT_BUDGET_S:.0f})")
    p_att.add_argument("--results", type=Path, help="write the attribution as JSON to PATH")
    p_att.add_argument("--html", type=Path, help="write the attribution as an HTML report to PATH")
    p_att.add_argument("--workdir", type=Path, help="keep each mix's results JSON and output here")
    p_att.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: the pytest selection")
    args = parser.parse_args(argv)
    try:
        if args.command == "calibrate":
            extra = [a for a in args.pytest_args if a != "--"] or ["perf_tests", "-m", "npu"]
            return calibrate(args.processes, extra, args.baseline_dir, args.reason)
        if args.command == "compare":
            return compare_files(args.a, args.b, args.alpha)
        if args.command == "attribute":
            try:
                return attribute(args)
            except (OSError, ValueError) as exc:  # a file that cannot be written, a child that cannot start
                raise CliError(f"attribution stopped: {type(exc).__name__}: {exc}") from None
        if args.command == "report":
            return report(args.results, args.html, args.markdown, args.benchmark_json, args.baseline_dir)
        return show(args.baseline_dir)
    except (CliError, BaselineError, StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


