"""The terminal summary (report/terminal.py): short ids and kinds of tests, what needs attention
first (worst kind first), the verdict counts overall and per kind (graph mode apart), the study's
generation matrix with decode fractions, the graph section, every metric row on request."""

import re

import pytest
from support.results import graph_doc

from pytest_npuperf.judge.compare import Comparison
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.judge.stats import Verdict
from pytest_npuperf.report import terminal
from pytest_npuperf.report.export import markdown_summary
from pytest_npuperf.report.html import render_html
from pytest_npuperf.report.terminal import counts_text, needs_attention, results_document, short_id, terminal_summary, verdict_counts


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
        "    metric * median * spread * baseline * change * worse: bounds * budget * verdict",
        "    e2e_s * *ms * ±*% * *ms * +??.?% * ?+*%, +*%? * 3.0% * REGRESSED",
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
        "test * metric * median * spread * baseline * change * worse: bounds * budget * verdict",
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


# --- the building blocks, on results-document tests -------------------------------------------

@pytest.mark.parametrize("test_id, short", [
    ("perf_tests/test_generation.py::test_generate[fp16-bs8-zh_qa]", "fp16-bs8-zh_qa"),
    ("perf_tests/test_ops.py::test_op[bf16-attn[decode]]", "bf16-attn[decode]"),
    ("t.py::test_plain", "test_plain"),
    ("t.py::TestClass::test_method", "test_method"),
])
def test_short_id_is_the_parameter_id_else_the_test_name(test_id, short):
    assert short_id(test_id) == short


@pytest.mark.parametrize("test_id, mode, kind", [
    ("t.py::test_anything", "eager-greedy-fixed-length", "generation"),
    ("t.py::test_anything", "graph-greedy-fixed-length", "generation"),
    ("t.py::test_anything", "step-decode-graph", "steps"),
    ("t.py::test_anything", "op", "operators"),
    ("t.py::test_anything", "serving-vllm-rateinf", "serving"),
    # no result (the test errored before measuring): the kind from the test's name
    ("t.py::test_prefill[bf16-prefill-bs1]", None, "steps"),
    ("t.py::test_decode[bf16-decode-bs1-ctx512]", None, "steps"),
    ("t.py::test_op[bf16-q_proj]", None, "operators"),
    ("t.py::test_serving[bf16-static-rate20]", None, "serving"),
    ("t.py::test_generate[fp16-bs1-zh_qa]", None, "generation"),
    ("t.py::test_my_generation", None, "generation"),
    ("t.py::test_something_else", None, "other"),
])
def test_the_kind_of_a_test_comes_from_its_workload_mode_else_its_name(test_id, mode, kind):
    test = {"test_id": test_id, "result": {"workload": {"mode": mode}} if mode else None}
    assert terminal.test_kind(test) == kind


def _listed(name, status, passed=True, budget_failures=()):
    return {"test_id": f"t.py::test_generate[{name}]", "status": status, "passed": passed,
            "budget_failures": list(budget_failures)}


def test_needs_attention_lists_the_worst_kind_first_in_run_order_within_a_kind():
    tests = [
        _listed("ok", "OK"), _listed("drift", "DRIFT"), _listed("regressed-1", "REGRESSED", passed=False),
        _listed("no-baseline-failed", "NO_BASELINE", passed=False), _listed("mismatch", "MISMATCH", passed=False),
        _listed("improved-over-budget", "IMPROVED", budget_failures=["ttft_s: median 2.00ms breaks the budget"]),
        _listed("unconfirmed", "UNCONFIRMED"), _listed("regressed-2", "REGRESSED", passed=False),
        _listed("inconclusive", "INCONCLUSIVE"), _listed("error", "ERROR", passed=False), _listed("improved", "IMPROVED"),
        _listed("not-judged", "-", passed=None), _listed("new-verdict", "SUSPICIOUS"),
    ]
    assert [(word, short_id(t["test_id"])) for word, t in needs_attention(tests)] == [
        ("REGRESSED", "regressed-1"), ("REGRESSED", "regressed-2"), ("MISMATCH", "mismatch"), ("ERROR", "error"),
        ("FAILED", "no-baseline-failed"), ("FAILED", "improved-over-budget"), ("UNCONFIRMED", "unconfirmed"),
        ("INCONCLUSIVE", "inconclusive"), ("DRIFT", "drift"),
        ("SUSPICIOUS", "new-verdict"),  # a verdict added later is listed, after the known ones
    ]


def test_verdict_counts_put_the_verdicts_that_need_attention_first():
    statuses = ["OK", "NO_BASELINE", "OK", "DRIFT", "IMPROVED", "REGRESSED", "MISMATCH", "OK"]
    counts = verdict_counts({"status": s} for s in statuses)
    assert list(counts.items()) == [("REGRESSED", 1), ("MISMATCH", 1), ("DRIFT", 1), ("OK", 3), ("IMPROVED", 1),
                                    ("NO_BASELINE", 1)]
    assert counts_text(counts) == "REGRESSED 1, MISMATCH 1, DRIFT 1, OK 3, IMPROVED 1, NO_BASELINE 1"


