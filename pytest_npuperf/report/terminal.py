"""Text of the terminal summary and the results JSON document. Pure: returns data, prints nothing.

The summary reads the results document's tests (``TestOutcome.to_dict``), like the Markdown and
HTML reports, so that the three agree on what needs attention, the kind of each test and the
study's generation matrix.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..judge.compare import NO_PROCESS_NOISE
from ..judge.metrics import METRICS, format_value
from ..judge.outcome import TestOutcome, related_regressions
from ..judge.stats import REGRESSED, UNCONFIRMED, median, robust_cv
from ..modes import EAGER, GRAPH
from .modes import (
    GRAPH_COLUMNS,
    decode_text,
    execution_mode,
    graph_row,
    graph_tests,
    has_decode_fraction,
    mode_label,
    mode_order,
    row_label,
    wall_time_text,
)

Test = Mapping[str, Any]

SUMMARY_METRICS = (
    "e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes", "peak_rss_bytes",
    "fidelity_kl", "fidelity_top1", "fidelity_cosine", "fidelity_greedy_agreement", "time_s", "achieved_tflops", "achieved_gb_s",
    "serving_ttft_p50_s", "serving_tpot_p50_s", "serving_tokens_per_s", "goodput_rps",
    "compile_s", "graph_compiles",
)
_COLUMNS = ("test", "metric", "median", "spread", "baseline", "change", "worse: bounds", "budget", "verdict")

KINDS = ("generation", "steps", "operators", "serving")
# Verdicts that need nobody's attention; every other one (and a failed test) is listed first,
# in this order, so a verdict kind added later is shown rather than hidden.
QUIET = ("OK", "IMPROVED", "NO_BASELINE")
ATTENTION_ORDER = ("REGRESSED", "MISMATCH", "ERROR", "FAILED", "UNCONFIRMED", "INCONCLUSIVE", "DRIFT")


def short_id(test_id: str) -> str:
    """'perf_tests/test_generation.py::test_generate[fp16-bs8-zh_qa]' -> 'fp16-bs8-zh_qa'."""
    if test_id.endswith("]") and "[" in test_id:
        return test_id[test_id.index("[") + 1 : -1]
    return test_id.rsplit("::", 1)[-1]


def sample_values(test: Test, metric: str) -> List[float]:
    """The metric's values over a test's samples (results-document form)."""
    result = test.get("result") or {}
    return [float(s[metric]) for s in result.get("samples", []) if s.get(metric) is not None]


def sample_median(test: Test, metric: str) -> Optional[float]:
    values = sample_values(test, metric)
    return median(values) if values else None


def verdict_of(test: Test, metric: str) -> Optional[Mapping[str, Any]]:
    for v in (test.get("comparison") or {}).get("verdicts", []):
        if v["metric"] == metric:
            return v
    return None


def test_kind(test: Test) -> str:
    """generation, steps, operators or serving: from the workload's mode, else the test's name."""
    workload = (test.get("result") or {}).get("workload") or {}
    mode = str(workload.get("mode", ""))
    if not mode:
        name = test["test_id"].rsplit("::", 1)[-1].split("[")[0]
        mode = {"test_prefill": "step-", "test_decode": "step-", "test_op": "op", "test_serving": "serving"}.get(name, "")
        if not mode:
            return "generation" if "generat" in name else "other"
    if mode.startswith("step-"):
        return "steps"
    if mode == "op":
        return "operators"
    if mode.startswith("serving"):
        return "serving"
    return "generation"


def attention_status(test: Test) -> Optional[str]:
    """The word a test is listed under when it needs attention; None when it does not."""
    status = test.get("status", "-")
    if status not in QUIET and status != "-":
        return status
    if test.get("passed") is False or test.get("budget_failures"):
        return "FAILED"
    return None


def needs_attention(tests: Sequence[Test]) -> List[Tuple[str, Test]]:
    """(word, test) of every test that needs a look, worst kind first, run order within a kind."""
    found = [(attention_status(t), i, t) for i, t in enumerate(tests)]
    rank = {w: i for i, w in enumerate(ATTENTION_ORDER)}
    found = [f for f in found if f[0] is not None]
    found.sort(key=lambda f: (rank.get(f[0], len(rank)), f[1]))
    return [(word, t) for word, _, t in found]


def verdict_counts(tests: Iterable[Test]) -> Dict[str, int]:
    """Tests per verdict, the ones that need attention first."""
    counts: Dict[str, int] = {}
    for t in tests:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    rank = {w: i for i, w in enumerate(ATTENTION_ORDER + QUIET)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], -1), kv[0])))


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def by_kind(tests: Sequence[Test]) -> Dict[str, List[Test]]:
    """The tests of each kind, kinds in KINDS order, empty kinds left out."""
    groups: Dict[str, List[Test]] = {}
    for t in tests:
        groups.setdefault(test_kind(t), []).append(t)
    order = list(KINDS) + sorted(set(groups) - set(KINDS))
    return {k: groups[k] for k in order if k in groups}


def by_kind_and_mode(tests: Sequence[Test]) -> Dict[str, List[Test]]:
    """by_kind, each kind's graph-mode tests in a group of their own after it: 'generation (graph)'."""
    groups: Dict[str, List[Test]] = {}
    for kind, group in by_kind(tests).items():
        modes: Dict[str, List[Test]] = {}
        for t in group:
            modes.setdefault(execution_mode(t), []).append(t)
        for mode in mode_order(list(modes)):
            groups[mode_label(kind, mode)] = modes[mode]
    return groups


