"""What the real torch_npu does that the project must cope with (issue 14, item 3).

The error texts below are real: the conflict message is raised by torch_npu 2.5.1-2.14's
``__init__`` (tests/test_npu_conformance.py checks the phrase in the wheels); the
"cannot import name" one is what torch_npu 2.1.0.post8's ``utils/_dynamo.py`` raises on torch 2.13;
the undefined symbol is vllm-ascend issue #117; the libhccl ones are torch_npu 2.5.1 (with its
appended hint) and 2.14 (without) on a machine without CANN.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
from fakes import torch_npu as fake_torch_npu

from pytest_npuperf.devices import DeviceUnavailable, import_error_hint, import_torch_npu, resolve_device
from pytest_npuperf.devices.accel import AcceleratorDevice
from pytest_npuperf.devices.npu_int8 import unsupported
from pytest_npuperf.stack import fingerprint

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


# --- device quirks of the real package, in the fake ------------------------------------------

def test_set_device_does_not_initialise_the_allocator_statistics():
    npu = fake_torch_npu.build().npu
    npu.set_device(0)
    assert npu.memory_stats() == {} and npu.max_memory_allocated() == 0
    device = AcceleratorDevice("npu", npu, 0)
    with pytest.raises(RuntimeError, match="not initialized"):
        device.memory()  # fails loudly instead of reporting 0 bytes
    npu.synchronize()
    assert device.memory()["peak_allocated_bytes"] == 0


@pytest.mark.parametrize("call", ["get_device_properties", "is_jit_compile_false"])
def test_calls_that_run_lazy_init(call):
    npu = fake_torch_npu.build().npu
    getattr(npu, call)() if call == "is_jit_compile_false" else getattr(npu, call)(0)
    assert npu.memory_stats() != {}


def test_out_of_range_index_raises_assertion_and_the_project_reports_it(monkeypatch):
    mod = fake_torch_npu.install(monkeypatch, devices=1)
    for call in (mod.npu.set_device, mod.npu.get_device_properties, mod.npu.get_device_name):
        with pytest.raises(AssertionError):
            call(1)
    with pytest.raises(DeviceUnavailable, match="NPU index 1 is out of range: 1 NPU"):
        resolve_device("npu", index=1, workers=1)


@pytest.mark.parametrize("value, count", [("0,1x,2", 2), ("1,3", 2), ("x0", 0), ("", 0), ("2", 1), ("0,,1", 1),
                                          ("3,1", 0), ("1,7,2", 1)])
def test_visible_devices_parsing_stops_at_the_first_bad_character(monkeypatch, value, count):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", value)
    assert fake_torch_npu.build(devices=4).npu.device_count() == count


# --- fingerprint -----------------------------------------------------------------------------

def _toolkit(tmp_path, version="8.0.RC2", ops=None):
    home = tmp_path / "cann"
    (home / "aarch64-linux").mkdir(parents=True)
    (home / "aarch64-linux" / "ascend_toolkit_install.info").write_text(f"version={version}\n")
    if ops:
        (home / "aarch64-linux" / "ascend_ops_install.info").write_text(f"package_name=Ascend-cann-ops\nversion={ops}\n")
    return str(home)


@pytest.mark.parametrize("version, cann", [("2.1.0.post8", "8.3.RC1"), ("2.5.1", "")],
                         ids=["no-get_cann_version", "cann-before-8.1.RC1"])
def test_cann_version_falls_back_to_the_install_files(monkeypatch, tmp_path, version, cann):
    fake_torch_npu.install(monkeypatch, version=version, cann=cann)
    stack = fingerprint.collect("npu", {}, environ={"ASCEND_HOME_PATH": _toolkit(tmp_path)})
    assert stack["cann_version"] == "8.0.RC2"


def test_fingerprint_records_npu_variables_kernels_firmware_and_cpu_binding(monkeypatch, tmp_path):
    fake_torch_npu.install(monkeypatch, version="2.14.0", cann="8.5.0", driver="25.0.rc1")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "npu-smi"
    smi.write_text("#!/bin/sh\n[ \"$2\" = \"-t\" ] && printf '%s\\n' '  Software Version : 25.0.rc1' "
                   "'  Firmware Version : 7.7.0.1.231'\nexit 0\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    env = {"ASCEND_HOME_PATH": _toolkit(tmp_path, "8.5.0", ops="8.5.0.1"), "PYTORCH_NO_NPU_MEMORY_CACHING": "1",
           "ENABLE_ACLNN": "1", "ACLNN_CACHE_LIMIT": "10000", "NPU_ASD_ENABLE": "0", "UNRELATED": "x"}
    stack = fingerprint.collect("npu", {"device_name": "Ascend910B3"}, environ=env)
    assert stack["cann_ops_version"] == "8.5.0.1"
    assert stack["firmware_version"] == "7.7.0.1.231"  # /usr/local/Ascend/firmware/version.info is absent here
    assert stack["driver_version"] == "25.0.rc1"  # through get_cann_version("DRIVER"), no driver file here
    assert set(stack["env"]) == {"ASCEND_HOME_PATH", "PYTORCH_NO_NPU_MEMORY_CACHING", "ENABLE_ACLNN",
                                 "ACLNN_CACHE_LIMIT", "NPU_ASD_ENABLE"}
    assert stack["cpu_affinity"] == sorted(os.sched_getaffinity(0))
    assert stack["torch_threads"] >= 1


# --- int8 by chip ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "soc, version, scheme, dtype, expected",
    [
        ("Ascend910B3", "2.5.1", "w8a8", "bfloat16", None),
        ("Ascend910_9391", "2.14.0", "w8a16", "bfloat16", None),
        ("Ascend310P3", "2.5.1", "w8a8", "float16", "no npu_dynamic_quant"),
        ("Ascend310P3", "2.5.1", "w8a16", "bfloat16", "fp16 activations only"),
        ("Ascend310P3", "2.5.1", "w8a16", "float16", None),
        ("Ascend910_9391", "2.1.0.post8", "w8a8", "bfloat16", "Atlas A2 (Ascend910B*) only"),
        ("Ascend910B4", "2.1.0.post8", "w8a16", "bfloat16", None),
        ("Ascend910A", "2.5.1", "w8a16", "bfloat16", "not for Ascend910A"),
    ],
)
def test_int8_support_by_chip(soc, version, scheme, dtype, expected):
    why = unsupported(soc, version, scheme, dtype)
    assert why is None if expected is None else expected in why


@pytest.mark.parametrize("precision, reason", [("int8-w8a8", "no npu_dynamic_quant"), ("int8-w8a16", "fp16 activations only")])
def test_unsupported_int8_on_310p_is_skipped_with_the_reason(npt, monkeypatch, precision, reason):
    from fakes import synthetic

    fake_torch_npu.install(monkeypatch, soc="Ascend310P3")
    # The fake NPU holds no tensors: the header's matmul calibration gets the fakes' numbers.
    monkeypatch.setattr("pytest_npuperf.devices.calibration.calibrate", lambda device, budget_s=1.0: dict(synthetic.CALIBRATION))
    npt.pytester.makepyfile(test_perf=textwrap.dedent(
        f"""
        def test_generate(npuperf):
            npuperf.generate(precision={precision!r}, batch_size=1, workload='zh_qa')
        """
    ))
    result = npt.run("--npuperf-device", "npu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*{precision}: *{reason}*"])


@pytest.mark.parametrize("soc", ["Ascend310P3", "Ascend910B3"])
def test_fake_enforces_the_chip_limits_the_project_skips(soc):
    import torch

    fake = fake_torch_npu.build(soc=soc)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    if soc == "Ascend310P3":
        with pytest.raises(fake_torch_npu.ContractError, match="not supported on Ascend310P3"):
            fake.npu_dynamic_quant(x)
        assert unsupported(soc, "2.5.1", "w8a8", "bfloat16") is not None
    else:
        qx, scale = fake.npu_dynamic_quant(x)
        assert qx.dtype == torch.int8 and tuple(scale.shape) == (4,)
        assert unsupported(soc, "2.5.1", "w8a8", "bfloat16") is None
