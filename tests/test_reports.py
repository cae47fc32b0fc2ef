"""Outputs: Markdown summary, pytest-benchmark JSON, HTML report, baseline history, the CLI."""

import html
import json
import os
import re
import subprocess
import sys

import pytest

from pytest_npuperf.cli import main

SAVE = "--npuperf-save-baseline"


def test_markdown_goes_to_the_github_step_summary(npt):
    npt.fake()
    npt.run(SAVE)
    summary = npt.path / "summary.md"
    result = npt.run(seed=1, GITHUB_STEP_SUMMARY=str(summary), NPUPERF_FAKE_SLOWDOWN="bf16-bs8-en_qa=1.3")
    result.assert_outcomes(passed=7, failed=1)
    lines = summary.read_text().splitlines()
    assert lines[0] == "## pytest-npuperf"
    # Attention first (verdict, test, kind; the failure detail and the stack under it), then the
    # counts per kind, then the study's tables.
    start = lines.index("### Needs attention")
    assert lines[start + 2] == "- ❌ **REGRESSED** `bf16-bs8-en_qa` (generation)"
    assert re.fullmatch(r"  - e2e_s: baseline [0-9.]+ms -> now [0-9.]+ms \(\+[23]\d\.\d%\), tolerance 3\.0%, "
                        r"one-sided Mann-Whitney p=0\.0040 \(alpha 0\.05, n=5 vs 5\)", lines[start + 3])
    assert "  - stack changes since the baseline: none recorded" in lines[start:]
    counts = lines.index("| kind | tests | verdicts |")
    assert counts > start and re.fullmatch(r"\| generation \| 8 \| ❌ REGRESSED 1, .*✔️ OK \d \|", lines[counts + 2])
    table = next(i for i, line in enumerate(lines)
                 if line.startswith("### Generation, en_qa: output tokens/s and e2e latency (change vs baseline"))
    assert table > counts and lines[table + 2] == "| precision | bs1 | bs8 |"
    assert re.fullmatch(r"\| bf16 \| .* \| [0-9.]+ \(-[12]\d\.\d%\) tok/s<br>[0-9.]+ms \(\+[23]\d\.\d%\)"
                        r"(<br>decode [0-9.]+% copy, - peak)? \|", lines[table + 5])


def test_benchmark_json_is_read_by_pytest_benchmark(npt, tmp_path_factory):
    npt.fake()
    npt.run("--npuperf-export-benchmark-json", "bench.json")
    data = json.loads((npt.path / "bench.json").read_text())
    assert len(data["benchmarks"]) == 8
    bench = data["benchmarks"][0]
    assert bench["stats"]["rounds"] == 5 and len(bench["stats"]["data"]) == 5
    assert bench["extra_info"]["verdict"] == "NO_BASELINE"
    runner = "import sys; from pytest_benchmark.cli import main; sys.argv[0] = 'pytest-benchmark'; main()"
    elsewhere = tmp_path_factory.mktemp("bench")  # its CLI imports the conftest.py files around its folder
    (elsewhere / "bench.json").write_text((npt.path / "bench.json").read_text())
    out = subprocess.run([sys.executable, "-c", runner, "compare", "bench.json"],
                         capture_output=True, text=True, cwd=str(elsewhere))
    assert out.returncode == 0, out.stderr
    assert "test_generate[fp16-bs1-zh_qa]" in out.stdout


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


