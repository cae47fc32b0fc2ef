"""Graph mode on an NPU (devices/npu_graph.py) against the fake torch_npu + torchair of each release,
then through the whole plugin on the fake NPU (``--npuperf-device npu --npuperf-mode all``).

The plugin runs' conftest installs the real-time fake torch_npu of a release with that release's
fake torchair (tests/fakes/npu_session.py); the plugin resolves the NPU, picks the graph backend
the release and chip imply, compiles the tiny model's decode step with it (the fake backend
records every graph dynamo hands it, then runs it eagerly) and measures a graph-mode generation
and decode step next to an eager generation. Before the fake is removed the conftest writes what
the fake backends received to ``backends.json``. Device times are a few milliseconds, so the runs
are quick; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any, Dict, Iterator, List

import fakes
import pytest
from fakes import torch_npu as fake_torch_npu
from fakes import torchair as fake_torchair

from pytest_npuperf.devices import npu_graph
from pytest_npuperf.devices.graph_backend import select_backend
from pytest_npuperf.stack.compat import Unsupported

pytest.importorskip("torch")
pytest.importorskip("transformers")

# Imported before pytester takes its snapshot of sys.modules: it drops the modules an in-process
# run imported, and these register global artifacts on import, which fails the second time.
import torch._dynamo.repro.after_dynamo
import torch._inductor.codecache
import torch._inductor.utils  # noqa: F401

A2, A3, DUO, TRAINING = "Ascend910B3", "Ascend910_9391", "Ascend310P3", "Ascend910A"


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    import torch._dynamo

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _stack(monkeypatch: pytest.MonkeyPatch, version: str = "2.14.0", soc: str = A2,
           bundled: bool = True) -> Dict[str, Any]:
    npu = fake_torch_npu.install(monkeypatch, version=version, soc=soc)
    return fake_torchair.install(monkeypatch, version=version, bundled=bundled, torch_npu=npu)


def _quietly(mode: Any, soc: str = A2) -> Any:
    """npu_backend without torchair's reduce-overhead deprecation warning (asserted elsewhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return npu_graph.npu_backend(soc, mode)


# --- which backend, per release and chip ---------------------------------------------------

@pytest.mark.parametrize(
    "version, soc, name, mode",
    [
        ("2.14.0", A2, "npugraph_ex", "npugraph_ex"),
        ("2.11.0", A3, "npugraph_ex", "npugraph_ex"),
        ("2.8.0", A2, "torchair-reduce-overhead", "reduce-overhead"),
        ("2.5.1", A3, "torchair-reduce-overhead", "reduce-overhead"),
        ("2.1.0.post12", A2, "torchair-reduce-overhead", "reduce-overhead"),
        ("2.1.0.post10", A2, "torchair-max-autotune", None),  # no mode option: GE graphs only
        ("2.1.0.post8", A3, "torchair-max-autotune", None),
        ("2.14.0", DUO, "torchair-max-autotune", "max-autotune"),  # aclgraph: Atlas A2/A3 only
        ("2.8.0", TRAINING, "torchair-max-autotune", "max-autotune"),
    ],
)
def test_the_preferred_mode_the_release_and_chip_support(monkeypatch: pytest.MonkeyPatch, version: str, soc: str,
                                                         name: str, mode: Any) -> None:
    mods = _stack(monkeypatch, version, soc)
    backend = _quietly(None, soc)
    assert backend.name == name
    package = mods["npugraph_ex" if name == "npugraph_ex" else "torchair"]
    made = package.backends[-1]
    assert backend.compile_kwargs == {"backend": made, "fullgraph": True, "dynamic": False}
    assert made.mode == mode  # the config the fake got (None: the release has no mode option)
    assert backend.versions == {"torch_npu": version, "torchair": version}


def test_torchair_warns_on_reduce_overhead_from_2_11_which_is_why_npugraph_ex_comes_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _stack(monkeypatch, "2.14.0")
    with pytest.warns(DeprecationWarning, match="npugraph_ex"):
        npu_graph.npu_backend(A2, "reduce-overhead")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert npu_graph.npu_backend(A2).name == "npugraph_ex"


def test_select_backend_hands_the_npu_to_torchair(monkeypatch: pytest.MonkeyPatch) -> None:
    _stack(monkeypatch, "2.8.0", A3)
    assert select_backend("npu", A3).name == "torchair-reduce-overhead"


# --- Unsupported, with the reason and the fix ------------------------------------------------

@pytest.mark.parametrize(
    "version, soc, mode, phrases",
    [
        ("2.1.0.post10", A2, "reduce-overhead", ["2.1.0.post10", "has no mode option", "2.1.0.post12", "upgrade"]),
        ("2.8.0", A2, "npugraph_ex", ["not in torch_npu 2.8.0", "2.11.0", "upgrade"]),
        ("2.14.0", DUO, "reduce-overhead", ["Atlas A2", "Atlas A3", DUO, "max-autotune"]),
        ("2.14.0", TRAINING, "npugraph_ex", ["aclgraph", TRAINING, "--npuperf-mode eager"]),
    ],
)
def test_a_mode_the_release_or_chip_lacks_is_unsupported(monkeypatch: pytest.MonkeyPatch, version: str, soc: str,
                                                          mode: str, phrases: list) -> None:
    _stack(monkeypatch, version, soc)
    with pytest.raises(Unsupported) as info:
        _quietly(mode, soc)
    for phrase in phrases:
        assert phrase in str(info.value)


