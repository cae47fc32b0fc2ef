"""The fake torch_npu (tests/fakes/torch_npu.py) reproduces the real package's quirks: lazy
initialization, event rules, ASCEND_RT_VISIBLE_DEVICES parsing, a device clock of its own, the
int8 operators' call contracts."""

from __future__ import annotations

import pytest

from fakes import torch_npu as fake_torch_npu

torch = pytest.importorskip("torch")

LAUNCH_S = fake_torch_npu.LAUNCH_S


def test_elapsed_time_requires_recorded_events(fake_npu):
    start, end = fake_npu.npu.Event(enable_timing=True), fake_npu.npu.Event(enable_timing=True)
    start.record()
    with pytest.raises(RuntimeError, match="Both events must be recorded"):
        start.elapsed_time(end)


@pytest.mark.parametrize("call", ["get_device_properties", "is_jit_compile_false"])
def test_calls_that_run_lazy_init(call):
    npu = fake_torch_npu.build().npu
    getattr(npu, call)() if call == "is_jit_compile_false" else getattr(npu, call)(0)
    assert npu.memory_stats() != {}


@pytest.mark.parametrize("value, count", [("0,1x,2", 2), ("1,3", 2), ("x0", 0), ("", 0), ("2", 1), ("0,,1", 1),
                                          ("3,1", 0), ("1,7,2", 1)])
def test_visible_devices_parsing_stops_at_the_first_bad_character(monkeypatch, value, count):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", value)
    assert fake_torch_npu.build(devices=4).npu.device_count() == count


def test_events_are_on_the_device_clock(npu):
    start = npu.Event(enable_timing=True)
    start.record()
    npu._launch(0.2)
    host = npu._host_clock()
    assert not npu.Event(enable_timing=True).query()  # nothing recorded yet
    assert start.recorded_time() - host > 100  # mixing host and device times is visibly wrong
    end = npu.Event(enable_timing=True)
    end.record()
    assert not end.query()  # the device has not got there
    end.synchronize()
    assert end.query() and npu._host_clock() == pytest.approx(0.2 + LAUNCH_S)


def test_fake_rejects_a_wrong_weight_layout(monkeypatch):
    fake = fake_torch_npu.install(monkeypatch)
    x = torch.randn(4, 256, dtype=torch.float16)
    w_nk = torch.randint(-127, 127, (128, 256), dtype=torch.int8)
    with pytest.raises(fake_torch_npu.ContractError, match="pass the .N, K. weight transposed"):
        fake.npu_weight_quant_batchmatmul(x, w_nk, torch.ones(128, dtype=torch.float16))
    with pytest.raises(fake_torch_npu.ContractError, match="antiquant_scale must have x's dtype"):
        fake.npu_weight_quant_batchmatmul(x, w_nk.t(), torch.ones(128, dtype=torch.float32))
    qx, _ = fake.npu_dynamic_quant(x)
    with pytest.raises(fake_torch_npu.ContractError, match="x2 must be .K, N."):
        fake.npu_quant_matmul(qx, w_nk, torch.ones(128), output_dtype=torch.float16)