def test_saving_again_keeps_the_earlier_baseline_as_history(npt, capsys):
    npt.fake()
    npt.run(SAVE, "--npuperf-reason", "CANN 8.0.RC1")
    npt.run(SAVE, "--npuperf-reason", "CANN 8.0.0", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.5")
    (path,) = (npt.path / "baselines").rglob("*.json")
    entry = json.loads(path.read_text())["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert entry["reason"] == "CANN 8.0.0"
    (old,) = entry["history"]
    assert old["reason"] == "CANN 8.0.RC1" and old["n"] == 5
    assert entry["samples"][0]["e2e_s"] > 1.4 * old["medians"]["e2e_s"]
    assert main(["show", "--baseline-dir", str(npt.path / "baselines")]) == 0
    out = capsys.readouterr().out
    assert "earlier:" in out and "CANN 8.0.RC1" in out
    assert "fp16-bs1-zh_qa               e2e_s " in out and "nan" not in out


def test_show_names_the_headline_metric_of_each_kind_of_test(tmp_path, capsys):
    from pytest_npuperf.store.baselines import BaselineStore

    path = BaselineStore(tmp_path).path_for("cuda-X", "m")
    path.parent.mkdir(parents=True)
    serving = {"serving_ttft_p50_s": 0.5, "serving_tokens_per_s": 200.0}
    step = {"time_s": 0.002, "achieved_tflops": 1.5}
    path.write_text(json.dumps({"schema_version": 1, "profile": "cuda-X", "model": "m", "entries": {
        "t.py::test_serving[fp16-static-rate20]": {"samples": [serving] * 5, "workload": {}, "stack": {}},
        "t.py::test_step[decode]": {"samples": [step] * 3, "workload": {}, "stack": {}},
    }}))
    assert main(["show", "--baseline-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "serving_ttft_p50_s 500.00ms  serving_tokens_per_s 200.00  n=5" in out
    assert "time_s 2.00ms  achieved_tflops 1.5  n=3" in out and "nan" not in out


def test_cli_compares_two_result_files(npt, capsys):
    npt.fake()
    npt.run("--npuperf-results", "a.json")
    npt.run("--npuperf-results", "b.json", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs8-zh_qa=1.2", TASK_QUEUE_ENABLE="2")
    code = main(["compare", str(npt.path / "a.json"), str(npt.path / "b.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "stack changes A -> B: env TASK_QUEUE_ENABLE unknown -> 2" in out
    assert re.search(r"fp16-bs8-zh_qa\s+e2e_s .* REGRESSED", out)


def test_cli_report_renders_from_a_stored_results_file(npt, capsys):
    npt.fake()
    npt.run()
    assert main(["report", str(npt.path / "results.json"), "--html", str(npt.path / "r.html"),
                 "--markdown", str(npt.path / "r.md")]) == 0
    assert '<details id="kind-generation" open><summary>generation: 8 tests (NO_BASELINE 8)</summary>' in (
        npt.path / "r.html").read_text()
    assert "| generation | 8 | ➖ NO_BASELINE 8 |" in (npt.path / "r.md").read_text().splitlines()


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    assert main(["report", str(bad), "--html", str(tmp_path / "r.html")]) == 2
    assert "not a pytest-npuperf results file" in capsys.readouterr().err


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
                                Workload("tiny", "f", "bf16", 1, ("decode",), (512,), 1, mode="step-decode"),
                                [Sample(time_s=0.002, achieved_tflops=0.5, achieved_gb_s=20.0)] * 5))
    for i in range(60):
        outcomes.append(outcome(f"perf_tests/test_ops.py::test_op[bf16-attention_sdpa_prefill_{i}]",
                                Workload("tiny", "f", "bf16", 1, ("op",), (64,), 0, mode="op"),
                                [Sample(time_s=0.0003, achieved_tflops=0.2, achieved_gb_s=9.0)] * 5,
                                "DRIFT" if i == 3 else "OK"))
    for i in range(12):
        outcomes.append(outcome(f"perf_tests/test_serving.py::test_serving[bf16-continuous-rate{i}]",
                                Workload("tiny", "f", "bf16", 0, ("zh_qa",), (30,), 32, mode="serving-continuous"),
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


def test_xdist_one_worker_per_device_results_merged_on_the_controller(npt):
    pytest.importorskip("xdist")
    npt.fake()
    result = npt.run("-n", "2", SAVE, NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*npuperf summary*", "verdicts: NO_BASELINE 8", "*saved 8 baseline entries*"])
    data = json.loads((npt.path / "results.json").read_text())
    assert len(data["tests"]) == 8 and all(len(t["result"]["samples"]) == 5 for t in data["tests"])
    (path,) = (npt.path / "baselines").rglob("*.json")
    assert len(json.loads(path.read_text())["entries"]) == 8


def test_xdist_two_workers_on_one_device_is_refused(npt):
    pytest.importorskip("xdist")
    npt.fake()
    result = npt.run("-n", "2", NPUPERF_FAKE_DEVICES="1")
    result.assert_outcomes(errors=8)
    result.stdout.fnmatch_lines(["*2 parallel workers but only 1 cpu device(s)*meaningless*-n 1*"])


def test_verbose_runs_show_progress_with_what_is_left_per_kind(npt):
    npt.fake()
    result = npt.run("-v")
    result.stdout.fnmatch_lines([
        "npuperf ?1/8? fp16-bs1-zh_qa: 5 runs, NO_BASELINE; elapsed *, about * left (generation: 7 left, about *)",
        "npuperf ?8/8? bf16-bs8-en_qa: 5 runs, NO_BASELINE; elapsed *, about 0s left",
    ])


def test_summary_lists_what_needs_attention_first_then_kinds_then_the_study_matrix(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(seed=1, NPUPERF_FAKE_SLOWDOWN="bf16-bs8-en_qa=1.3", TASK_QUEUE_ENABLE="2")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines([
        "*npuperf summary*",
        "npuperf: 8 tests on cpu (Fake Accelerator), model tiny, preset quick (the default on a CPU; "
        "the full study: --npuperf-preset full): * need attention",
        "REGRESSED bf16-bs8-en_qa (generation): test_perf.py::test_generate[bf16-bs8-en_qa]",
        "    metric * median * spread * baseline * change * tol * p * verdict",
        "    e2e_s * *ms * ±*% * *ms * +??.?% * 3% * 0.004 * REGRESSED",
        "    stack changes since the baseline: env TASK_QUEUE_ENABLE unknown -> 2",
        "verdicts: REGRESSED 1, *OK *",
        "generation: 8 tests: REGRESSED 1, *OK *",
        "generation zh_qa: output tokens/s and e2e latency (change vs baseline*",
        "  precision * bs1 * bs8",
        "  fp16 * tok/s * (?*%) * (?*%)",
        "       * e2e * *ms (?*%) * *ms (?*%)",
        "generation en_qa: output tokens/s and e2e latency (change vs baseline*",
        "  precision * bs1 * bs8",
        "  fp16 * tok/s * (?*%) * (?*%)",
        "       * e2e * *ms (?*%) * *ms (?*%)",
        "  bf16 * tok/s * (?*%) * (-??.?%)",
        "       * e2e * *ms (?*%) * *ms (+??.?%)",
    ])
    # Tests that need no attention have no metric rows in the default summary.
    assert not any(line.lstrip().startswith("fp16-bs1-zh_qa") for line in result.outlines)


@pytest.mark.parametrize("option", [("-v",), ("--npuperf-summary", "full")])
def test_full_summary_has_every_metric_row(npt, option):
    npt.fake()
    result = npt.run(*option)
    result.stdout.fnmatch_lines([
        "npuperf: 8 tests on *: nothing needs attention",
        "verdicts: NO_BASELINE 8",
        "generation: 8 tests: NO_BASELINE 8",
        "generation zh_qa: *",
        "test * metric * median * spread * baseline * change * tol * p * verdict",
        "fp16-bs1-zh_qa * e2e_s * *ms * ±*% * - * - * - * - * NO_BASELINE",
    ])


def test_bad_summary_mode_is_a_usage_error(npt):
    npt.fake()
    result = npt.run("--npuperf-summary", "long")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--npuperf-summary: 'long' is not one of attention, full"])


def test_explicit_preset_wins_over_the_cpu_default(npt):
    npt.fake()
    result = npt.run("--npuperf-preset", "full")
    result.stdout.fnmatch_lines(["npuperf: preset=full max_new_tokens=16 *",
                                 "npuperf: 8 tests on cpu (Fake Accelerator), model tiny, preset full: *"])
    assert "the default on a CPU" not in result.stdout.str()


def test_preset_default_is_quick_on_a_cpu_and_full_on_an_accelerator():
    from pytest_npuperf.settings import PRESETS, Settings, for_device, preset_note

    unset = Settings()
    assert for_device(unset, "cpu").preset == "quick"
    assert for_device(unset, "cpu").max_new_tokens == PRESETS["quick"]["max_new_tokens"]
    assert for_device(unset, "cpu").workloads == PRESETS["quick"]["workloads"]
    assert for_device(unset, "npu").preset == "full" and for_device(unset, "cuda").max_new_tokens == 120
    assert for_device(unset, None) == unset  # device unavailable: the tests skip
    assert preset_note(for_device(unset, "cpu"), "cpu").endswith("the full study: --npuperf-preset full")
    given = Settings(preset="full", preset_given=True)
    assert for_device(given, "cpu") == given and preset_note(given, "cpu") == ""
    tokens = Settings(max_new_tokens=16, max_new_tokens_given=True)
    assert for_device(tokens, "cpu").max_new_tokens == 16


def test_html_handles_steps_operators_and_serving_next_to_generation():
    from pytest_npuperf.judge.compare import Comparison
    from pytest_npuperf.judge.outcome import TestOutcome
    from pytest_npuperf.judge.result import Result, Sample, Workload
    from pytest_npuperf.report.html import render_html
    from pytest_npuperf.report.terminal import results_document

    def outcome(test_id, mode, samples):
        workload = Workload("tiny", "f", "bf16", 1, ("zh_qa",), (30,), 4, mode=mode)
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


def test_an_accelerator_runs_the_full_preset_and_shows_progress_without_verbose(npt, monkeypatch):
    from fakes import synthetic

    from pytest_npuperf import plugin

    npt.fake()
    monkeypatch.setattr(synthetic.FakeDevice, "kind", "npu")
    monkeypatch.setattr(plugin, "PROGRESS_EVERY_S", 0.0)  # a line per test instead of one a minute
    result = npt.run()
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines([
        "npuperf: preset=full max_new_tokens=16 *",
        "npuperf ?1/8? fp16-bs1-zh_qa: 5 runs, NO_BASELINE; elapsed *, about * left (generation: 7 left, about *)",
        "npuperf ?8/8? bf16-bs8-en_qa: 5 runs, NO_BASELINE; elapsed *, about 0s left",
        "npuperf: 8 tests on npu (Fake Accelerator), model mistral-7b, preset full: nothing needs attention",
    ])
    assert "the default on a CPU" not in result.stdout.str()


def test_a_failed_test_without_baseline_is_listed_with_its_budget(npt):
    npt.fake()
    npt.pytester.makepyfile(test_perf=(
        "import pytest\n\n"
        "@pytest.mark.npu\n"
        "@pytest.mark.npuperf(budget={'ttft_s': 0.001})\n"
        "def test_generate(npuperf):\n"
        "    npuperf.generate(precision='fp16', batch_size=1, workload='zh_qa')\n"))
    result = npt.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "npuperf: 1 tests on *: 1 need attention",
        "FAILED test_generate (generation): test_perf.py::test_generate",
        "    metric * verdict",
        "    e2e_s * NO_BASELINE",
        "    budget ttft_s: median *ms breaks the budget of at most 1.00ms",
        "verdicts: NO_BASELINE 1",
    ])
    assert "stack changes since the baseline" not in result.stdout.str().split("npuperf summary")[1]
