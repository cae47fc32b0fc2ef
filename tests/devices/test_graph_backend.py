"""The graph backend per device (devices/graph_backend.py): inductor on a CPU, CUDA graphs on
CUDA, torchair's modes on an NPU (devices/npu_graph.py)."""

import pytest

from pytest_npuperf.devices.graph_backend import cpu_compiler, select_backend
from pytest_npuperf.stack import compat


def test_cpu_graph_mode_without_a_compiler_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(compat.Unsupported, match="no C.. compiler.*apt-get install g\\+\\+"):
        cpu_compiler()
    with pytest.raises(compat.Unsupported):
        select_backend("cpu", "AMD EPYC")


def test_cuda_backend_is_cuda_graphs_fullgraph_static():
    backend = select_backend("cuda", "NVIDIA H100 80GB HBM3")
    assert backend.name == "inductor-cudagraphs"
    assert backend.compile_kwargs == {"backend": "inductor", "mode": "reduce-overhead", "fullgraph": True,
                                      "dynamic": False}
    assert "reduce-overhead" in backend.description


def test_pinned_backends_are_the_npu_modes():
    from pytest_npuperf.devices.npu_graph import GRAPH_MODES
    from pytest_npuperf.settings import GRAPH_BACKENDS

    assert GRAPH_BACKENDS == ("auto",) + GRAPH_MODES
    with pytest.raises(compat.Unsupported, match="leave the option at auto"):
        select_backend("cuda", "NVIDIA H100", "reduce-overhead")