def test_torch_npu_without_torchair_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    _stack(monkeypatch, "2.5.1", bundled=False)
    with pytest.raises(Unsupported, match=r"needs torchair, which torch_npu 2\.5\.1 does not provide .*"
                                          r"torch_npu/dynamo/torchair.*--npuperf-mode eager"):
        npu_graph.npu_backend(A2)


def test_torch_npu_that_does_not_import_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    with pytest.raises(Unsupported, match="needs torch_npu, whose import failed"):
        npu_graph.npu_backend(A2)


def test_a_broken_npugraph_ex_is_reported_not_replaced_by_another_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A release that ships the backend and cannot load it fails the test (GraphError, a
    measurement error): a broken install must not turn the graph tests into skips."""
    from pytest_npuperf.errors import GraphError

    mods = _stack(monkeypatch, "2.14.0")

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("aclgraph runtime not found\nmore detail")

    monkeypatch.setattr(mods["npugraph_ex"], "get_npu_backend", broken)
    with pytest.raises(GraphError, match="ships npugraph_ex, but it failed to load: RuntimeError: aclgraph runtime"):
        npu_graph.npu_backend(A2)
    assert not isinstance(GraphError("x"), Unsupported)
    assert mods["torchair"].backends == []


def test_an_unknown_mode_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _stack(monkeypatch)
    with pytest.raises(ValueError, match="unknown NPU graph mode 'default'"):
        npu_graph.npu_backend(A2, "default")


# --- the workload identity -------------------------------------------------------------------

def test_the_description_names_every_setting_and_changes_with_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    _stack(monkeypatch, "2.14.0")
    backends = {mode: _quietly(mode) for mode in npu_graph.GRAPH_MODES}
    assert len({b.description for b in backends.values()}) == len(backends)
    assert len({b.name for b in backends.values()}) == len(backends)
    for mode, backend in backends.items():
        for setting in (f"mode={mode}", "fullgraph=True", "dynamic=False", "get_npu_backend"):
            assert setting in backend.description
    assert backends["npugraph_ex"].description.startswith("torch.compile(backend=npugraph_ex.get_npu_backend(")
    assert backends["max-autotune"].description.startswith("torch.compile(backend=torchair.get_npu_backend(")


def test_the_same_mode_on_another_release_is_the_same_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch_npu upgrade is what the gate measures: it changes versions, not the identity."""
    seen = []
    for version in ("2.1.0.post8", "2.8.0"):
        with monkeypatch.context() as m:
            _stack(m, version, DUO)
            seen.append(npu_graph.npu_backend(DUO))
    assert seen[0].description == seen[1].description
    assert seen[0].name == seen[1].name == "torchair-max-autotune"
    assert seen[0].versions != seen[1].versions


# --- end to end: torch.compile with the backend, on CPU tensors -----------------------------

def _decode_step(x: Any, w: Any) -> Any:
    import torch

    return torch.nn.functional.silu(x @ w) + x.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("version, soc", [("2.14.0", A2), ("2.8.0", A3), ("2.1.0.post8", A2)])
def test_torch_compile_runs_the_function_through_the_fake_backend(monkeypatch: pytest.MonkeyPatch, version: str,
                                                                   soc: str) -> None:
    import torch

    mods = _stack(monkeypatch, version, soc)
    backend = _quietly(None, soc)
    compiled = torch.compile(_decode_step, **backend.compile_kwargs)
    x, w = torch.randn(2, 8), torch.randn(8, 8)
    torch.testing.assert_close(compiled(x, w), _decode_step(x, w))
    made = backend.compile_kwargs["backend"]
    assert made in mods["npugraph_ex" if backend.name == "npugraph_ex" else "torchair"].backends
    assert len(made.graphs) == 1
    graph = made.graphs[0]
    assert [tuple(t.shape) for t in graph["example_inputs"]] == [(2, 8), (8, 8)]
    assert not graph["symbolic"]
    # dynamic=False: a new batch size is a new static graph, never a symbolic one.
    x4 = torch.randn(4, 8)
    torch.testing.assert_close(compiled(x4, w), _decode_step(x4, w))
    assert len(made.graphs) == 2 and not made.graphs[1]["symbolic"]


def test_fullgraph_makes_a_graph_break_an_error_not_a_partial_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    _stack(monkeypatch, "2.14.0")
    backend = npu_graph.npu_backend(A2)

    def with_break(x: Any) -> Any:
        y = x * 2
        torch._dynamo.graph_break()
        return y + 1

    compiled = torch.compile(with_break, **backend.compile_kwargs)
    with pytest.raises(Exception, match="(?i)graph.break"):
        compiled(torch.ones(3))
    assert backend.compile_kwargs["backend"].graphs == []


# --- through the whole plugin on the fake NPU (the real-time fake of tests/fakes/npu_session.py) --

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
