"""One self-contained, offline HTML report (no CDN, no script): charts are inline PNGs.

Sections: the run header (device, model, stack), the verdict table, per-test samples now vs
baseline, batch-size scaling per precision, a precision comparison, and each test's history
across the stacks recorded in the baseline store.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .baseline import BaselineEntry, BaselineError, BaselineStore
from .metrics import METRICS, format_value
from .report import short_id

_COLORS = {"REGRESSED": "#c62828", "MISMATCH": "#6a1b9a", "ERROR": "#6a1b9a", "INCONCLUSIVE": "#ef6c00",
           "DRIFT": "#f9a825", "IMPROVED": "#2e7d32", "OK": "#37474f", "NO_BASELINE": "#78909c",
           "UNCONFIRMED": "#8d6e63"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td.l{text-align:left;font-family:monospace}.tag{color:#fff;border-radius:3px;padding:1px 5px}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0}figcaption{font-size:0.75em;font-family:monospace}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:0.9em}dt{font-weight:600}
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _values(test: Mapping[str, Any], metric: str) -> List[float]:
    result = test.get("result") or {}
    return [s[metric] for s in result.get("samples", []) if s.get(metric) is not None]


PRIMARY = (("e2e_s", "e2e ms", 1e3), ("time_s", "time ms", 1e3), ("serving_ttft_p50_s", "TTFT p50 ms", 1e3))


def _primary(test: Mapping[str, Any]) -> Any:
    """The metric a test is judged by first: e2e (generation), time (steps, ops), TTFT (serving)."""
    for name, label, scale in PRIMARY:
        if _values(test, name):
            return name, label, scale
    return None


def _is_generation(test: Mapping[str, Any]) -> bool:
    return bool(_values(test, "tokens_per_s")) and bool(_values(test, "e2e_s"))


def _workload_name(test: Mapping[str, Any]) -> str:
    return test["result"]["workload"]["prompt_ids"][0]


def _entries(doc: Mapping[str, Any], store: Optional[BaselineStore]) -> Dict[str, BaselineEntry]:
    run = doc.get("run", {})
    if store is None or not run.get("profile"):
        return {}
    try:
        return store.load(run["profile"], run.get("model", ""))
    except BaselineError:
        return {}


def _header(doc: Mapping[str, Any]) -> str:
    run = doc.get("run", {})
    stack = run.get("stack", {})
    items = [("device", f"{run.get('device')} ({run.get('device_name')})"), ("profile", run.get("profile")),
             ("model", run.get("model")), ("started", run.get("started_at"))]
    items += [(k, stack.get(k)) for k in ("torch", "torch_npu", "cann_version", "driver_version", "firmware_version",
                                          "transformers", "python", "cpu_model", "torch_threads")]
    env = stack.get("env") or {}
    if env:
        items.append(("environment", ", ".join(f"{k}={v}" for k, v in env.items())))
    rows = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v if v is not None else 'unknown'))}</dd>"
                   for k, v in items)
    return f"<dl>{rows}</dl>"


def _table(tests: Sequence[Mapping[str, Any]]) -> str:
    metrics = [m for m in ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes", "peak_rss_bytes",
                           "fidelity_kl", "time_s", "achieved_gb_s", "serving_ttft_p50_s", "serving_tokens_per_s",
                           "goodput_rps") if any(_values(t, m) for t in tests)]
    head = "<tr><th>test</th><th>verdict</th>" + "".join(f"<th>{m}</th><th>Δ</th>" for m in metrics) + "</tr>"
    rows = []
    for t in tests:
        verdicts = {v["metric"]: v for v in (t.get("comparison") or {}).get("verdicts", [])}
        cells = []
        for m in metrics:
            vals = _values(t, m)
            v = verdicts.get(m)
            cells.append(f"<td>{format_value(METRICS[m], statistics.median(vals)) if vals else '-'}</td>")
            style = f' style="color:{_COLORS.get(v["status"], "#000")}"' if v and v["status"] != "OK" else ""
            cells.append(f"<td{style}>{v['change'] * 100:+.1f}%</td>" if v and v.get("change") is not None else "<td>-</td>")
        status = t["status"]
        tag = f'<span class="tag" style="background:{_COLORS.get(status, "#000")}">{status}</span>'
        rows.append(f'<tr><td class="l">{html.escape(short_id(t["test_id"]))}</td><td>{tag}</td>{"".join(cells)}</tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def _sample_plots(tests: Sequence[Mapping[str, Any]], entries: Mapping[str, BaselineEntry]) -> str:
    import matplotlib.pyplot as plt

    figures = []
    for t in tests:
        primary = _primary(t)
        if primary is None:
            continue
        metric, label, scale = primary
        now = _values(t, metric)
        base = entries[t["test_id"]].values(metric) if t["test_id"] in entries else []
        fig, ax = plt.subplots(figsize=(2.6, 1.5))
        if base:
            ax.scatter([0] * len(base), [x * scale for x in base], s=12, color="#90a4ae", label="baseline")
        ax.scatter([1] * len(now), [x * scale for x in now], s=12, color=_COLORS.get(t["status"], "#37474f"), label="now")
        ax.set_xticks([0, 1], ["baseline", "now"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel(label, fontsize=7)
        ax.tick_params(labelsize=7)
        figures.append(f"<figure>{_png(fig)}<figcaption>{html.escape(short_id(t['test_id']))} {t['status']}"
                       "</figcaption></figure>")
    return f'<div class="grid">{"".join(figures)}</div>'


_NO_GENERATION = "<p>No generation tests in this run (this chart compares generation tests only).</p>"


def _scaling(tests: Sequence[Mapping[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    by_precision: Dict[str, Dict[str, Dict[int, Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for t in tests:
        if _is_generation(t):
            w = t["result"]["workload"]
            by_precision[w["precision"]][_workload_name(t)][w["batch_size"]] = t
    out = []
    for precision, workloads in by_precision.items():
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
        for name, by_batch in sorted(workloads.items()):
            batches = sorted(by_batch)
            ax1.plot(batches, [statistics.median(_values(by_batch[b], "tokens_per_s")) for b in batches], marker="o", label=name)
            ax2.plot(batches, [statistics.median(_values(by_batch[b], "e2e_s")) * 1e3 for b in batches], marker="o", label=name)
        for ax, label in ((ax1, "output tokens/s"), (ax2, "e2e latency ms")):
            ax.set_xlabel("batch size")
            ax.set_ylabel(label)
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
        ax1.legend(fontsize=7)
        fig.suptitle(f"batch-size scaling, {precision}")
        out.append(_png(fig))
    return "".join(out) or _NO_GENERATION


def _precisions(tests: Sequence[Mapping[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    table: Dict[int, Dict[str, List[float]]] = defaultdict(lambda: defaultdict(list))
    for t in tests:
        if _is_generation(t):
            w = t["result"]["workload"]
            table[w["batch_size"]][w["precision"]].append(statistics.median(_values(t, "tokens_per_s")))
    if not table:
        return _NO_GENERATION
    precisions = sorted({p for row in table.values() for p in row})
    batches = sorted(table)
    fig, ax = plt.subplots(figsize=(9, 3))
    width = 0.8 / max(len(precisions), 1)
    for i, p in enumerate(precisions):
        ax.bar([b + (i - (len(precisions) - 1) / 2) * width for b in range(len(batches))],
               [statistics.mean(table[b][p]) if table[b][p] else 0 for b in batches], width, label=p)
    ax.set_xticks(range(len(batches)), [f"bs{b}" for b in batches])
    ax.set_ylabel("output tokens/s (mean over workloads)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _history(tests: Sequence[Mapping[str, Any]], entries: Mapping[str, BaselineEntry]) -> str:
    import matplotlib.pyplot as plt

    figures = []
    for t in tests:
        entry = entries.get(t["test_id"])
        if entry is None or not _is_generation(t):
            continue
        points = [(h.get("stack", {}), h.get("medians", {}).get("tokens_per_s"), h.get("recorded_at", "")) for h in entry.history]
        tps = entry.values("tokens_per_s")
        points.append((entry.stack, statistics.median(tps) if tps else None, entry.recorded_at))
        now = _values(t, "tokens_per_s")
        points.append((((t.get("result") or {}).get("stack")) or {}, statistics.median(now) if now else None, "this run"))
        points = [p for p in points if p[1] is not None]
        if len(points) < 3:  # only the baseline and this run: the sample plot says it already
            continue
        labels = [f"{s.get('cann_version') or s.get('torch_npu') or s.get('torch') or '?'}\n{str(when)[:10]}" for s, _, when in points]
        fig, ax = plt.subplots(figsize=(4.5, 2))
        ax.plot(range(len(points)), [p[1] for p in points], marker="o")
        ax.set_ylim(bottom=0)  # a history read at a glance must not exaggerate a 2% move
        ax.set_xticks(range(len(points)), labels, fontsize=6)
        ax.set_ylabel("tokens/s", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
        figures.append(f"<figure>{_png(fig)}<figcaption>{html.escape(short_id(t['test_id']))}</figcaption></figure>")
    if not figures:
        return "<p>No test has more than one recorded baseline yet.</p>"
    return f'<div class="grid">{"".join(figures)}</div>'


def render_html(doc: Mapping[str, Any], store: Optional[BaselineStore] = None) -> str:
    """The whole report as one HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    tests = [t for t in doc.get("tests", [])]
    measured = [t for t in tests if t.get("result")]
    entries = _entries(doc, store)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>pytest-npuperf report</title>",
        f"<style>{_CSS}</style></head><body><h1>pytest-npuperf report</h1>",
        _header(doc),
        "<h2>Verdicts</h2>", _table(tests),
        "<h2>Samples now vs baseline (e2e latency; time of steps and operators; TTFT under load)</h2>",
        _sample_plots(measured, entries),
        "<h2>Batch-size scaling</h2>", _scaling(measured),
        "<h2>Precisions</h2>", _precisions(measured),
        "<h2>History across recorded stacks (tokens/s)</h2>", _history(measured, entries),
        "</body></html>",
    ]
    return "\n".join(parts)
