"""Graph mode through the whole plugin on the fake NPU (``--npuperf-device npu --npuperf-mode all``).

The run's conftest installs the real-time fake torch_npu of a release with that release's fake
torchair (tests/fakes/npu_session.py); the plugin resolves the NPU, picks the graph backend the
release and chip imply (devices/npu_graph.py), compiles the tiny model's decode step with it
(the fake backend records every graph dynamo hands it, then runs it eagerly) and measures a
graph-mode generation and decode step next to an eager generation. Before the fake is removed
the conftest writes what the fake backends received to ``backends.json``.

Device times are a few milliseconds, so the run is quick; nothing here asserts a timing.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import fakes
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

# Imported before pytester takes its snapshot of sys.modules: it drops the modules an in-process
# run imported, and these register global artifacts on import, which fails the second time.
import torch._dynamo.repro.after_dynamo
import torch._inductor.codecache
import torch._inductor.utils  # noqa: F401

SUITE = """
import pytest

pytestmark = pytest.mark.npu

def test_eager(npuperf):
    npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa")

def test_graph(npuperf):
    npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa", mode="graph")

def test_graph_decode(npuperf):
    npuperf.step("decode", "bf16", 1, 64, mode="graph")
"""

CONFTEST = fakes.sys_path_line() + """
import json

from fakes import npu_session


def pytest_configure(config):
    npu_session.install()


def pytest_unconfigure(config):
    found = []
    for package in ("torchair", "npugraph_ex"):
        module = sys.modules.get(package)
        for backend in getattr(module, "backends", []):
            found.append({
                "package": backend.package,
                "mode": backend.mode,
                "custom_decompositions": len(backend.custom_decompositions),
                "graphs": [{"symbolic": g["symbolic"], "kwargs": sorted(g["kwargs"]),
                             "ops": sorted({str(n.target) for n in g["graph"].graph.nodes
                                            if n.op == "call_function"})} for g in backend.graphs],
            })
    with open("backends.json", "w", encoding="utf-8") as out:
        json.dump(found, out)
    npu_session.uninstall()
