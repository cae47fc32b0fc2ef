"""The fake torchair (tests/fakes/torchair.py): the real config's rules, and a context manager
that installs and removes the whole fake stack."""

from __future__ import annotations

import sys
from typing import Any, Dict

import pytest

from fakes import torch_npu as fake_torch_npu
from fakes import torchair as fake_torchair
from pytest_npuperf.devices import npu_graph

A2, A3 = "Ascend910B3", "Ascend910_9391"


def _stack(monkeypatch: pytest.MonkeyPatch, version: str = "2.14.0", soc: str = A2,
           bundled: bool = True) -> Dict[str, Any]:
    npu = fake_torch_npu.install(monkeypatch, version=version, soc=soc)
    return fake_torchair.install(monkeypatch, version=version, bundled=bundled, torch_npu=npu)


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
