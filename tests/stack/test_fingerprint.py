"""The stack fingerprint (stack/fingerprint.py): versions from the files CANN installs and from
torch_npu's API, torchair's facts from torch_npu's files, the performance-relevant environment
(secrets redacted); nothing here may fail a run."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from fakes import torch_npu as fake_torch_npu

from pytest_npuperf.stack import fingerprint


def test_fingerprint_reads_cann_through_the_api(fake_npu, tmp_path):
    stack = fingerprint.collect("npu", {"device_name": "Ascend910B3"}, environ={"TASK_QUEUE_ENABLE": "2"})
    assert stack["cann_version"] == "8.3.RC1"
    assert stack["npu_jit_compile"] is False
    assert stack["env"] == {"TASK_QUEUE_ENABLE": "2"}


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


def test_env_snapshot_redacts_secrets():
    snap = fingerprint.env_snapshot({"HCCL_BUFFSIZE": "200", "ASCEND_TOKEN": "abc", "HOME": "/root"})
    assert snap == {"ASCEND_TOKEN": "<redacted>", "HCCL_BUFFSIZE": "200"}


def test_parse_kv_file_reads_key_value_lines(tmp_path):
    path = tmp_path / "version.info"
    path.write_text("Version=24.1.rc1\n  package_version = 24.1.rc1.b030 \nnot a key value line\n\nurl=http://host/?a=b\n")
    assert fingerprint.parse_kv_file(str(path)) == {"Version": "24.1.rc1", "package_version": "24.1.rc1.b030",
                                                    "url": "http://host/?a=b"}


def test_ascend_versions_prefer_the_environment_s_toolkit_and_read_kernels_driver_and_firmware(tmp_path):
    root = tmp_path / "Ascend"
    (root / "cann" / "aarch64-linux").mkdir(parents=True)  # the default place: an older toolkit
    (root / "cann" / "aarch64-linux" / "ascend_toolkit_install.info").write_text("version=8.0.0\n")
    chosen = tmp_path / "toolkit"
    (chosen / "x86_64-linux").mkdir(parents=True)
    (chosen / "x86_64-linux" / "ascend_toolkit_install.info").write_text("package_name=Ascend-cann-toolkit\nversion=8.5.0\n")
    (chosen / "opp_kernel").mkdir()
    (chosen / "opp_kernel" / "version.info").write_text("Version=8.5.0.2\n")  # kernels of the older layout
    (root / "driver").mkdir()
    (root / "driver" / "version.info").write_text("Version=25.0.rc1\n")  # no package_version: Version
    (root / "firmware").mkdir()
    (root / "firmware" / "version.info").write_text("Version=7.7.0.1.231\n")
    versions = fingerprint.ascend_versions({"ASCEND_TOOLKIT_HOME": str(chosen)}, root=str(root))
    assert versions == {"cann_version": "8.5.0", "cann_ops_version": "8.5.0.2", "driver_version": "25.0.rc1",
                        "firmware_version": "7.7.0.1.231"}
    assert fingerprint.ascend_versions({}, root=str(root))["cann_version"] == "8.0.0"
    assert fingerprint.ascend_versions({}, root=str(tmp_path / "none")) == dict.fromkeys(versions)  # no install


def test_env_snapshot_keeps_performance_variables_sorted_and_leaves_out_torch_s_own():
    env = {"TASK_QUEUE_ENABLE": "2", "OMP_NUM_THREADS": "8", "ENABLE_ACLNN": "1", "TORCHINDUCTOR_FREEZING": "1",
           "TORCHINDUCTOR_CACHE_DIR": "/tmp/torchinductor_root", "HCCL_password": "p", "ACL_API_KEY": "k", "PATH": "/bin"}
    snap = fingerprint.env_snapshot(env)
    assert snap == {"ACL_API_KEY": "<redacted>", "ENABLE_ACLNN": "1", "HCCL_password": "<redacted>",
                    "OMP_NUM_THREADS": "8", "TASK_QUEUE_ENABLE": "2", "TORCHINDUCTOR_FREEZING": "1"}
    assert list(snap) == sorted(snap)


class _BrokenTorchNpu:
    """An imported torch_npu whose every attribute fails."""

    def __getattr__(self, name):
        raise RuntimeError(f"broken torch_npu: {name}")


def test_collect_never_raises_when_every_reader_fails(monkeypatch, tmp_path):
    def fail(*args, **kwargs):
        raise OSError("cannot be read")

    for name in ("cpu_model_name", "npu_smi_driver_version", "npu_smi_firmware_version", "nvidia_driver_version",
                 "parse_kv_file"):
        monkeypatch.setattr(fingerprint, name, fail)
    monkeypatch.setattr(fingerprint.platform, "platform", fail)
    monkeypatch.setattr(fingerprint.os, "sched_getaffinity", fail, raising=False)
    real_ascend_versions = fingerprint.ascend_versions
    monkeypatch.setattr(fingerprint, "ascend_versions", lambda environ: real_ascend_versions(environ, root=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "torch_npu", _BrokenTorchNpu())
    environ = {"ASCEND_HOME_PATH": str(tmp_path), "TASK_QUEUE_ENABLE": "2"}
    for kind in ("npu", "cuda", "cpu"):
        stack = fingerprint.collect(kind, {"device_name": "X"}, environ=environ)
        assert (stack["platform"], stack["cpu_model"], stack["cpu_affinity"]) == (None, None, None), kind
        assert (stack["driver_version"], stack["firmware_version"], stack["cann_version"]) == (None, None, None), kind
        assert stack["device_name"] == "X" and stack["env"] == environ
        assert stack["python"] and stack["cpu_count"]
    npu = fingerprint.collect("npu", {}, environ=environ)
    assert npu["npu_jit_compile"] is None and "torchair" not in npu


def _site(root: Any, dist: str, version: str, module: str = "vllm") -> Any:
    """A folder holding import package ``module`` installed by distribution ``dist`` (its metadata only)."""
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text("")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{module}\n")
    return root


def test_fingerprint_names_the_repackage_that_installs_vllm(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(_site(tmp_path / "a", "vllm-npuperf-test", "9.8.7")))
    assert fingerprint.provider_version("vllm") == "9.8.7 (vllm-npuperf-test)"
    assert fingerprint.collect("cpu", {}, environ={})["vllm"] == "9.8.7 (vllm-npuperf-test)"
    monkeypatch.syspath_prepend(str(_site(tmp_path / "b", "vllm", "9.9.0")))  # first on the path: vLLM's own
    assert fingerprint.provider_version("vllm") == "9.9.0"


def test_fingerprint_vllm_without_metadata_is_unknown(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "npuperf_nodist").mkdir()
    (tmp_path / "npuperf_nodist" / "__init__.py").write_text("")
    assert fingerprint.provider_version("npuperf_nodist") is None  # importable, but no distribution claims it
    assert fingerprint.provider_version("npuperf_not_installed") is None
