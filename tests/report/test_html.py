"""The HTML report (report/html.py): self-contained, what needs attention first, every kind of
test, graph mode; small at the full suite's size, and laid out for a 1400 px window."""

import html
import json
import os
import re
import subprocess

import pytest
from support.results import graph_doc

from pytest_npuperf.report.html import render_html

SAVE = "--npuperf-save-baseline"


def test_html_report_is_self_contained(npt):
    npt.fake()
    npt.run(SAVE, "--npuperf-reason", "first")
    npt.run(SAVE, "--npuperf-reason", "second", seed=1, TASK_QUEUE_ENABLE="2")
    result = npt.run("--npuperf-html", "report.html", seed=2, TASK_QUEUE_ENABLE="1")
    result.stdout.fnmatch_lines(["*HTML report written to *report.html"])
    text = (npt.path / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"(src|href)=['\"]?https?:", text)  # nothing loaded from the network
    assert "<script" not in text
    from pytest_npuperf.report.terminal import needs_attention

    tests = json.loads((npt.path / "results.json").read_text())["tests"]
    # Scaling charts (fp16, bf16) and one samples plot per test that needs attention, no others.
    assert text.count("data:image/png;base64,") == 2 + len(needs_attention(tests))
    # Two recorded baselines and this run: a history chart for every test, stack change at each step.
    assert text.count("<svg") == 8 and text.count("first recorded") == 8
    assert re.search(r"fp16-bs1-zh_qa tokens/s<br>\d{4}-\d\d-\d\d: [0-9.]+ — first recorded<br>"
                     r"\d{4}-\d\d-\d\d: [0-9.]+ — env TASK_QUEUE_ENABLE unknown -&gt; 2<br>"
                     r"this run: [0-9.]+ — env TASK_QUEUE_ENABLE 2 -&gt; 1</figcaption>", text)
    assert "Fake Accelerator" in text and "fp16-bs8-en_qa" in text


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _suite_doc():
    """A results document shaped like the full suite: 80 generation, 40 step, 60 operator and 12
    serving tests, with baselines, one generation test REGRESSED and one operator DRIFT."""
    from pytest_npuperf.judge.compare import Comparison
    from pytest_npuperf.judge.outcome import TestOutcome
    from pytest_npuperf.judge.result import Result, Sample, Workload
    from pytest_npuperf.judge.stats import Verdict
    from pytest_npuperf.report.terminal import results_document

    def outcome(test_id, workload, samples, status="OK", change=0.01):
        verdicts = [Verdict(m, status if i == 0 else "OK", 1.0, 1.0, change, None, 0.03, 0.004, 0.05, 5, 5)
                    for i, m in enumerate(k for k, v in samples[0].__dict__.items() if isinstance(v, float))]
        comparison = Comparison(status, verdicts, [], ["torch 2.12.0 -> 2.13.0"] if status != "OK" else [])
        result = Result(test_id, "cpu-X", workload, samples, {"torch": "2.13.0"}, "",
                        {"fraction_of_calibrated_tflops": 0.4, "fraction_of_calibrated_bandwidth": 0.7})
        return TestOutcome(test_id, result, comparison, passed=status != "REGRESSED")

    outcomes = []
    for precision in ("fp16", "bf16", "int8", "w8a8"):
        for bs in (1, 2, 4, 8):
            for name in ("zh_qa", "en_qa", "code_gen", "reasoning", "long_summary"):
                sid = f"{precision}-bs{bs}-{name}"
                gen = Sample(e2e_s=0.2 * bs ** 0.2, ttft_s=0.02, tpot_s=0.01, tokens_per_s=90.0 * bs ** 0.8,
                             peak_allocated_bytes=500 * 2 ** 20)
                regressed = sid == "bf16-bs8-en_qa"
                outcomes.append(outcome(f"perf_tests/test_generation.py::test_generate[{sid}]",
                                        Workload("tiny", "f", precision, bs, (name,) * bs, (30,) * bs, 120),
                                        [gen] * 5, "REGRESSED" if regressed else "OK", 0.3 if regressed else 0.01))
    for i in range(40):
        outcomes.append(outcome(f"perf_tests/test_steps.py::test_decode[bf16-decode-bs{i}-ctx512]",
                                Workload("tiny", "f", "bf16", 1, ("decode",), (512,), 1, kind="step-decode"),
                                [Sample(time_s=0.002, achieved_tflops=0.5, achieved_gb_s=20.0)] * 5))
    for i in range(60):
        outcomes.append(outcome(f"perf_tests/test_ops.py::test_op[bf16-attention_sdpa_prefill_{i}]",
                                Workload("tiny", "f", "bf16", 1, ("op",), (64,), 0, kind="op"),
                                [Sample(time_s=0.0003, achieved_tflops=0.2, achieved_gb_s=9.0)] * 5,
                                "DRIFT" if i == 3 else "OK"))
    for i in range(12):
        outcomes.append(outcome(f"perf_tests/test_serving.py::test_serving[bf16-continuous-rate{i}]",
                                Workload("tiny", "f", "bf16", 0, ("zh_qa",), (30,), 32, kind="serving-continuous"),
                                [Sample(serving_ttft_p50_s=0.05, serving_tpot_p50_s=0.01, serving_tokens_per_s=300.0,
                                        goodput_rps=4.0)] * 5))
    return results_document({"profile": "cpu-X", "model": "tiny", "device": "cpu", "device_name": "x86",
                             "settings": {"preset": "full"}, "stack": {"torch": "2.13.0"}}, outcomes)


