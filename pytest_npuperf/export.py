"""Exports of a results document: a Markdown summary for CI job pages and pytest-benchmark JSON.

Both take the results document (``report.results_document``) so that they work the same from
the plugin and from ``python -m pytest_npuperf``.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from typing import Any, Dict, List, Mapping, Optional

from .metrics import METRICS, format_value
from .report import short_id

_MD_METRICS = ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes", "peak_rss_bytes")
_ICON = {"REGRESSED": "❌", "MISMATCH": "⛔", "ERROR": "⛔", "INCONCLUSIVE": "⚠️", "DRIFT": "〰️",
         "IMPROVED": "✅", "OK": "✔️", "NO_BASELINE": "➖", "UNCONFIRMED": "🔁"}


def _median(test: Mapping[str, Any], metric: str) -> Optional[float]:
    result = test.get("result") or {}
    values = [s.get(metric) for s in result.get("samples", []) if s.get(metric) is not None]
    return statistics.median(values) if values else None


def _verdict(test: Mapping[str, Any], metric: str) -> Optional[Mapping[str, Any]]:
    for v in (test.get("comparison") or {}).get("verdicts", []):
        if v["metric"] == metric:
            return v
    return None


def markdown_summary(doc: Mapping[str, Any]) -> str:
    """A GitHub-flavoured Markdown table: one row per test, median and change per metric."""
    run = doc.get("run", {})
    stack = run.get("stack", {})
    tests = doc.get("tests", [])
    counts: Dict[str, int] = {}
    for t in tests:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    lines = [
        "## pytest-npuperf",
        "",
        f"**{run.get('device', '?')}** `{run.get('device_name', '?')}` (profile `{run.get('profile', '?')}`), "
        f"model `{run.get('model', '?')}`; torch {stack.get('torch')}, torch_npu {stack.get('torch_npu')}, "
        f"CANN {stack.get('cann_version')}, driver {stack.get('driver_version')}, transformers {stack.get('transformers')}",
        "",
        "Verdicts: " + ", ".join(f"{_ICON.get(k, '')} {k} {v}" for k, v in sorted(counts.items())),
        "",
    ]
    present = [m for m in _MD_METRICS if any(_median(t, m) is not None for t in tests)]
    lines.append("| test | verdict | " + " | ".join(present) + " |")
    lines.append("|---|---|" + "---|" * len(present))
    for t in tests:
        cells = []
        for m in present:
            value = _median(t, m)
            v = _verdict(t, m)
            change = f" ({v['change'] * 100:+.1f}%)" if v and v.get("change") is not None else ""
            cells.append(format_value(METRICS[m], value) + change)
        lines.append(f"| `{short_id(t['test_id'])}` | {_ICON.get(t['status'], '')} {t['status']} | " + " | ".join(cells) + " |")
    failing = [t for t in tests if t["status"] in ("REGRESSED", "MISMATCH", "ERROR")]
    if failing:
        lines += ["", "### Failures", ""]
        for t in failing:
            comparison = t.get("comparison") or {}
            detail = t.get("error") or "; ".join(comparison.get("mismatch", [])) or ", ".join(
                f"{v['metric']} {v['change'] * 100:+.1f}%" + (f" (p={v['p_value']:.4f})" if v["p_value"] is not None else "")
                for v in comparison.get("verdicts", []) if v["status"] == "REGRESSED")
            lines.append(f"- `{short_id(t['test_id'])}`: {detail}")
            if comparison.get("stack_changes"):
                lines.append(f"  - stack changes: {'; '.join(comparison['stack_changes'])}")
    return "\n".join(lines) + "\n"


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
        extra = {f"{m}_median": _median(t, m) for m in METRICS if _median(t, m) is not None}
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
        },
        "commit_info": {},
        "benchmarks": benchmarks,
        "datetime": run.get("started_at") or _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "version": "5.1.0",
    }
