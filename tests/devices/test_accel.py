"""The accelerator device (devices/accel.py) on the fake torch_npu: event timing of queued device
work, memory figures (an error before the NPU is initialized, never 0), device properties."""

from __future__ import annotations

import pytest
from fakes import torch_npu as fake_torch_npu

from pytest_npuperf.devices import resolve_device
from pytest_npuperf.devices.accel import AcceleratorDevice

GIB = 2**30
LAUNCH_S = fake_torch_npu.LAUNCH_S


def test_event_timer_reports_seconds_from_device_events(fake_npu):
    device, _ = resolve_device("npu")
    timer = device.timer()
    timer.start()
    fake_npu.npu._advance(0.25)  # 250 ms of queued device work
    assert timer.stop() == pytest.approx(0.25)
    assert fake_npu.npu._state.syncs >= 1  # synchronized before the start event


def test_event_timer_measures_queued_device_work_not_the_launches(npu):
    timer = AcceleratorDevice("npu", npu).timer()
    timer.start()
    for _ in range(3):
        npu._launch(0.1)
    assert npu._host_clock() == pytest.approx(3 * LAUNCH_S)  # the host ran ahead
    assert timer.stop() == pytest.approx(0.3 + LAUNCH_S)
    assert npu._host_clock() == pytest.approx(0.3 + LAUNCH_S)  # stop waited for the device


def test_work_queued_before_the_timer_is_not_counted(npu):
    npu._launch(0.5)  # e.g. the end of a warm-up
    timer = AcceleratorDevice("npu", npu).timer()
    timer.start()  # synchronizes first
    npu._launch(0.1)
    assert timer.stop() == pytest.approx(0.1 + LAUNCH_S)


def test_memory_before_init_is_an_error_not_zero(monkeypatch):
    mod = fake_torch_npu.build()
    device = AcceleratorDevice("npu", mod.npu)
    assert mod.npu.max_memory_allocated() == 0  # the documented quirk
    with pytest.raises(RuntimeError, match="memory_stats\\(\\) is empty"):
        device.memory()


def test_set_device_does_not_initialise_the_allocator_statistics():
    npu = fake_torch_npu.build().npu
    npu.set_device(0)
    assert npu.memory_stats() == {} and npu.max_memory_allocated() == 0
    device = AcceleratorDevice("npu", npu, 0)
    with pytest.raises(RuntimeError, match="not initialized"):
        device.memory()  # fails loudly instead of reporting 0 bytes
    npu.synchronize()
    assert device.memory()["peak_allocated_bytes"] == 0


def test_memory_peak_reset_and_device_wide_usage(fake_npu):
    device, _ = resolve_device("npu")
    npu = fake_npu.npu
    npu._allocate(10 * GIB)  # weights
    npu._allocate(2 * GIB)  # activations of a first run
    npu._free(2 * GIB)
    device.reset_peak_memory()
    npu._allocate(1 * GIB)
    mem = device.memory()
    assert mem["peak_allocated_bytes"] == 11 * GIB
    assert mem["peak_reserved_bytes"] == 12 * GIB
    assert mem["device_used_bytes"] == 12 * GIB + 3 * GIB  # includes what the allocator cannot see
    assert mem["peak_rss_bytes"] is None


def test_device_info_handles_old_and_new_properties(monkeypatch):
    old = AcceleratorDevice("npu", fake_torch_npu.build().npu).info()
    new = AcceleratorDevice("npu", fake_torch_npu.build(new_props=True).npu).info()
    assert "device_cube_core_num" not in old
    assert new["device_cube_core_num"] == 24
    assert old["device_total_memory_bytes"] == 64 * GIB


def test_a_missing_peak_key_is_a_measurement_error_never_zero_bytes(fake_npu, monkeypatch):
    from pytest_npuperf.errors import MeasurementError

    device, _ = resolve_device("npu")
    fake_npu.npu._allocate(1 * GIB)
    stats = fake_npu.npu.memory_stats
    monkeypatch.setattr(fake_npu.npu, "memory_stats",
                        lambda index=None: {k: v for k, v in stats(index).items() if k != "allocated_bytes.all.peak"})
    with pytest.raises(MeasurementError, match=r"has no allocated_bytes\.all\.peak: the peak memory of this run "
                                               r"cannot be read, and 0 bytes would pass any memory gate"):
        device.memory()