def attention_details(test: Test) -> List[str]:
    """What a reader needs next to a listed test: the error, mismatch, budget, confirmation, stack."""
    comparison = test.get("comparison") or {}
    lines = []
    if test.get("error"):
        lines.append(test["error"])
    lines += [f"workload differs: {d}" for d in comparison.get("mismatch", [])]
    lines += [f"budget {b}" for b in test.get("budget_failures", [])]
    if comparison.get("confirmation"):
        lines.append(comparison["confirmation"])
    if comparison.get("profile"):
        lines.append(f"profile of one generation: {comparison['profile']}")
    if comparison and comparison.get("status") != "NO_BASELINE":
        changes = comparison.get("stack_changes") or []
        lines.append("stack changes since the baseline: " + ("; ".join(changes) if changes else "none recorded"))
    return lines


def serving_runs(test: Test) -> List[Mapping[str, Any]]:
    return list(((test.get("result") or {}).get("extra") or {}).get("serving_runs") or [])


def saturated_runs(test: Test) -> List[str]:
    """Why each saturated run of a serving test at an offered rate was saturated (all-at-once
    runs are saturated by design and not listed)."""
    return [r["saturated"] for r in serving_runs(test) if r.get("saturated") and r.get("offered_rps") is not None]


def offered_text(test: Test) -> str:
    """'40% of 12.3 req/s = 4.92 req/s', 'all at once' or '' for a test that is not serving."""
    extra = (test.get("result") or {}).get("extra") or {}
    load = extra.get("serving_load")
    if load:
        return f"{load['load']:.0%} of {load['capacity_rps']:.3g} req/s = {load['rate_rps']:.3g} req/s"
    runs = serving_runs(test)
    if not runs or "offered_rps" not in runs[0]:  # not serving, or written before runs said
        return ""
    rate = runs[0]["offered_rps"]
    return "all at once" if rate is None else f"{rate:.3g} req/s"


def saturation_lines(tests: Sequence[Test]) -> List[str]:
    """One line per serving test that could not keep up with its offered load in some run."""
    lines = []
    for t in tests:
        why = saturated_runs(t)
        if why:
            lines.append(f"serving SATURATED in {len(why)} of {len(serving_runs(t))} runs at {offered_text(t)}: "
                         f"{short_id(t['test_id'])}: {why[0]} (its figures follow the backlog, not the service)")
    return lines