# --- the whole summary of a small synthetic run ----------------------------------------------

def _generation(sid, precision, batch_size, e2e_s, comparison):
    test_id = f"perf_tests/test_generation.py::test_generate[{sid}]"
    workload = Workload("tiny", "f", precision, batch_size, ("zh_qa",) * batch_size, (30,) * batch_size, 16)
    sample = Sample(e2e_s=e2e_s, tokens_per_s=16 * batch_size / e2e_s)
    return TestOutcome(test_id, Result(test_id, "cpu-X", workload, [sample] * 5, {}, ""), comparison)


def _small_run():
    """Two generation tests (one OK, one REGRESSED in e2e and tokens/s) and an operator that errored."""
    ok = Comparison("OK", [Verdict("e2e_s", "OK", current_median=0.2, baseline_median=0.2, change=0.0, budget=0.03,
                                   worse_change=0.0, low=-0.01, high=0.012, level=0.95)])
    regressed = Comparison("REGRESSED", [
        Verdict("e2e_s", "REGRESSED", current_median=0.5, baseline_median=0.4, change=0.25, budget=0.03,
                worse_change=0.25, low=0.2, high=0.3, level=0.95),
        Verdict("tokens_per_s", "REGRESSED", current_median=256.0, baseline_median=320.0, change=-0.2, budget=0.03,
                worse_change=0.25, low=0.2, high=0.3, level=0.95),
    ], stack_changes=["torch 2.12.0 -> 2.13.0"])
    outcomes = [_generation("fp16-bs1-zh_qa", "fp16", 1, 0.2, ok), _generation("fp16-bs8-zh_qa", "fp16", 8, 0.5, regressed),
                TestOutcome("perf_tests/test_ops.py::test_op[bf16-q_proj-m8]", error="out of memory on cpu (x86)")]
    return results_document({"profile": "cpu-X", "model": "tiny", "device": "cpu", "device_name": "x86",
                             "settings": {"preset": "quick"}}, outcomes)


def test_terminal_summary_of_a_small_run():
    assert terminal_summary(_small_run()) == [
        "npuperf: 3 tests on cpu (x86), model tiny, preset quick (the default on a CPU; the full study: "
        "--npuperf-preset full): 2 need attention",
        "REGRESSED fp16-bs8-zh_qa (generation): perf_tests/test_generation.py::test_generate[fp16-bs8-zh_qa]",
        "    metric          median  spread  baseline  change     worse: bounds  budget    verdict",
        "    e2e_s         500.00ms   ±0.0%  400.00ms  +25.0%  [+20.0%, +30.0%]    3.0%  REGRESSED",
        "    tokens_per_s    256.00   ±0.0%    320.00  -20.0%  [+20.0%, +30.0%]    3.0%  REGRESSED",
        "    stack changes since the baseline: torch 2.12.0 -> 2.13.0",
        "ERROR bf16-q_proj-m8 (operators): perf_tests/test_ops.py::test_op[bf16-q_proj-m8]",
        "    out of memory on cpu (x86)",
        "verdicts: REGRESSED 1, ERROR 1, OK 1",
        "generation: 2 tests: REGRESSED 1, OK 1",
        "operators: 1 tests: ERROR 1",
        "generation zh_qa: output tokens/s and e2e latency (change vs baseline)",
        "  precision                      bs1                bs8",
        "  fp16       tok/s             80.00    256.00 (-20.0%)",
        "             e2e    200.00ms (+0.0%)  500.00ms (+25.0%)",
    ]


def test_the_full_summary_adds_every_metric_row_of_every_test():
    attention = terminal_summary(_small_run())
    full = terminal_summary(_small_run(), "full")
    assert full[:len(attention)] == attention
    assert full[len(attention):] == [
        "test            metric          median  spread  baseline  change     worse: bounds  budget    verdict",
        "fp16-bs1-zh_qa  e2e_s         200.00ms   ±0.0%  200.00ms   +0.0%    [-1.0%, +1.2%]    3.0%         OK",
        "                tokens_per_s     80.00   ±0.0%         -       -                 -       -         OK",
        "fp16-bs8-zh_qa  e2e_s         500.00ms   ±0.0%  400.00ms  +25.0%  [+20.0%, +30.0%]    3.0%  REGRESSED",
        "                tokens_per_s    256.00   ±0.0%    320.00  -20.0%  [+20.0%, +30.0%]    3.0%  REGRESSED",
        "bf16-q_proj-m8  -                    -       -         -       -                 -       -      ERROR",
        "bf16-q_proj-m8: out of memory on cpu (x86)",
    ]


def test_nothing_measured_prints_no_summary():
    assert terminal_summary(results_document({"device": "cpu"}, [])) == []
