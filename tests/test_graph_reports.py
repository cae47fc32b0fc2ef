"""Graph mode and the decode roofline in the reports: terminal summary, HTML, Markdown, results JSON.

Synthetic results documents carry the keys graph mode adds (execution_mode, the decode fractions,
extra['graph'], the run's wall time per mode); one old result lacks them all. No timing.
"""

import json
import re

import pytest

from pytest_npuperf.judge.compare import Comparison
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.report.export import markdown_summary
from pytest_npuperf.report.html import render_html
from pytest_npuperf.report.terminal import results_document, terminal_summary

GRAPH = {"backend": "inductor", "description": "torch.compile(backend=inductor, fullgraph=True, dynamic=False)",
         "compile_s": 12.5, "graphs": 2, "cache_len": 160,
         "agreement": {"logits_max_abs_diff": 0.00123, "logits_cosine": 0.9999871, "greedy_token_agreement": None,
                       "tolerance": "cosine >= 0.999"}}
WALL = {"eager": {"wall_s": 95.24, "tests": 3}, "graph": {"wall_s": 301.4, "tests": 2}}


def _outcome(test_id, batch_size, tokens_per_s, extra, mode="eager-greedy-fixed-length"):
    workload = Workload("tiny", "f", "bf16", batch_size, ("zh_qa",) * batch_size, (30,) * batch_size, 32, kind=mode)
    sample = Sample(e2e_s=32 * batch_size / tokens_per_s, ttft_s=0.01, tpot_s=0.005, tokens_per_s=tokens_per_s)
    return TestOutcome(test_id, Result(test_id, "cpu-X", workload, [sample] * 5, {}, "", extra),
                       Comparison("NO_BASELINE"))


def _doc(wall=WALL):
    gen = "perf_tests/test_generation.py::test_generate"
    outcomes = [
        _outcome(f"{gen}[bf16-bs1-zh_qa]", 1, 40.0, {"execution_mode": "eager", "decode_gb_s": 11.0,
                                                     "decode_fraction_of_copy": 0.38, "decode_fraction_of_peak": 0.3}),
        _outcome(f"{gen}[bf16-bs1-zh_qa-graph]", 1, 80.0,
                 {"execution_mode": "graph", "decode_fraction_of_copy": 0.76, "decode_fraction_of_peak": None,
                  "graph": GRAPH}),
        _outcome(f"{gen}[bf16-bs8-zh_qa]", 8, 200.0, {}),  # written before graph mode: no new keys
        _outcome("perf_tests/test_steps.py::test_decode[bf16-decode-bs1-ctx512-graph]", 1, 1.0,
                 {"execution_mode": "graph", "graph": dict(GRAPH, compile_s=3.0, graphs=1, cache_len=512,
                                                           agreement=dict(GRAPH["agreement"], greedy_token_agreement=1.0))},
                 mode="step-decode"),
        _outcome("perf_tests/test_steps.py::test_decode[bf16-decode-bs1-ctx512]", 1, 1.0, {}, mode="step-decode"),
    ]
    header = {"profile": "cpu-X", "model": "tiny", "device": "cpu", "device_name": "x86", "stack": {}}
    if wall is not None:
        header["wall_time"] = wall
    return results_document(header, outcomes)


def test_terminal_summary_shows_modes_side_by_side_the_decode_fraction_and_the_graph_section():
    lines = terminal_summary(_doc())
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
    doc = _doc()
    doc["tests"].append(TestOutcome("t.py::test_generate[bf16-bs2-zh_qa-graph]", error="compile failed").to_dict())
    lines = terminal_summary(doc)
    assert "ERROR bf16-bs2-zh_qa-graph (generation): t.py::test_generate[bf16-bs2-zh_qa-graph]" in lines
    assert "generation (graph): 2 tests: ERROR 1, NO_BASELINE 1" in lines
    assert [line.split()[:3] for line in lines if line.startswith("  bf16-bs2-zh_qa-graph")] == [
        ["bf16-bs2-zh_qa-graph", "-", "-"]]


def test_old_results_print_as_before_eager_only_without_decode_rows_or_wall_time():
    doc = _doc(wall=None)
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


def test_html_has_wall_time_modes_side_by_side_decode_fraction_and_graph_section():
    text = render_html(_doc())
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


def test_markdown_has_wall_time_modes_side_by_side_decode_fraction_and_graph_table():
    lines = markdown_summary(_doc()).splitlines()
    assert "Wall time: eager 95.2 s (3 tests), graph 301.4 s (2 tests)" in lines
    counts = lines.index("| kind | tests | verdicts |")
    assert lines[counts + 2:counts + 6] == [
        "| generation | 2 | ➖ NO_BASELINE 2 |", "| generation (graph) | 1 | ➖ NO_BASELINE 1 |",
        "| steps | 1 | ➖ NO_BASELINE 1 |", "| steps (graph) | 1 | ➖ NO_BASELINE 1 |"]
    table = next(i for i, line in enumerate(lines) if line.startswith("### Generation, zh_qa: "))
    assert lines[table + 2:table + 7] == [
        "| precision | bs1 | bs8 |",
        "|---|---|---|",
        "| bf16 | 40.00 tok/s<br>800.00ms<br>decode 38% copy, 30% peak | 200.00 tok/s<br>1280.00ms<br>decode - |",
        "| bf16 graph | 80.00 tok/s<br>400.00ms<br>decode 76% copy, - peak | - |",
        "| bf16 graph/eager | 2.00x | - |",
    ]
    graph = lines.index("### Graph mode: 2 tests, compilation and agreement with eager")
    assert lines[graph + 2:graph + 5] == [
        "| test | backend | compile | graphs | cache_len | cosine | max\\|diff\\| | greedy | tolerance |",
        "|---|---|---|---|---|---|---|---|---|",
        "| `bf16-bs1-zh_qa-graph` | inductor | 12.50s | 2 | 160 | 0.999987 | 0.00123 | - | cosine >= 0.999 |",
    ]


def test_the_change_of_compile_time_vs_the_baseline_is_shown_when_judged():
    doc = _doc()
    graph = doc["tests"][1]
    graph["comparison"]["verdicts"] = [{"metric": "compile_s", "status": "OK", "change": 0.05}]
    assert any(line.split()[:3] == ["bf16-bs1-zh_qa-graph", "inductor", "12.50s"] and "(+5.0%)" in line
               for line in terminal_summary(doc))


def test_benchmark_json_carries_the_wall_time_per_mode():
    from pytest_npuperf.report.export import benchmark_json

    assert benchmark_json(_doc())["machine_info"]["npuperf_wall_time"] == WALL


MODE_SUITE = """
import pytest

pytestmark = pytest.mark.npu

@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("batch_size", [1, 8], ids=lambda b: f"bs{b}")
def test_generate(npuperf, batch_size, mode):
    npuperf.generate(precision="bf16", batch_size=batch_size, workload="zh_qa")

def test_plain(npuperf):
    npuperf.generate(precision="bf16", batch_size=1, workload="en_qa")
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_wall_time_per_mode_comes_from_the_mode_parameter(npt, workers):
    if workers:
        pytest.importorskip("xdist")
    npt.fake(MODE_SUITE)
    result = npt.run(*workers, NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["npuperf: 5 tests on *", "wall time: eager * s (3 tests), graph * s (2 tests)"])
    wall = json.loads((npt.path / "results.json").read_text())["run"]["wall_time"]
    assert sorted(wall) == ["eager", "graph"] and [wall[m]["tests"] for m in ("eager", "graph")] == [3, 2]
    assert all(wall[m]["wall_s"] >= 0 for m in wall)
