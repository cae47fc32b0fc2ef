"""The NPU device path against a fake torch_npu that reproduces the documented quirks."""

import sys
import textwrap

import pytest
from fakes import torch_npu as fake_torch_npu

from pytest_npuperf.devices import DeviceUnavailable, import_torch_npu, resolve_device
from pytest_npuperf.devices.accel import AcceleratorDevice
from pytest_npuperf.stack import fingerprint

GIB = 2**30


@pytest.fixture
def fake_npu(monkeypatch):
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    return fake_torch_npu.install(monkeypatch)


def test_resolve_auto_prefers_npu(fake_npu):
    device, skipped = resolve_device("auto")
    assert device.kind == "npu" and device.torch_device == "npu:0"
    assert device.name() == "Ascend910B3"
    assert device.profile() == "npu-Ascend910B3"
    assert skipped == []


def test_event_timer_reports_seconds_from_device_events(fake_npu):
    device, _ = resolve_device("npu")
    timer = device.timer()
    timer.start()
    fake_npu.npu._advance(0.25)  # 250 ms of queued device work
    assert timer.stop() == pytest.approx(0.25)
    assert fake_npu.npu._state.syncs >= 1  # synchronized before the start event


def test_elapsed_time_requires_recorded_events(fake_npu):
    start, end = fake_npu.npu.Event(enable_timing=True), fake_npu.npu.Event(enable_timing=True)
    start.record()
    with pytest.raises(RuntimeError, match="Both events must be recorded"):
        start.elapsed_time(end)


def test_memory_before_init_is_an_error_not_zero(monkeypatch):
    mod = fake_torch_npu.build()
    device = AcceleratorDevice("npu", mod.npu)
    assert mod.npu.max_memory_allocated() == 0  # the documented quirk
    with pytest.raises(RuntimeError, match="memory_stats\\(\\) is empty"):
        device.memory()


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


def test_no_visible_npu_is_unavailable_with_reason(fake_npu, monkeypatch):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceUnavailable, match="no NPU is visible.*ASCEND_RT_VISIBLE_DEVICES"):
        resolve_device("npu")
    with pytest.raises(AssertionError):
        fake_npu.npu.get_device_name()  # why the device layer checks the count first


def test_device_info_handles_old_and_new_properties(monkeypatch):
    old = AcceleratorDevice("npu", fake_torch_npu.build().npu).info()
    new = AcceleratorDevice("npu", fake_torch_npu.build(new_props=True).npu).info()
    assert "device_cube_core_num" not in old
    assert new["device_cube_core_num"] == 24
    assert old["device_total_memory_bytes"] == 64 * GIB


def test_fingerprint_reads_cann_through_the_api(fake_npu, tmp_path):
    stack = fingerprint.collect("npu", {"device_name": "Ascend910B3"}, environ={"TASK_QUEUE_ENABLE": "2"})
    assert stack["cann_version"] == "8.3.RC1"
    assert stack["npu_jit_compile"] is False
    assert stack["env"] == {"TASK_QUEUE_ENABLE": "2"}


def _broken_torch_npu(tmp_path, monkeypatch, message):
    pkg = tmp_path / "torch_npu"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)


def test_torch_npu_without_cann_names_set_env(tmp_path, monkeypatch):
    _broken_torch_npu(tmp_path, monkeypatch, "libhccl.so: cannot open shared object file: No such file or directory")
    with pytest.raises(DeviceUnavailable, match="libhccl.so.*source /usr/local/Ascend/.*set_env.sh"):
        import_torch_npu()
    device, skipped = resolve_device("auto")
    assert device.kind in ("cuda", "cpu")
    assert skipped and skipped[0].startswith("npu: import torch_npu failed (ImportError: libhccl.so")


def test_torch_npu_not_installed(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(DeviceUnavailable, match="torch_npu is not installed"):
        import_torch_npu()


def test_npu_request_without_cann_skips_perf_tests(npt, tmp_path, monkeypatch):
    _broken_torch_npu(tmp_path, monkeypatch, "libascendcl.so: cannot open shared object file")
    npt.pytester.makepyfile(
        test_perf=textwrap.dedent(
            """
            def test_generate(npuperf):
                npuperf.generate(precision='fp16', batch_size=1, workload='zh_qa')
            """
        )
    )
    result = npt.run("--npuperf-device", "npu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*npuperf device: unavailable: --npuperf-device npu: import torch_npu failed*",
                                 "SKIPPED*--npuperf-device npu: import torch_npu failed (ImportError: libascendcl.so*set_env.sh*"])


def test_ascend_version_files(tmp_path):
    root = tmp_path / "Ascend"
    (root / "cann" / "aarch64-linux").mkdir(parents=True)
    (root / "cann" / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.5.0\narch=aarch64\n")
    (root / "driver").mkdir()
    (root / "driver" / "version.info").write_text("Version=24.1.rc1\npackage_version=24.1.rc1\n")
    versions = fingerprint.ascend_versions({}, root=str(root))
    assert versions == {"cann_version": "8.5.0", "cann_ops_version": None, "driver_version": "24.1.rc1",
                        "firmware_version": None}


def test_old_cann_layout_version_cfg(tmp_path):
    home = tmp_path / "latest"
    home.mkdir()
    (home / "version.cfg").write_text("runtime_running_version=[7.3.0.1.231:8.0.RC2]\n")
    versions = fingerprint.ascend_versions({"ASCEND_HOME_PATH": str(home)}, root=str(tmp_path / "none"))
    assert versions["cann_version"] == "8.0.RC2"
    assert versions["driver_version"] is None


def test_env_snapshot_redacts_secrets():
    snap = fingerprint.env_snapshot({"HCCL_BUFFSIZE": "200", "ASCEND_TOKEN": "abc", "HOME": "/root"})
    assert snap == {"ASCEND_TOKEN": "<redacted>", "HCCL_BUFFSIZE": "200"}