def test_full_suite_report_is_small_and_opens_with_what_needs_attention():
    from pytest_npuperf.report.html import render_html

    text = render_html(_suite_doc())
    assert len(text.encode()) < 1_000_000
    top = text.index('<ol class="attention"')
    assert top < text.index('<details id="kind-generation"')
    items = re.findall(r'<li><span class="tag"[^>]*>(\w+)</span> <code>([^<]+)</code>', text)
    assert items == [("REGRESSED", "bf16-bs8-en_qa"), ("DRIFT", "bf16-attention_sdpa_prefill_3")]
    assert "stack changes since the baseline: torch 2.12.0 -&gt; 2.13.0" in text
    assert text.count("data:image/png") == 2 + 4  # samples plots of the two listed tests; scaling per precision
    assert re.findall(r'<details id="kind-(\w+)"( open)?', text) == [
        ("generation", " open"), ("steps", ""), ("operators", " open"), ("serving", "")]


# Run inside a copy of the report (the report itself has no script): what a 1400 px window shows.
PROBE = """<script>addEventListener('load', () => {
  const attention = document.getElementById('attention') || document.querySelector('p.counts');
  const sections = [...document.querySelectorAll('details')].map(d => {
    d.open = true; return d.id + ':' + Math.round(d.getBoundingClientRect().height); });
  document.body.setAttribute('data-probe', JSON.stringify({
    overflow: document.documentElement.scrollWidth - innerWidth, width: innerWidth,
    attentionBottom: Math.round(attention.getBoundingClientRect().bottom), fold: innerHeight,
    sections: sections}));
});</script>"""


