"""Exports of a results document: a Markdown summary for CI job pages and pytest-benchmark JSON.

Both take the results document (``report.results_document``) so that they work the same from
the plugin and from ``python -m pytest_npuperf``.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from typing import Any, Dict, List, Mapping

from ..judge.compare import describe
from ..judge.metrics import METRICS
from ..judge.stats import Verdict
from ..modes import EAGER, GRAPH
from .modes import GRAPH_COLUMNS, decode_text, graph_tests, graph_tolerance, row_label, wall_time_text
from .terminal import (
    attention_details,
    by_kind_and_mode,
    generation_matrix,
    graph_rows,
    has_decode,
    matrix_cell,
    matrix_title,
    needs_attention,
    related_slowdowns,
    row_modes,
    sample_median,
    short_id,
    speedup_text,
    test_kind,
    verdict_counts,
)

_ICON = {"REGRESSED": "❌", "MISMATCH": "⛔", "ERROR": "⛔", "FAILED": "⛔", "INCONCLUSIVE": "⚠️", "DRIFT": "〰️",
         "IMPROVED": "✅", "OK": "✔️", "NO_BASELINE": "➖", "UNCONFIRMED": "🔁"}


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{_ICON.get(k, '')} {k} {v}" for k, v in counts.items())


def markdown_summary(doc: Mapping[str, Any]) -> str:
    """GitHub-flavoured Markdown in the terminal summary's order: what needs attention (with the
    failure detail and stack changes), the verdict counts per kind of test, the study's tables."""
    run = doc.get("run", {})
    stack = run.get("stack", {})
    tests = doc.get("tests", [])
    preset = (run.get("settings") or {}).get("preset")
    lines = [
        "## pytest-npuperf",
        "",
        f"**{run.get('device', '?')}** `{run.get('device_name', '?')}` (profile `{run.get('profile', '?')}`), "
        f"model `{run.get('model', '?')}`" + (f", preset {preset}" if preset else "")
        + f"; torch {stack.get('torch')}, torch_npu {stack.get('torch_npu')}, "
        f"CANN {stack.get('cann_version')}, driver {stack.get('driver_version')}, transformers {stack.get('transformers')}",
        "",
    ]
    wall = wall_time_text(run)
    if wall:
        lines += [wall[0].upper() + wall[1:], ""]
    listed = needs_attention(tests)
    if listed:
        lines += ["### Needs attention", ""]
        related = related_slowdowns(tests)
        for word, t in listed:
            lines.append(f"- {_ICON.get(word, '')} **{word}** `{short_id(t['test_id'])}` ({test_kind(t)})")
            detail = [describe(METRICS[v["metric"]], Verdict.from_dict(v))
                      for v in (t.get("comparison") or {}).get("verdicts", []) if v["status"] not in ("OK", "NO_BASELINE")]
            detail += attention_details(t)
            if word == "REGRESSED" and test_kind(t) in ("generation", "serving") and related:
                detail.append("steps and operators that got slower in this run: " + "; ".join(related))
            lines += [f"  - {d}" for d in detail]
        lines.append("")
    else:
        lines += ["Nothing needs attention.", ""]
    lines += ["Verdicts: " + _counts(verdict_counts(tests)), "", "| kind | tests | verdicts |", "|---|---|---|"]
    lines += [f"| {kind} | {len(group)} | {_counts(verdict_counts(group))} |"
              for kind, group in by_kind_and_mode(tests).items()]
    for name, by_precision in generation_matrix(tests).items():
        batches = sorted({b for row in by_precision.values() for b in row})
        decode = has_decode(by_precision)
        lines += ["", f"### Generation, {name}: {matrix_title(by_precision)}", "",
                  "| precision | " + " | ".join(f"bs{b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
        for precision, row in by_precision.items():
            modes = row_modes(row)
            for mode in modes:
                cells = [_matrix_cell(row.get(b, {}).get(mode), decode) for b in batches]
                lines.append(f"| {row_label(precision, mode)} | " + " | ".join(cells) + " |")
            if {EAGER, GRAPH} <= set(modes):
                lines.append(f"| {precision} graph/eager | " + " | ".join(speedup_text(row.get(b)) for b in batches) + " |")
    lines += _graph_table(tests)
    return "\n".join(lines) + "\n"


def _matrix_cell(cell: Any, decode: bool) -> str:
    if not cell:
        return "-"
    text = f"{matrix_cell(cell, 'tokens_per_s')} tok/s<br>{matrix_cell(cell, 'e2e_s')}"
    return text + (f"<br>decode {decode_text(cell['test'])}" if decode else "")


def _graph_table(tests: List[Mapping[str, Any]]) -> List[str]:
    rows = graph_rows(tests)
    if not rows:
        return []
    columns = [c.replace("|", "\\|") for c in GRAPH_COLUMNS] + ["tolerance"]
    lines = ["", f"### Graph mode: {len(rows)} tests, compilation and agreement with eager", "",
             "| " + " | ".join(columns) + " |", "|---|---|" + "---|" * (len(columns) - 2)]
    for row, t in zip(rows, graph_tests(tests)):
        cells = [f"`{row[0]}`"] + row[1:] + [graph_tolerance(t) or "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def _quartiles(data: List[float]) -> List[float]:
    if len(data) < 2:
        return [data[0]] * 3
    return statistics.quantiles(data, n=4, method="inclusive")


def benchmark_json(doc: Mapping[str, Any], metric: str = "e2e_s") -> Dict[str, Any]:
    """The results in pytest-benchmark's JSON layout (one 'benchmark' per test, times in seconds).

    The timed quantity is ``metric`` (e2e latency of the whole generate call by default); the
    other metrics' medians and the verdict go into ``extra_info``.
    """
    run = doc.get("run", {})
    benchmarks = []
    for t in doc.get("tests", []):
        result = t.get("result")
        if not result:
            continue
        data = [s[metric] for s in result["samples"] if s.get(metric) is not None]
        if not data:
            continue
        q1, med, q3 = _quartiles(data)
        iqr = q3 - q1
        mean = statistics.mean(data)
        stddev = statistics.stdev(data) if len(data) > 1 else 0.0
        low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
        extra = {f"{m}_median": sample_median(t, m) for m in METRICS if sample_median(t, m) is not None}
        extra.update(verdict=t["status"], workload=result["workload"], profile=result["profile"])
        benchmarks.append({
            "group": result["workload"]["precision"],
            "name": t["test_id"].rsplit("::", 1)[-1],
            "fullname": t["test_id"],
            "params": None,
            "param": short_id(t["test_id"]),
            "extra_info": extra,
            "options": {"timer": run.get("timing", "npuperf"), "min_rounds": len(data), "warmup": True},
            "stats": {
                "min": min(data), "max": max(data), "mean": mean, "stddev": stddev, "rounds": len(data),
                "median": statistics.median(data), "iqr": iqr, "q1": q1, "q3": q3,
                "iqr_outliers": sum(1 for x in data if x < low or x > high),
                "stddev_outliers": sum(1 for x in data if abs(x - mean) > stddev),
                "outliers": f"{sum(1 for x in data if abs(x - mean) > stddev)};{sum(1 for x in data if x < low or x > high)}",
                "ld15iqr": min(x for x in data if x >= low), "hd15iqr": max(x for x in data if x <= high),
                "ops": 1.0 / mean if mean else 0.0, "total": sum(data), "iterations": 1, "data": data,
            },
        })
    stack = run.get("stack", {})
    return {
        "machine_info": {
            "node": stack.get("platform"), "processor": stack.get("cpu_model"), "python_version": stack.get("python"),
            "npuperf_device": run.get("device"), "npuperf_device_name": run.get("device_name"),
            "npuperf_profile": run.get("profile"), "npuperf_stack": {k: v for k, v in stack.items() if k != "env"},
            "npuperf_wall_time": run.get("wall_time") or {},
        },
        "commit_info": {},
        "benchmarks": benchmarks,
        "datetime": run.get("started_at") or _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "version": "5.1.0",
    }
