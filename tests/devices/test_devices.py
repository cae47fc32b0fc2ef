"""Device resolution and the torch_npu import (devices/__init__.py): the NPU first, clear
reasons when it is absent or broken, one device per xdist worker.

The error texts below are real: the conflict message is raised by torch_npu 2.5.1-2.14's
``__init__`` (tests/stack/test_npu_api_conformance.py checks the phrase in the wheels); the
"cannot import name" one is what torch_npu 2.1.0.post8's ``utils/_dynamo.py`` raises on torch 2.13;
the undefined symbol is vllm-ascend issue #117; the libhccl ones are torch_npu 2.5.1 (with its
appended hint) and 2.14 (without) on a machine without CANN.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from fakes import torch_npu as fake_torch_npu

from pytest_npuperf.devices import DeviceUnavailable, import_error_hint, import_torch_npu, resolve_device

CONFLICT = ("RuntimeError: Two accelerators cannot be used at the same time in PyTorch: npu and cuda. You can "
            "install the cpu version of PyTorch to use your npu device, or use the cuda device with "
            "'export TORCH_DEVICE_BACKEND_AUTOLOAD=0'.\n[ERROR] 2026-11-26-12:00:00 (PID:1, Device:-1, RankID:-1) "
            "ERR00007 PTA feature not supported")

CANNOT_IMPORT = ("ImportError: cannot import name 'TorchVariable' from 'torch._dynamo.variables.torch' "
                 "(/venv/lib/python3.11/site-packages/torch/_dynamo/variables/torch.py)")

UNDEFINED = ("ImportError: /usr/local/python3.10.14/lib/python3.10/site-packages/torch_npu/lib/libtorch_npu.so: "
             "undefined symbol: _ZN3atb15CreateOperationINS_5infer14GroupTopkParamEEEiRKT_PPNS_9OperationE")

NO_CANN_251 = ("ImportError: libhccl.so: cannot open shared object file: No such file or directory. Please check "
               "that the cann package is installed. Please run 'source set_env.sh' in the CANN installation path.")

NO_CANN_214 = "ImportError: libhccl.so: cannot open shared object file: No such file or directory"
CANN_FIX = "CANN is not set up"
MISMATCH_FIX = "does not match the installed torch"
CONFLICT_FIX = "CPU build of torch"


def test_resolve_auto_prefers_npu(fake_npu):
    device, skipped = resolve_device("auto")
    assert device.kind == "npu" and device.torch_device == "npu:0"
    assert device.name() == "Ascend910B3"
    assert device.profile() == "npu-Ascend910B3"
    assert skipped == []


def test_no_visible_npu_is_unavailable_with_reason(fake_npu, monkeypatch):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceUnavailable, match="no NPU is visible.*ASCEND_RT_VISIBLE_DEVICES"):
        resolve_device("npu")
    with pytest.raises(AssertionError):
        fake_npu.npu.get_device_name()  # why the device layer checks the count first


def test_out_of_range_index_raises_assertion_and_the_project_reports_it(monkeypatch):
    mod = fake_torch_npu.install(monkeypatch, devices=1)
    for call in (mod.npu.set_device, mod.npu.get_device_properties, mod.npu.get_device_name):
        with pytest.raises(AssertionError):
            call(1)
    with pytest.raises(DeviceUnavailable, match="NPU index 1 is out of range: 1 NPU"):
        resolve_device("npu", index=1, workers=1)


def test_xdist_two_workers_on_one_device_is_refused(npt):
    pytest.importorskip("xdist")
    npt.fake()
    result = npt.run("-n", "2", NPUPERF_FAKE_DEVICES="1")
    result.assert_outcomes(errors=8)
    result.stdout.fnmatch_lines(["*2 parallel workers but only 1 cpu device(s)*meaningless*-n 1*"])


@pytest.mark.parametrize(
    "message, fix",
    [(CONFLICT, CONFLICT_FIX), (CANNOT_IMPORT, MISMATCH_FIX), (UNDEFINED, MISMATCH_FIX),
     (NO_CANN_251, CANN_FIX), (NO_CANN_214, CANN_FIX)],
    ids=["two-accelerators", "cannot-import-name", "undefined-symbol", "no-cann-2.5.1", "no-cann-2.14"],
)
def test_each_import_failure_gets_its_own_hint(message, fix):
    hint = import_error_hint(message)
    assert fix in hint
    others = {CANN_FIX, MISMATCH_FIX, CONFLICT_FIX} - {fix}
    assert not any(other in hint for other in others)


def test_mismatch_hint_names_the_versions(monkeypatch):
    from importlib import metadata

    versions = {"torch-npu": "2.5.1", "torch": "2.13.0+cpu"}
    monkeypatch.setattr(metadata, "version", lambda name: versions[name])
    monkeypatch.setattr(metadata, "requires", lambda name: ["torch (==2.5.1+cpu)", "torch_npu_extra ; extra == 'x'"])
    assert "(torch_npu 2.5.1 requires torch(==2.5.1+cpu), installed torch is 2.13.0+cpu)" in import_error_hint(CANNOT_IMPORT)


def test_the_conflict_error_from_import_is_reported_with_its_fix(tmp_path, monkeypatch):
    pkg = tmp_path / "torch_npu"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"raise RuntimeError({CONFLICT.partition(': ')[2]!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    with pytest.raises(DeviceUnavailable) as info:
        import_torch_npu()
    assert "Two accelerators cannot be used" in str(info.value) and CONFLICT_FIX in str(info.value)
    assert CANN_FIX not in str(info.value)


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


def test_auto_fails_when_an_accelerator_is_installed_but_torch_cannot_use_it(monkeypatch):
    """A broken ``import torch_npu`` after an upgrade must not turn the nightly job into a CPU run."""
    import pytest_npuperf.devices as devices

    monkeypatch.setattr(devices, "hardware_present", lambda kind: "/dev/davinci0" if kind == "npu" else "")
    with pytest.raises(devices.DeviceBroken, match=r"this machine has a NPU \(/dev/davinci0\) but torch cannot use "
                                                   r"it: torch_npu is not installed .*pass --npuperf-device cpu"):
        devices.resolve_device("auto")
    device, _ = devices.resolve_device("cpu")  # the CPU on purpose: allowed
    assert device.kind == "cpu"


def test_hardware_signs_are_device_files_or_the_vendor_tool(tmp_path, monkeypatch):
    import pytest_npuperf.devices as devices

    monkeypatch.setitem(devices.HARDWARE_SIGNS, "npu", (str(tmp_path / "davinci[0-9]*"), "no-such-npu-smi"))
    assert devices.hardware_present("npu") == ""
    (tmp_path / "davinci0").touch()
    (tmp_path / "davinci_manager").touch()  # not a device: no digit
    assert devices.hardware_present("npu") == str(tmp_path / "davinci0")
    monkeypatch.setitem(devices.HARDWARE_SIGNS, "npu", (str(tmp_path / "none[0-9]*"), "sh"))
    assert devices.hardware_present("npu") == "sh on PATH"