def test_html_report_in_headless_chromium_fits_1400px_with_attention_above_the_fold(tmp_path):
    import shutil

    from pytest_npuperf.report.html import render_html

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    text = render_html(_suite_doc())
    report = tmp_path / "report.html"
    report.write_text(text, encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,900",
             "--hide-scrollbars"]
    dom = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    probe = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1)))
    assert probe["width"] == 1400
    assert probe["overflow"] <= 0  # no horizontal scrolling
    assert probe["attentionBottom"] <= probe["fold"]  # the attention list is above the fold
    heights = dict(item.rsplit(":", 1) for item in probe["sections"])
    assert sorted(heights) == ["history", "kind-generation", "kind-operators", "kind-serving", "kind-steps"]
    assert all(int(h) > 40 for h in heights.values())  # every section renders (opened)
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120, check=True)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 900)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # drawn, not a blank page
    keep = os.environ.get("NPUPERF_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_html_handles_steps_operators_and_serving_next_to_generation():
    from pytest_npuperf.judge.compare import Comparison
    from pytest_npuperf.judge.outcome import TestOutcome
    from pytest_npuperf.judge.result import Result, Sample, Workload
    from pytest_npuperf.report.html import render_html
    from pytest_npuperf.report.terminal import results_document

    def outcome(test_id, mode, samples):
        workload = Workload("tiny", "f", "bf16", 1, ("zh_qa",), (30,), 4, kind=mode)
        return TestOutcome(test_id, Result(test_id, "cpu-X", workload, samples, {}, ""), Comparison("NO_BASELINE"))

    gen = Sample(e2e_s=0.1, ttft_s=0.01, tpot_s=0.03, tokens_per_s=40.0, output_tokens=[4])
    doc = results_document({"profile": "cpu-X", "model": "tiny"}, [
        outcome("t::test_generate[bf16-bs1-zh_qa]", "eager-greedy-fixed-length", [gen] * 5),
        outcome("t::test_decode[bf16-decode-bs1-ctx512]", "step-decode", [Sample(time_s=0.002)] * 5),
        outcome("t::test_serving[static-rate20]", "serving-static", [Sample(serving_ttft_p50_s=0.05)] * 5),
    ])
    text = render_html(doc)
    assert text.count("<figure>") == 0  # no test needs attention: no samples plot
    assert text.count("data:image/png") == 1  # batch-size scaling of the one generation precision
    assert [m for m in re.findall(r'<details id="kind-(\w+)"', text)] == ["generation", "steps", "serving"]
    assert "<th>TTFT p50</th><th>Δ</th><th>TTFT p90</th>" in text and "<th>TFLOP/s</th>" in text
    assert "Nothing needs attention." in text
    serving_only = results_document({"profile": "cpu-X", "model": "tiny"}, [
        outcome("t::test_serving[static-rate20]", "serving-static", [Sample(serving_ttft_p50_s=0.05)] * 5)])
    assert re.findall(r'<details id="kind-(\w+)"', render_html(serving_only)) == ["serving"]


def test_serving_reports_the_offered_load_and_saturated_runs():
    from pytest_npuperf.judge.compare import Comparison
    from pytest_npuperf.judge.outcome import TestOutcome
    from pytest_npuperf.judge.result import Result, Sample, Workload
    from pytest_npuperf.report.html import render_html
    from pytest_npuperf.report.terminal import results_document, terminal_summary

    def outcome(test_id, runs, load=None):
        extra = {"serving_runs": runs}
        if load:
            extra["serving_load"] = load
        workload = Workload("tiny", "f", "bf16", 8, ("zh_qa",), (30,), 4, kind="serving-static")
        return TestOutcome(test_id, Result(test_id, "cpu-X", workload, [Sample(serving_ttft_p50_s=0.05)] * 2, extra=extra),
                           Comparison("NO_BASELINE"))

    load = {"load": 0.4, "capacity_rps": 12.34, "rate_rps": 4.936}
    calm = {"offered_rps": 4.936, "saturated": None}
    full = {"offered_rps": 4.936, "saturated": "13 of 16 requests had not started when the last one arrived"}
    burst = {"offered_rps": None, "saturated": "every request arrives at once: saturated by design"}
    doc = results_document({"profile": "cpu-X", "model": "tiny"}, [
        outcome("t::test_serving[static-load40]", [calm, calm], load),
        outcome("t::test_serving[static-load80]", [full, calm], dict(load, load=0.8, rate_rps=9.872)),
        outcome("t::test_serving[static-all-at-once]", [burst, burst]),
    ])
    text = render_html(doc)
    assert "<td>40% of 12.3 req/s = 4.94 req/s</td><td>0 of 2</td>" in text
    assert '>1 of 2</td>' in text and 'title="13 of 16 requests had not started' in text
    assert "<td>all at once</td><td>by design</td>" in text
    lines = [line for line in terminal_summary(doc) if "SATURATED" in line]
    assert lines == ["serving SATURATED in 1 of 2 runs at 80% of 12.3 req/s = 9.87 req/s: static-load80: 13 of 16 "
                     "requests had not started when the last one arrived (its figures follow the backlog, not the "
                     "service)"]


def test_html_has_wall_time_modes_side_by_side_decode_fraction_and_graph_section():
    text = render_html(graph_doc())
    assert "<dt>wall time</dt><dd>eager 95.2 s (3 tests), graph 301.4 s (2 tests)</dd>" in text
    assert re.search(r'<td class="l">bf16</td><td>40\.00 tok/s<br>800\.00ms<br><small>decode 38% copy, 30% peak'
                     r'</small></td><td>200\.00 tok/s<br>1280\.00ms<br><small>decode -</small></td></tr>', text)
    assert re.search(r'<td class="l">bf16 graph</td><td>80\.00 tok/s<br>400\.00ms<br><small>decode 76% copy, - peak'
                     r'</small></td><td>-</td></tr><tr><td class="l">bf16 graph/eager</td><td>2\.00x</td><td>-</td>', text)
    assert "<summary>generation: 3 tests (NO_BASELINE 3; graph mode 1: NO_BASELINE 1)</summary>" in text
    assert '<details id="graph" open><summary>graph mode: 2 tests: compilation and agreement with eager</summary>' in text
    assert ('<td class="l">bf16-bs1-zh_qa-graph</td><td class="l">inductor</td><td>12.50s</td><td>2</td><td>160</td>'
            '<td>0.999987</td><td>0.00123</td><td>-</td><td class="l">cosine &gt;= 0.999</td>') in text
    assert text.count("data:image/png") == 1  # one scaling chart for bf16, the graph line dashed in it


def test_a_serving_test_leads_with_its_tpot_and_its_reported_ttft_change_carries_no_verdict_colour():
    from pytest_npuperf.judge.compare import Comparison
    from pytest_npuperf.judge.outcome import TestOutcome
    from pytest_npuperf.judge.result import Result, Sample, Workload
    from pytest_npuperf.judge.stats import Verdict
    from pytest_npuperf.report.html import HEADLINE, render_html
    from pytest_npuperf.report.terminal import results_document

    assert HEADLINE["serving"][0] == "serving_tpot_p50_s"  # gated, unlike the TTFT under load
    ttft = Verdict("serving_ttft_p50_s", "REGRESSED", 0.6, 0.5, 0.2, 0.05, gated=False)
    tpot = Verdict("serving_tpot_p50_s", "OK", 0.0101, 0.01, 0.01, 0.03)
    workload = Workload("tiny", "f", "bf16", 8, ("zh_qa",), (30,), 4, kind="serving-static")
    samples = [Sample(serving_ttft_p50_s=0.6, serving_tpot_p50_s=0.0101)] * 3
    doc = results_document({"profile": "cpu-X", "model": "tiny"}, [TestOutcome(
        "t::test_serving[static-load40]", Result("t::test_serving[static-load40]", "cpu-X", workload, samples),
        Comparison("OK", [ttft, tpot]))])
    text = render_html(doc)
    assert '<td title="reported, not gated">(+20.0%)</td>' in text
    assert "<td>+1.0%</td>" in text  # the gated TPOT: OK, plain
