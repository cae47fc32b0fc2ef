"""The terminal summary (report/terminal.py): what needs attention first, counts per kind (graph
mode apart), the study's generation matrix with decode fractions, the graph section, every
metric row on request."""

import re

import pytest
from support.results import graph_doc

from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.report.export import markdown_summary
from pytest_npuperf.report.html import render_html
from pytest_npuperf.report.terminal import terminal_summary


def test_terminal_summary_shows_modes_side_by_side_the_decode_fraction_and_the_graph_section():
    lines = terminal_summary(graph_doc())
    assert lines[1] == "wall time: eager 95.2 s (3 tests), graph 301.4 s (2 tests)"
    assert lines[2:6] == [
        "verdicts: NO_BASELINE 5",
        "generation: 2 tests: NO_BASELINE 2",
        "generation (graph): 1 tests: NO_BASELINE 1",
        "steps: 1 tests: NO_BASELINE 1",
    ]
    assert lines[6] == "steps (graph): 1 tests: NO_BASELINE 1"
    start = lines.index("generation zh_qa: output tokens/s and e2e latency (change vs baseline; graph/eager: "
                        "tokens/s speedup; decode: fraction of the calibrated copy bandwidth and of the "
                        "published HBM peak)")
    assert [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:start + 9]] == [
        ["precision", "bs1", "bs8"],
        ["bf16", "tok/s", "40.00", "200.00"],
        ["e2e", "800.00ms", "1280.00ms"],
        ["decode", "38% copy, 30% peak", "-"],  # the old bs8 result has no fraction: '-', not a guess
        ["bf16 graph", "tok/s", "80.00", "-"],
        ["e2e", "400.00ms", "-"],
        ["decode", "76% copy, - peak", "-"],  # no published peak; bs8 did not run in graph mode
        ["graph/eager", "2.00x", "-"],
    ]
    graph = lines.index("graph mode: 2 tests: backend, compile time (change vs baseline), graphs compiled, "
                        "static KV cache length, agreement with eager (logits cosine, max |diff|, greedy tokens)")
    assert [line.split() for line in lines[graph + 1:]] == [
        ["test", "backend", "compile", "graphs", "cache_len", "cosine", "max|diff|", "greedy"],
        ["bf16-bs1-zh_qa-graph", "inductor", "12.50s", "2", "160", "0.999987", "0.00123", "-"],
        ["bf16-decode-bs1-ctx512-graph", "inductor", "3.00s", "1", "512", "0.999987", "0.00123", "1.0000"],
    ]


def test_a_graph_test_that_errored_before_its_result_is_counted_as_graph_by_its_id():
    doc = graph_doc()
    doc["tests"].append(TestOutcome("t.py::test_generate[bf16-bs2-zh_qa-graph]", error="compile failed").to_dict())
    lines = terminal_summary(doc)
    assert "ERROR bf16-bs2-zh_qa-graph (generation): t.py::test_generate[bf16-bs2-zh_qa-graph]" in lines
    assert "generation (graph): 2 tests: ERROR 1, NO_BASELINE 1" in lines
    assert [line.split()[:3] for line in lines if line.startswith("  bf16-bs2-zh_qa-graph")] == [
        ["bf16-bs2-zh_qa-graph", "-", "-"]]


def test_old_results_print_as_before_eager_only_without_decode_rows_or_wall_time():
    doc = graph_doc(wall=None)
    doc["tests"] = [t for t in doc["tests"] if not t["result"]["extra"]]
    lines = terminal_summary(doc)
    assert not any(line.startswith(("wall time", "graph mode")) or "(graph)" in line for line in lines)
    assert lines[1:5] == [
        "verdicts: NO_BASELINE 2",
        "generation: 1 tests: NO_BASELINE 1",
        "steps: 1 tests: NO_BASELINE 1",
        "generation zh_qa: output tokens/s and e2e latency (change vs baseline)",
    ]
    assert [line.split() for line in lines[5:]] == [
        ["precision", "bs8"], ["bf16", "tok/s", "200.00"], ["e2e", "1280.00ms"]]
    html = render_html(doc)
    assert 'id="graph"' not in html and "<small>decode" not in html and "wall time" not in html
    markdown = markdown_summary(doc)
    assert "Wall time" not in markdown and "Graph mode" not in markdown and "<br>decode" not in markdown


def test_the_change_of_compile_time_vs_the_baseline_is_shown_when_judged():
    doc = graph_doc()
    graph = doc["tests"][1]
    graph["comparison"]["verdicts"] = [{"metric": "compile_s", "status": "OK", "change": 0.05}]
    assert any(line.split()[:3] == ["bf16-bs1-zh_qa-graph", "inductor", "12.50s"] and "(+5.0%)" in line
               for line in terminal_summary(doc))


SAVE = "--npuperf-save-baseline"


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
