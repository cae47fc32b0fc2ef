"""Graph mode on an NPU (devices/npu_graph.py) against the fake torch_npu + torchair of each release."""

from __future__ import annotations

import sys
import warnings
from typing import Any, Dict, Iterator

import pytest
from fakes import torch_npu as fake_torch_npu
from fakes import torchair as fake_torchair

from pytest_npuperf.devices import npu_graph
from pytest_npuperf.devices.graph_backend import select_backend
from pytest_npuperf.stack import fingerprint
from pytest_npuperf.stack.compat import Unsupported

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


def test_the_fake_rejects_what_the_real_config_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    mods = _stack(monkeypatch, "2.8.0")
    config = mods["torchair"].CompilerConfig()
    with pytest.raises(ValueError, match="not in optional list"):
        config.mode = "npugraph_ex"
    with pytest.raises(ValueError, match="has no option"):
        config.npugraphex_config = None
    with pytest.raises(TypeError):
        mods["torchair"].get_npu_backend(config)  # keyword-only, as in every release


def test_the_context_manager_installs_and_removes_the_whole_fake_stack() -> None:
    import torch

    with fake_torchair.installed("2.5.1", soc=A3) as (torch_npu, mods):
        assert set(mods) == {"torchair"}  # npugraph_ex arrived in 2.11
        assert torch.npu is torch_npu.npu and sys.modules["torch_npu.dynamo.torchair"] is mods["torchair"]
        assert npu_graph.npu_backend(torch_npu.npu.get_device_name()).name == "torchair-reduce-overhead"
    assert not any(name in sys.modules for name in ("torch_npu", "torchair", "npugraph_ex", "torch_npu.dynamo"))
    assert not hasattr(torch, "npu")


def test_the_session_helper_makes_the_fake_torchair_importable() -> None:
    from fakes import npu_session as fake_npu_session

    fake_npu_session.install()
    try:
        import npugraph_ex
        import torchair

        assert torchair.CompilerConfig().mode.value == "max-autotune"
        assert npugraph_ex.CompilerConfig().mode.value == "npugraph_ex"
    finally:
        fake_npu_session.uninstall()
    assert "torchair" not in sys.modules and "npugraph_ex" not in sys.modules


# --- the fingerprint ---------------------------------------------------------------------------

def _torch_npu_files(tmp_path: Any, *packages: str) -> str:
    root = tmp_path / "torch_npu"
    for package in packages:
        (root / "dynamo" / package).mkdir(parents=True)
        (root / "dynamo" / package / "__init__.py").write_text("")
    return str(root / "__init__.py")


def test_fingerprint_records_the_bundled_torchair_and_npugraph_ex(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Any) -> None:
    npu = fake_torch_npu.install(monkeypatch, version="2.14.0")
    monkeypatch.setattr(npu, "__file__", _torch_npu_files(tmp_path, "torchair", "npugraph_ex"), raising=False)
    stack = fingerprint.collect("npu", {}, environ={})
    assert (stack["torchair"], stack["torchair_source"], stack["npugraph_ex"]) == (
        "2.14.0", "bundled in torch_npu", True)


def test_fingerprint_without_torchair_records_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    npu = fake_torch_npu.install(monkeypatch, version="2.8.0")
    monkeypatch.setattr(npu, "__file__", _torch_npu_files(tmp_path), raising=False)
    monkeypatch.setattr(fingerprint, "package_version", lambda *names: None)
    stack = fingerprint.collect("npu", {}, environ={})
    assert "torchair" not in stack and "npugraph_ex" not in stack