"""

A2 = "Ascend910B3"
# (release, chip) -> the backend that release and chip imply, and the mode its config carries.
CASES = {
    "2.5.1-A2": ("2.5.1", A2, "torchair-reduce-overhead", "torchair", "reduce-overhead", False),
    "2.14.0-A2": ("2.14.0", A2, "npugraph_ex", "npugraph_ex", "npugraph_ex", True),
    "2.1.0.post8-A2": ("2.1.0.post8", A2, "torchair-max-autotune", "torchair", None, False),  # no mode option: GE
    "2.5.1-310P": ("2.5.1", "Ascend310P3", "torchair-max-autotune", "torchair", "max-autotune", False),
}
COMMON = ("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-max-new-tokens", "4",
          "--npuperf-mode", "all", "--npuperf-warmup", "1", "--npuperf-runs", "3", "--npuperf-processes", "1",
          "--npuperf-save-baseline", "-rs")
FAST = {"NPUPERF_FAKE_NPU_PREFILL_S": "0.003", "NPUPERF_FAKE_NPU_DECODE_S": "0.002", "NPUPERF_FAKE_NPU_OP_S": "0.001"}


@pytest.fixture(scope="module")
def graph_capable() -> None:
    """Skip, with compat's reason, where the installed torch / transformers cannot run graph mode
    at all (transformers 4.40 has no static cache for Mistral; torch 2.6 cannot capture
    transformers 5's forward): the suite skips those graph tests the same way."""
    from support.skips import require

    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision
    from pytest_npuperf.stack import compat

    require(compat.require_graph_mode, load_model("tiny", get_precision("bf16"), "cpu").model)


@pytest.fixture
def graph_run(npt: Any) -> Any:
    npt.pytester.makeconftest(CONFTEST)
    npt.pytester.makepyfile(test_perf=SUITE)
    return npt


def _run(graph_run: Any, release: str, soc: str, **env: str) -> Any:
    return graph_run.run(*COMMON, NPUPERF_FAKE_NPU_RELEASE=release, NPUPERF_FAKE_NPU_SOC=soc, **FAST, **env)


def _tests(graph_run: Any) -> Dict[str, Dict[str, Any]]:
    tests = json.loads((graph_run.path / "results.json").read_text(encoding="utf-8"))["tests"]
    return {t["test_id"].rpartition("::")[2]: t["result"] for t in tests}


def _backends(graph_run: Any) -> List[Dict[str, Any]]:
    return json.loads((graph_run.path / "backends.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", list(CASES))
def test_graph_generation_and_decode_step_on_the_fake_npu(graph_capable: None, graph_run: Any, case: str) -> None:
    release, soc, name, package, mode, npugraph_ex = CASES[case]
    result = _run(graph_run, release, soc)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"*npuperf device: npu ({soc})*"])
    tests = _tests(graph_run)
    eager = tests["test_eager"]
    assert eager["extra"]["execution_mode"] == "eager" and "graph" not in eager["extra"]
    assert eager["workload"]["graph"] == ""
    entry = "npugraph_ex.get_npu_backend" if package == "npugraph_ex" else "torchair.get_npu_backend"
    config = f"CompilerConfig(mode={mode or 'max-autotune'})"
    for test_name in ("test_graph", "test_graph_decode"):
        graph = tests[test_name]
        summary = graph["extra"]["graph"]
        assert graph["extra"]["execution_mode"] == "graph"
        assert graph["extra"]["device_kind"] == "npu"
        # the chosen backend, its settings and the compiled shape are the workload's identity
        assert summary["backend"] == name
        assert summary["description"].startswith(f"torch.compile(backend={entry}(compiler_config={config})")
        assert "fullgraph=True, dynamic=False" in summary["description"]
        assert graph["workload"]["graph"].startswith(summary["description"] + "; decode shapes (rows x cache) 1x1024")
        assert summary["versions"] == {"torch_npu": release, "torchair": release}  # the copy bundled in torch_npu
        # compile figures on every sample
        assert summary["graphs"] >= 1 and summary["compile_s"] >= 0.0
        for sample in graph["samples"]:
            assert sample["graph_compiles"] == summary["graphs"] and sample["compile_s"] >= 0.0
        # agreement with eager on the same weights
        agreement = summary["agreement"]
        assert agreement["logits_cosine"] >= 0.999 and "cosine >=" in agreement["tolerance"]
        # the stack fingerprint says which torchair compiled it
        assert graph["stack"]["torchair"] == release
        assert graph["stack"]["torchair_source"] == "bundled in torch_npu"
        assert graph["stack"]["npugraph_ex"] is npugraph_ex
    assert tests["test_graph"]["extra"]["graph"]["agreement"]["greedy_token_agreement"] == 1.0
    assert tests["test_graph"]["workload"]["mode"] != eager["workload"]["mode"]

    backends = _backends(graph_run)
    assert backends, "the fake torchair made no backend"
    for backend in backends:  # every backend the plugin built: the package and mode the release implies
        assert (backend["package"], backend["mode"]) == (package, mode)
        assert backend["custom_decompositions"] == 0
    graphs = [g for b in backends for g in b["graphs"]]
    decode_graphs = [g for g in graphs if any("embedding" in op for op in g["ops"])]
    assert decode_graphs, [g["ops"] for g in graphs]  # the model's forward reached the NPU backend
    assert not any(g["symbolic"] for g in graphs)  # static shapes: dynamic=False
    # fullgraph: the model's whole forward is one graph (a graph break would have failed the
    # compile). Both tests run the 1 x 1024 shape, compiled once per model: the graphs the NPU
    # backend got are the graphs the samples report (a recompilation in a warm-up would be a graph
    # whose compile time and count nobody reports, yet the one timed).
    assert len(decode_graphs) == tests["test_graph"]["extra"]["graph"]["graphs"] == 1
    assert tests["test_graph_decode"]["extra"]["graph"]["graphs"] == 1


def test_without_torchair_the_graph_tests_are_skipped_with_the_reason(graph_run: Any) -> None:
    result = _run(graph_run, "2.8.0", A2, NPUPERF_FAKE_NPU_NO_TORCHAIR="1")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*graph mode on an NPU needs torchair, which torch_npu 2.8.0 does not provide*"])
    tests = _tests(graph_run)
    assert set(tests) == {"test_eager"}  # skipped tests are not recorded
    assert tests["test_eager"]["extra"]["execution_mode"] == "eager"
    assert "torchair" not in tests["test_eager"]["stack"]
    assert _backends(graph_run) == []


INT8_SUITE = """
import pytest

pytestmark = pytest.mark.npu

def test_graph_decode(npuperf):
    npuperf.step("decode", "int8-w8a8", 1, 64, mode="graph")
"""


def test_int8_npu_kernels_run_inside_the_graph(graph_capable: None, graph_run: Any) -> None:
    graph_run.pytester.makepyfile(test_perf=INT8_SUITE)
    result = _run(graph_run, "2.14.0", A2)
    result.assert_outcomes(passed=1)
    test = _tests(graph_run)["test_graph_decode"]
    # The eager int8 operators run inside the graph (quant.GRAPH_KERNELS has no NPU form). The fake's
    # operators are Python and traced through: this proves the plugin's side (one static graph, no
    # recompilation, agreement with eager), not how dynamo traces the real torch_npu operators.
    assert test["workload"]["quant_kernel"] == "torch_npu.npu_dynamic_quant + npu_quant_matmul"
    summary = test["extra"]["graph"]
    assert (summary["backend"], summary["graphs"]) == ("npugraph_ex", 1)
    assert summary["agreement"]["logits_cosine"] >= 0.999
    decode_graphs = [g for b in _backends(graph_run) for g in b["graphs"] if any("embedding" in op for op in g["ops"])]
    assert len(decode_graphs) == 1 and not decode_graphs[0]["symbolic"]