def related_slowdowns(tests: Sequence[Test]) -> List[str]:
    """Steps and operators of this run that got slower (the rule of ``outcome.related_regressions``)."""
    return related_regressions({t["test_id"]: TestOutcome.from_dict(t) for t in tests})


# -- the study's generation matrix: precision x batch size, per workload, eager and graph ---------

Cell = Dict[str, Any]


def generation_matrix(tests: Sequence[Test]) -> Dict[str, Dict[str, Dict[int, Dict[str, Cell]]]]:
    """workload -> precision -> batch size -> execution mode -> cell: tokens/s and e2e medians with
    their change vs baseline, and the test itself (``cell['test']``)."""
    table: Dict[str, Dict[str, Dict[int, Dict[str, Cell]]]] = {}
    for t in tests:
        if test_kind(t) != "generation" or not t.get("result"):
            continue
        workload = t["result"]["workload"]
        cell: Cell = {"test": t}
        for metric in ("tokens_per_s", "e2e_s"):
            cell[metric] = sample_median(t, metric)
            v = verdict_of(t, metric)
            cell[f"{metric}_change"] = v.get("change") if v else None
        name = (workload.get("prompt_ids") or ["?"])[0]
        row = table.setdefault(name, {}).setdefault(workload["precision"], {})
        row.setdefault(int(workload["batch_size"]), {})[execution_mode(t)] = cell
    return table


def row_modes(row: Mapping[int, Mapping[str, Cell]]) -> List[str]:
    """The execution modes that ran in one precision's row, eager first."""
    return mode_order([m for cells in row.values() for m in cells])


def has_decode(by_precision: Mapping[str, Mapping[int, Mapping[str, Cell]]]) -> bool:
    """Whether any result of a workload's table carries the decode roofline fractions."""
    return any(has_decode_fraction(c["test"]) for row in by_precision.values() for cells in row.values()
               for c in cells.values())


def speedup(cells: Optional[Mapping[str, Cell]]) -> Optional[float]:
    """Graph over eager tokens/s of one cell, where both ran in this run."""
    if not cells or EAGER not in cells or GRAPH not in cells:
        return None
    eager, graph = cells[EAGER].get("tokens_per_s"), cells[GRAPH].get("tokens_per_s")
    return graph / eager if eager and graph is not None else None


def speedup_text(cells: Optional[Mapping[str, Cell]]) -> str:
    ratio = speedup(cells)
    return "-" if ratio is None else f"{ratio:.2f}x"


def change_text(change: Optional[float]) -> str:
    return "" if change is None else f"{change * 100:+.1f}%"


def matrix_cell(cell: Optional[Cell], metric: str) -> str:
    """'18.23 (+1.2%)': the median in the metric's unit and the change vs the baseline, if any."""
    if not cell or cell.get(metric) is None:
        return "-"
    value = format_value(METRICS[metric], cell[metric])
    change = change_text(cell.get(f"{metric}_change"))
    return f"{value} ({change})" if change else value


def matrix_title(by_precision: Mapping[str, Mapping[int, Mapping[str, Cell]]]) -> str:
    """What a workload's table shows, beyond tokens/s and e2e."""
    modes = {m for row in by_precision.values() for m in row_modes(row)}
    notes = ["change vs baseline"]
    if {EAGER, GRAPH} <= modes:
        notes.append("graph/eager: tokens/s speedup")
    if has_decode(by_precision):
        notes.append("decode: fraction of the calibrated copy bandwidth and of the published HBM peak")
    return "output tokens/s and e2e latency (" + "; ".join(notes) + ")"


