"""One self-contained, offline HTML report (no CDN, no script): charts are inline PNG or SVG.

Top: the run header, the verdict counts and what needs attention (failure detail, the steps and
operators that got slower, stack changes, a samples plot each). Then one collapsible section per
kind of test with only the columns that apply to it, and the history of each test's headline
metric across the baselines recorded in the store. Tables fit a 1400 px window.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import BaselineError
from ..judge.compare import describe
from ..judge.metrics import METRICS, format_value
from ..judge.stats import Verdict
from ..modes import EAGER, GRAPH
from ..stack.changes import NESTED, stack_changes
from ..store.baselines import BaselineEntry, BaselineStore
from .attribution import attribution_html
from .modes import GRAPH_COLUMNS, decode_text, execution_mode, graph_tolerance, row_label, wall_time_text
from .terminal import (
    attention_details,
    by_kind,
    change_text,
    generation_matrix,
    graph_rows,
    has_decode,
    matrix_title,
    needs_attention,
    offered_text,
    related_slowdowns,
    row_modes,
    sample_median,
    sample_values,
    saturated_runs,
    serving_runs,
    short_id,
    speedup_text,
    test_kind,
    verdict_counts,
    verdict_of,
)

_COLORS = {"REGRESSED": "#c62828", "MISMATCH": "#6a1b9a", "ERROR": "#6a1b9a", "FAILED": "#6a1b9a",
           "INCONCLUSIVE": "#ef6c00", "DRIFT": "#f9a825", "IMPROVED": "#2e7d32", "OK": "#37474f",
           "NO_BASELINE": "#78909c", "UNCONFIRMED": "#8d6e63"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1em 1.5em;color:#222;max-width:1360px}
h1{font-size:1.4em;margin:0.2em 0}h2{font-size:1.15em;margin:1em 0 0.4em;border-bottom:1px solid #ccc}
h3{font-size:1em;margin:0.8em 0 0.3em}
table{border-collapse:collapse;font-size:0.82em;max-width:100%}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l{text-align:left;font-family:monospace;overflow-wrap:anywhere}
.tag{color:#fff;border-radius:3px;padding:1px 5px;font-size:0.85em;font-weight:600}
.counts .tag{margin-right:6px}small{color:#555}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0}
figcaption{font-size:0.72em;font-family:monospace;max-width:420px;overflow-wrap:anywhere}
img,svg{max-width:100%;height:auto}
dl{display:grid;grid-template-columns:max-content auto max-content auto max-content auto;gap:1px 10px;
   font-size:0.8em;margin:0.3em 0}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
ol.attention{padding-left:1.2em;margin:0.3em 0}ol.attention li{margin-bottom:0.8em}
ol.attention .grid{align-items:flex-start;flex-wrap:nowrap}
ol.attention pre{flex:1 1 auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:0.8em;margin:0.2em 0;
   background:#fafafa;padding:0.3em}
details{margin:0.4em 0;border:1px solid #e0e0e0;border-radius:4px;padding:0.2em 0.6em}
summary{font-weight:600;cursor:pointer;padding:0.2em 0}
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _tag(status: str) -> str:
    return f'<span class="tag" style="background:{_COLORS.get(status, "#000")}">{html.escape(status)}</span>'


def _esc(value: Any) -> str:
    return html.escape(str(value))


# The metric each kind of test is judged by first, with its chart label and scale.
HEADLINE = {"generation": ("tokens_per_s", "tokens/s", 1.0), "steps": ("time_s", "time ms", 1e3),
            "operators": ("time_s", "time ms", 1e3), "serving": ("serving_tpot_p50_s", "TPOT p50 ms", 1e3)}
_SAMPLE_METRIC = {"generation": ("e2e_s", "e2e ms", 1e3)}
MAX_SAMPLE_PLOTS = 40


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
    settings = run.get("settings") or {}
    items = [("device", f"{run.get('device')} ({run.get('device_name')})"), ("profile", run.get("profile")),
             ("model", run.get("model")), ("preset", settings.get("preset")), ("started", run.get("started_at"))]
    wall = wall_time_text(run)
    if wall:
        items.append(("wall time", wall[len("wall time: "):]))
    items += [(k, stack.get(k)) for k in ("torch", "torch_npu", "cann_version", "driver_version", "firmware_version",
                                          "transformers", "python", "cpu_model", "torch_threads")]
    env = stack.get("env") or {}
    if env:
        items.append(("environment", ", ".join(f"{k}={v}" for k, v in env.items())))
    rows = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v if v is not None else 'unknown')}</dd>" for k, v in items)
    return f"<dl>{rows}</dl>"


# -- top: counts and attention ---------------------------------------------------------------------

def _sample_plot(test: Mapping[str, Any], entries: Mapping[str, BaselineEntry], word: str) -> str:
    import matplotlib.pyplot as plt

    kind = test_kind(test)
    metric, label, scale = _SAMPLE_METRIC.get(kind) or HEADLINE.get(kind, HEADLINE["steps"])
    now = sample_values(test, metric)
    if not now:
        return ""
    base = entries[test["test_id"]].values(metric) if test["test_id"] in entries else []
    fig, ax = plt.subplots(figsize=(2.6, 1.5))
    if base:
        ax.scatter([0] * len(base), [x * scale for x in base], s=12, color="#90a4ae")
    ax.scatter([1] * len(now), [x * scale for x in now], s=12, color=_COLORS.get(word, "#37474f"))
    ax.set_xticks([0, 1], ["baseline", "now"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylabel(label, fontsize=7)
    ax.tick_params(labelsize=7)
    return _png(fig)


def _attention(tests: Sequence[Mapping[str, Any]], entries: Mapping[str, BaselineEntry]) -> str:
    listed = needs_attention(tests)
    counts = "".join(f"{_tag(k)}{v} " for k, v in verdict_counts(tests).items())
    out = [f'<p class="counts">{counts}</p>']
    if not listed:
        return "".join(out) + "<p>Nothing needs attention.</p>"
    related = related_slowdowns(tests)
    items = []
    for i, (word, t) in enumerate(listed):
        lines = [describe(METRICS[v["metric"]], Verdict.from_dict(v))
                 for v in (t.get("comparison") or {}).get("verdicts", []) if v["status"] not in ("OK", "NO_BASELINE")]
        lines += attention_details(t)
        if word == "REGRESSED" and test_kind(t) in ("generation", "serving") and related:
            lines.append("steps and operators that got slower in this run: " + "; ".join(related))
        plot = _sample_plot(t, entries, word) if i < MAX_SAMPLE_PLOTS else ""
        items.append(
            f'<li>{_tag(word)} <code>{_esc(short_id(t["test_id"]))}</code> <small>{_esc(test_kind(t))}: '
            f'{_esc(t["test_id"])}</small><div class="grid"><pre>{_esc(chr(10).join(lines))}</pre>{plot}</div></li>'
        )
    more = (f"<p><small>Sample plots of the first {MAX_SAMPLE_PLOTS} only.</small></p>"
            if len(listed) > MAX_SAMPLE_PLOTS else "")
    return "".join(out) + f'<ol class="attention" id="attention">{"".join(items)}</ol>{more}'


# -- one section per kind --------------------------------------------------------------------------

def _value(test: Mapping[str, Any], metric: str) -> str:
    return format_value(METRICS[metric], sample_median(test, metric))


def _change_cell(test: Mapping[str, Any], metric: str) -> str:
    v = verdict_of(test, metric)
    if not v or v.get("change") is None:
        return "<td>-</td>"
    if not v.get("gated", METRICS[metric].gated):  # reported only: it decides nothing, so no verdict colour
        return f'<td title="reported, not gated">({change_text(v["change"])})</td>'
    style = f' style="color:{_COLORS.get(v["status"], "#000")}"' if v["status"] != "OK" else ""
    return f"<td{style}>{change_text(v['change'])}</td>"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    return "<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _row_start(test: Mapping[str, Any]) -> str:
    return f'<tr><td class="l">{_esc(short_id(test["test_id"]))}</td><td>{_tag(test["status"])}</td>'


def _kernel_table(tests: Sequence[Mapping[str, Any]]) -> str:
    """Steps and operators: time, what it achieved, and the fraction of the calibrated roofline."""
    rows = []
    for t in tests:
        extra = (t.get("result") or {}).get("extra", {})
        flops = extra.get("fraction_of_calibrated_tflops")
        bandwidth = extra.get("fraction_of_calibrated_bandwidth")
        bound = "compute" if (flops or 0) >= (bandwidth or 0) else "memory"
        roofline = f"{max(flops or 0, bandwidth or 0):.0%} {bound}" if (flops or bandwidth) else "-"
        rows.append(_row_start(t) + f"<td>{_value(t, 'time_s')}</td>{_change_cell(t, 'time_s')}"
                    f"<td>{_value(t, 'achieved_tflops')}</td><td>{_value(t, 'achieved_gb_s')}</td><td>{roofline}</td></tr>")
    return _table(("test", "verdict", "time", "Δ", "TFLOP/s", "GB/s", "of calibrated roofline"), rows)


def _run_percentile(test: Mapping[str, Any], key: str) -> str:
    runs = serving_runs(test)
    values = [r[key] for r in runs if r.get(key) is not None]
    return format_value(METRICS["serving_ttft_p50_s"], statistics.median(values)) if values else "-"


def _saturation_cell(test: Mapping[str, Any]) -> str:
    why = saturated_runs(test)
    if not why:
        offered = offered_text(test)
        return "<td>-</td>" if not offered else "<td>by design</td>" if offered == "all at once" else \
            f"<td>0 of {len(serving_runs(test))}</td>"
    colour = _COLORS["REGRESSED"]
    return f'<td style="color:{colour}" title="{html.escape(why[0])}">{len(why)} of {len(serving_runs(test))}</td>'


def _serving_table(tests: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for t in tests:
        rows.append(_row_start(t)
                    + f"<td>{_value(t, 'serving_ttft_p50_s')}</td>{_change_cell(t, 'serving_ttft_p50_s')}"
                    + f"<td>{_run_percentile(t, 'ttft_s_p90')}</td><td>{_run_percentile(t, 'ttft_s_p99')}</td>"
                    + f"<td>{_value(t, 'serving_tpot_p50_s')}</td>{_change_cell(t, 'serving_tpot_p50_s')}"
                    + f"<td>{_run_percentile(t, 'tpot_s_p90')}</td>"
                    + f"<td>{_value(t, 'serving_tokens_per_s')}</td>{_change_cell(t, 'serving_tokens_per_s')}"
                    + f"<td>{_value(t, 'goodput_rps')}</td>{_change_cell(t, 'goodput_rps')}"
                    + f"<td>{html.escape(offered_text(t) or '-')}</td>{_saturation_cell(t)}</tr>")
    head = ("test", "verdict", "TTFT p50", "Δ", "TTFT p90", "TTFT p99", "TPOT p50", "Δ", "TPOT p90",
            "tokens/s", "Δ", "goodput req/s", "Δ", "offered load", "saturated runs")
    return _table(head, rows)


def _study_cell(cell: Optional[Mapping[str, Any]], decode: bool) -> str:
    if not cell:
        return "<td>-</td>"
    test = cell["test"]
    parts = []
    for metric in ("tokens_per_s", "e2e_s"):
        v = verdict_of(test, metric)
        base = f" <small>base {format_value(METRICS[metric], v['baseline_median'])}</small>" if v and v.get(
            "baseline_median") is not None else ""
        change = cell.get(f"{metric}_change")
        colour = _COLORS.get(v["status"], "#000") if v and v["status"] != "OK" else "#222"
        unit = " tok/s" if metric == "tokens_per_s" else ""
        parts.append(f"{format_value(METRICS[metric], cell[metric])}{unit}{base}"
                     + (f' <span style="color:{colour}">{change_text(change)}</span>' if change is not None else ""))
    if decode:
        parts.append(f"<small>decode {_esc(decode_text(test))}</small>")
    return f"<td>{'<br>'.join(parts)}</td>"


def _generation(tests: Sequence[Mapping[str, Any]]) -> str:
    """The study's tables: per workload, precision x batch size, tokens/s and e2e with baseline and
    change; a graph row under each eager one and the graph/eager speedup where both ran."""
    out = []
    for name, by_precision in generation_matrix(tests).items():
        batches = sorted({b for row in by_precision.values() for b in row})
        decode = has_decode(by_precision)
        rows = []
        for p, row in by_precision.items():
            modes = row_modes(row)
            rows += [f'<tr><td class="l">{_esc(row_label(p, m))}</td>'
                     + "".join(_study_cell(row.get(b, {}).get(m), decode) for b in batches) + "</tr>" for m in modes]
            if {EAGER, GRAPH} <= set(modes):
                rows.append(f'<tr><td class="l">{_esc(p)} graph/eager</td>'
                            + "".join(f"<td>{speedup_text(row.get(b))}</td>" for b in batches) + "</tr>")
        out.append(f"<h3>{_esc(name)}</h3><p><small>{_esc(matrix_title(by_precision))}</small></p>"
                   + _table(["precision"] + [f"bs{b}" for b in batches], rows))
    return "".join(out) + _scaling(tests)


def _scaling(tests: Sequence[Mapping[str, Any]]) -> str:
    """Tokens/s and e2e against batch size, one line per workload, one chart per precision."""
    import matplotlib.pyplot as plt

    matrix = generation_matrix(tests)
    by_precision: Dict[str, Dict[str, Dict[int, Mapping[str, Any]]]] = defaultdict(dict)
    for name, rows in matrix.items():
        for precision, row in rows.items():
            for mode in row_modes(row):
                cells = {b: c[mode] for b, c in row.items() if mode in c and c[mode]["tokens_per_s"] is not None}
                by_precision[precision][name if mode == EAGER else f"{name} {mode}"] = cells
    out = []
    for precision, workloads in by_precision.items():
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 2.6))
        for name, row in sorted(workloads.items()):
            batches = sorted(row)
            style = "--" if name.endswith(" graph") else "-"
            ax1.plot(batches, [row[b]["tokens_per_s"] for b in batches], style, marker="o", label=name)
            ax2.plot(batches, [row[b]["e2e_s"] * 1e3 for b in batches], style, marker="o", label=name)
        for ax, label in ((ax1, "output tokens/s"), (ax2, "e2e latency ms")):
            ax.set_xlabel("batch size")
            ax.set_ylabel(label)
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
        ax1.legend(fontsize=7)
        fig.suptitle(f"batch-size scaling, {precision}")
        out.append(_png(fig))
    return f'<div class="grid">{"".join(out)}</div>'


_SECTIONS = {"generation": _generation, "steps": _kernel_table, "operators": _kernel_table, "serving": _serving_table}


def _counts(tests: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{k} {v}" for k, v in verdict_counts(tests).items())


def _section(kind: str, tests: Sequence[Mapping[str, Any]]) -> str:
    counts = _counts(tests)
    graph = [t for t in tests if execution_mode(t) == GRAPH]
    if graph:
        counts += f"; graph mode {len(graph)}: {_counts(graph)}"
    listed = needs_attention(tests)
    render = _SECTIONS.get(kind)
    if kind != "generation":  # the tests that need attention head their table
        first = {id(t) for _, t in listed}
        tests = sorted(tests, key=lambda t: id(t) not in first)
    body = render(tests) if render else _table(("test", "verdict"), [_row_start(t) + "</tr>" for t in tests])
    opened = " open" if listed or kind == "generation" else ""
    return (f'<details id="kind-{_esc(kind)}"{opened}><summary>{_esc(kind)}: {len(tests)} tests ({_esc(counts)})'
            f"</summary>{body}</details>")


def _graph(tests: Sequence[Mapping[str, Any]]) -> str:
    """Per graph-mode test: backend, compile time, graphs, static cache length, agreement with eager."""
    rows = graph_rows(tests)
    if not rows:
        return ""
    graph = [t for t in tests if execution_mode(t) == GRAPH]
    body = ["<tr>" + "".join(f'<td class="l">{_esc(c)}</td>' if i < 2 else f"<td>{_esc(c)}</td>" for i, c in enumerate(row))
            + f'<td class="l">{_esc(graph_tolerance(t) or "-")}</td></tr>' for row, t in zip(rows, graph)]
    return (f'<details id="graph" open><summary>graph mode: {len(rows)} tests: compilation and agreement with eager'
            f"</summary>{_table(list(GRAPH_COLUMNS) + ['tolerance'], body)}</details>")


# -- history ---------------------------------------------------------------------------------------

def _svg_line(values: Sequence[float], width: int = 260, height: int = 70) -> str:
    """A small line chart from 0 to the highest value (a history read at a glance must not
    exaggerate a 2% move), no script."""
    top = max(values) * 1.1 or 1.0
    step = (width - 20) / max(len(values) - 1, 1)
    points = [(10 + i * step, height - 8 - (v / top) * (height - 16)) for i, v in enumerate(values)]
    path = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
    dots = "".join(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="3" fill="#1565c0"/>' for x, y in points)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<line x1="10" y1="{height - 8}" x2="{width - 10}" y2="{height - 8}" stroke="#bbb"/>'
            f'<polyline fill="none" stroke="#1565c0" stroke-width="2" points="{path}"/>{dots}</svg>')


def _common_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> List[str]:
    """Stack changes over the keys both recorded (an earlier baseline keeps only the main ones)."""
    common = set(before) & set(after)
    # An environment variable or a hook's field set or unset is a change.
    common |= {k for k in NESTED if k in before or k in after}
    return stack_changes({k: (before.get(k) or {}) if k in NESTED else before[k] for k in common},
                         {k: (after.get(k) or {}) if k in NESTED else after[k] for k in common})


def _history(tests: Sequence[Mapping[str, Any]], entries: Mapping[str, BaselineEntry]) -> str:
    """Per test with earlier baselines: its headline metric at each recorded stack, then now, with
    the stack change written at each step."""
    figures = []
    for t in tests:
        entry = entries.get(t["test_id"])
        kind = test_kind(t)
        if entry is None or not entry.history or kind not in HEADLINE:
            continue
        metric, label, scale = HEADLINE[kind]
        current = entry.values(metric)
        points: List[Tuple[Mapping[str, Any], Optional[float], str]] = [
            (h.get("stack") or {}, (h.get("medians") or {}).get(metric), str(h.get("recorded_at", ""))[:10])
            for h in entry.history]
        points.append((entry.stack, statistics.median(current) if current else None, entry.recorded_at[:10]))
        points.append(((t.get("result") or {}).get("stack") or {}, sample_median(t, metric), "this run"))
        points = [p for p in points if p[1] is not None]
        if len(points) < 3:
            continue
        steps = []
        for i, (stack, value, when) in enumerate(points):
            change = "; ".join(_common_changes(points[i - 1][0], stack)) if i else "first recorded"
            steps.append(f"{when}: {value * scale:.4g} — {change or 'no stack change'}")
        figures.append(f"<figure>{_svg_line([p[1] for p in points])}<figcaption>"
                       f"{_esc(short_id(t['test_id']))} {_esc(label)}<br>{'<br>'.join(_esc(s) for s in steps)}"
                       "</figcaption></figure>")
    if not figures:
        return "<p>No test has an earlier recorded baseline yet.</p>"
    return f'<div class="grid">{"".join(figures)}</div>'


def render_html(doc: Mapping[str, Any], store: Optional[BaselineStore] = None) -> str:
    """The whole report as one HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    tests = list(doc.get("tests", []))
    entries = _entries(doc, store)
    sections = "".join(_section(kind, group) for kind, group in by_kind(tests).items()) + _graph(tests)
    charts = _history(tests, entries)
    history = (f'<details id="history"{" open" if "<figure>" in charts else ""}><summary>the headline metric: '
               f"tokens/s of generation, time of steps and operators, TTFT p50 of serving</summary>{charts}</details>")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'><title>pytest-npuperf report</title>",
        f"<style>{_CSS}</style></head><body><h1>pytest-npuperf report</h1>",
        _header(doc),
        "<h2>Needs attention</h2>", _attention(tests, entries),
        *(["<h2>Which change caused it</h2>", attribution_html(doc["attribution"])] if doc.get("attribution") else []),
        "<h2>Results by kind of test</h2>", sections,
        "<h2>History across recorded stacks</h2>", history,
        "</body></html>",
    ]
    return "\n".join(parts)
