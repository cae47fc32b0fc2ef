"""The perf suite's test ids (perf_tests/): the baseline keys."""


def test_suite_ids_keep_eager_and_add_graph(npt):
    """The perf suite's ids: eager ones as before (baseline keys), graph ones end in '-graph'."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "pytest", "perf_tests", "-m", "npu", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "--npuperf-preset", "full", "--npuperf-device", "cpu"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    ids = [line.split("::")[-1] for line in out.stdout.splitlines() if "::" in line]
    assert "test_generate[fp16-bs8-zh_qa]" in ids and "test_generate[fp16-bs8-zh_qa-graph]" in ids
    assert "test_decode[bf16-decode-bs1-ctx512]" in ids and "test_decode[bf16-decode-bs1-ctx512-graph]" in ids
    assert "test_serving[bf16-static-load40]" in ids and "test_serving[bf16-static-graph-load40]" in ids
    assert not [i for i in ids if "-]" in i or "--" in i]
    graph = [i for i in ids if "graph" in i]
    assert len(graph) == 4 * 4 * 5 + 4 * 8 + 2 * 3  # generation, decode steps, static serving (bf16, fp16)
