"""The Markdown summary and the pytest-benchmark JSON (report/export.py)."""

import json
import re
import subprocess
import sys

from support.results import WALL, graph_doc

from pytest_npuperf.report.export import markdown_summary

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
    assert re.fullmatch(r"  - e2e_s: baseline [0-9.]+ms -> now [0-9.]+ms, \+[23]\d\.\d% worse, at least \+[23]\d\.\d%, "
                        r"at most \+[23]\d\.\d% \(95%\), budget 3\.0%, 1 \+ 1 processes \(5 \+ 5 samples\), .*",
                        lines[start + 3])
    assert "  - stack changes since the baseline: none recorded" in lines[start:]
    counts = lines.index("| kind | tests | verdicts |")
    assert counts > start and re.fullmatch(r"\| generation \| 8 \| ❌ REGRESSED 1, .*✔️ OK \d \|", lines[counts + 2])
    table = next(i for i, line in enumerate(lines)
                 if line.startswith("### Generation, en_qa: output tokens/s and e2e latency (change vs baseline"))
    assert table > counts and lines[table + 2] == "| precision | bs1 | bs8 |"
    assert re.fullmatch(r"\| bf16 \| .* \| [0-9.]+ \(-[12]\d\.\d%\) tok/s<br>[0-9.]+ms \(\+[23]\d\.\d%\)"
                        r"(<br>decode [0-9.]+% copy, - peak)? \|", lines[table + 5])


def test_markdown_has_wall_time_modes_side_by_side_decode_fraction_and_graph_table():
    lines = markdown_summary(graph_doc()).splitlines()
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


def test_benchmark_json_carries_the_wall_time_per_mode():
    from pytest_npuperf.report.export import benchmark_json

    assert benchmark_json(graph_doc())["machine_info"]["npuperf_wall_time"] == WALL