def _aligned(rows: List[List[str]], left: int = 1) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = "  ".join(f"{{:{'<' if i < left else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*r).rstrip() for r in rows]


def matrix_lines(tests: Sequence[Test]) -> List[str]:
    """One table per workload as the study printed them: rows precision (tokens/s, e2e), columns
    batch; a graph row under each eager one, and the graph/eager speedup where both ran."""
    lines: List[str] = []
    for name, by_precision in generation_matrix(tests).items():
        batches = sorted({b for row in by_precision.values() for b in row})
        decode = has_decode(by_precision)
        rows = [["precision", ""] + [f"bs{b}" for b in batches]]
        for precision, row in by_precision.items():
            modes = row_modes(row)
            for mode in modes:
                cells = [row.get(b, {}).get(mode) for b in batches]
                rows.append([row_label(precision, mode), "tok/s"] + [matrix_cell(c, "tokens_per_s") for c in cells])
                rows.append(["", "e2e"] + [matrix_cell(c, "e2e_s") for c in cells])
                if decode:
                    rows.append(["", "decode"] + [decode_text(c["test"]) if c else "-" for c in cells])
            if {EAGER, GRAPH} <= set(modes):
                rows.append(["", "graph/eager"] + [speedup_text(row.get(b)) for b in batches])
        lines.append(f"generation {name}: {matrix_title(by_precision)}")
        lines += ["  " + line for line in _aligned(rows, left=2)]
    return lines


def graph_rows(tests: Sequence[Test]) -> List[List[str]]:
    """One row per graph-mode test (GRAPH_COLUMNS)."""
    return [graph_row(t, short_id(t["test_id"]), change_text((verdict_of(t, "compile_s") or {}).get("change")))
            for t in graph_tests(tests)]


def graph_lines(tests: Sequence[Test]) -> List[str]:
    """The graph section: backend, compile time, graph count, static cache length, agreement with eager."""
    rows = graph_rows(tests)
    if not rows:
        return []
    title = (f"graph mode: {len(rows)} tests: backend, compile time (change vs baseline), graphs compiled, "
             "static KV cache length, agreement with eager (logits cosine, max |diff|, greedy tokens)")
    return [title] + ["  " + line for line in _aligned([list(GRAPH_COLUMNS)] + rows, left=2)]


# -- terminal summary ------------------------------------------------------------------------------

def _status_of(test: Test, name: str) -> str:
    verdict = verdict_of(test, name)
    comparison = test.get("comparison")
    status = verdict["status"] if verdict else (comparison["status"] if comparison else "-")
    if verdict and status == REGRESSED and comparison["status"] == UNCONFIRMED:
        status = UNCONFIRMED  # the fresh process did not reproduce it
    if verdict and not verdict.get("gated", METRICS[name].gated):
        status = f"({status})"
    return status


def bounds_cell(v: Optional[Mapping[str, Any]]) -> str:
    """'[-0.8%, +2.1%]': the one-sided bounds of the worse-direction change (deterministic
    metrics: their change alone)."""
    if not v or v.get("high") is None or v.get("low") is None:
        return "-"
    if v.get("level") is None:
        return f"{v['high'] * 100:+.1f}%"
    return f"[{v['low'] * 100:+.1f}%, {v['high'] * 100:+.1f}%]"


def metric_rows(test: Test) -> List[List[str]]:
    """[metric, median, spread, baseline, change, worse-direction bounds, budget, verdict] per
    measured metric of a test."""
    rows = []
    for name in SUMMARY_METRICS:
        values = sample_values(test, name)
        if not values or name not in METRICS:  # a metric this version does not know
            continue
        metric, v = METRICS[name], verdict_of(test, name)
        rows.append([
            name,
            format_value(metric, median(values)),
            f"±{robust_cv(values) * 100:.1f}%",
            format_value(metric, v["baseline_median"]) if v else "-",
            change_text(v["change"]) if v and v.get("change") is not None else "-",
            bounds_cell(v),
            (f"{v['budget'] * 100:.1f}%" + (" (no process noise)" if NO_PROCESS_NOISE in v.get("note", "") else ""))
            if v and v.get("budget") is not None else "-",
            _status_of(test, name),
        ])
    return rows


def table_lines(tests: Sequence[Test]) -> List[str]:
    """The full table: one row per test and metric; spread is 1.4826*MAD/median of the samples."""
    rows: List[List[str]] = []
    notes: List[str] = []
    for t in tests:
        sid = short_id(t["test_id"])
        if t.get("error"):
            rows.append([sid, "-", "-", "-", "-", "-", "-", "-", "ERROR"])
            notes.append(f"{sid}: {t['error']}")
            continue
        for i, row in enumerate(metric_rows(t)):
            rows.append([sid if i == 0 else ""] + row)
        comparison = t.get("comparison") or {}
        if comparison.get("mismatch"):
            notes.append(f"{sid}: MISMATCH " + "; ".join(comparison["mismatch"]))
        notes += [f"{sid}: budget {failure}" for failure in t.get("budget_failures", [])]
    if not rows:
        return []
    return _aligned([list(_COLUMNS)] + rows, left=2) + notes


def summary_lines(outcomes: List[TestOutcome]) -> List[str]:
    """The full table of these outcomes and the verdict counts (``python -m pytest_npuperf compare``)."""
    tests = [o.to_dict() for o in outcomes]
    lines = table_lines(tests)
    if lines:
        lines.append("verdicts: " + counts_text(verdict_counts(tests)))
    return lines


def _header_line(doc: Mapping[str, Any]) -> str:
    run = doc.get("run", {})
    tests = doc.get("tests", [])
    listed = needs_attention(tests)
    where = f"{run.get('device')} ({run.get('device_name')})" if run.get("device") else "no device"
    settings = run.get("settings") or {}
    preset = f", preset {settings['preset']}" if settings.get("preset") else ""
    if settings.get("preset") == "quick" and not settings.get("preset_given") and run.get("device") == "cpu":
        preset += " (the default on a CPU; the full study: --npuperf-preset full)"
    state = f"{len(listed)} need attention" if listed else "nothing needs attention"
    return f"npuperf: {len(tests)} tests on {where}, model {run.get('model')}{preset}: {state}"


def terminal_summary(doc: Mapping[str, Any], mode: str = "attention") -> List[str]:
    """The run's summary: header, what needs attention (verdict word first), the verdict counts,
    one line per kind of test (graph mode apart), the study's generation matrix (eager and graph), the
    graph tests' compilation and agreement; ``mode='full'`` adds every metric row."""
    tests = doc.get("tests", [])
    if not tests:
        return []
    lines = [_header_line(doc)]
    wall = wall_time_text(doc.get("run", {}))
    if wall:
        lines.append(wall)
    related = related_slowdowns(tests)
    for word, t in needs_attention(tests):
        lines.append(f"{word} {short_id(t['test_id'])} ({test_kind(t)}): {t['test_id']}")
        rows = metric_rows(t)
        if rows:
            lines += ["    " + line for line in _aligned([list(_COLUMNS[1:])] + rows)]
        lines += [f"    {detail}" for detail in attention_details(t)]
        if word == REGRESSED and test_kind(t) in ("generation", "serving") and related:
            lines.append("    steps and operators that got slower in this run: " + "; ".join(related))
    lines.append("verdicts: " + counts_text(verdict_counts(tests)))
    for kind, group in by_kind_and_mode(tests).items():
        lines.append(f"{kind}: {len(group)} tests: {counts_text(verdict_counts(group))}")
    lines += saturation_lines(tests)
    lines += matrix_lines(tests)
    lines += graph_lines(tests)
    if mode == "full":
        lines += table_lines(tests)
    return lines


def results_document(
    header: Dict[str, Any], outcomes: Iterable[TestOutcome]
) -> Dict[str, Any]:
    """Everything of the run, raw samples included, for later comparison and plots."""
    return {
        "schema_version": 1,
        "run": header,
        "tests": [o.to_dict() for o in outcomes],
    }
