"""The software and hardware stack a number was measured on.

Every read is guarded: a value that cannot be read is recorded as None ("unknown"); nothing
here may fail a run. Versions are read from package metadata, so torch_npu's version is known
even where ``import torch_npu`` fails.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from .npu_api import NPU_ENV_VARS
from .versions import package_version, provider_version

ENV_PREFIXES = (
    "ASCEND_", "HCCL_", "TORCH_NPU_", "PYTORCH_NPU_", "PYTORCH_ALLOC", "PYTORCH_CUDA_ALLOC",
    "TASK_QUEUE", "CPU_AFFINITY", "ACL_", "INF_NAN", "ATB_", "LCCL_", "ASDOPS_", "OMP_",
    "MKL_", "TORCH_", "CUDA_", "NVIDIA_TF32", "P2P_HCCL", "PER_STREAM_QUEUE", "STREAMS_PER_DEVICE",
    "MULTI_STREAM_MEMORY_REUSE", "TORCHINDUCTOR_", "LD_PRELOAD", "LD_LIBRARY_PATH",
)
_SECRET = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE", re.IGNORECASE)
REDACTED = "<redacted>"

def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def parse_kv_file(path: str) -> Dict[str, str]:
    """'key=value' lines (Ascend version.info / install.info files)."""
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            key, sep, value = line.strip().partition("=")
            if sep:
                out[key.strip()] = value.strip()
    return out


def _ascend_homes(environ: Mapping[str, str], root: str) -> List[str]:
    """Where CANN may be installed, the environment's own choice first."""
    homes = [environ.get("ASCEND_TOOLKIT_HOME"), environ.get("ASCEND_HOME_PATH"),
             f"{root}/cann", f"{root}/ascend-toolkit/latest"]
    return [h for h in homes if h]


def _install_info_version(home: str, name: str) -> Optional[str]:
    """The 'version' of ``<home>/<arch>-linux/<name>`` (or ``<home>/<name>``), first readable one."""
    files = sorted(glob.glob(os.path.join(home, "*-linux", name))) + sorted(glob.glob(os.path.join(home, name)))
    for path in files:
        version = _safe(lambda p=path: parse_kv_file(p).get("version"))
        if version:
            return version
    return None


def ascend_versions(environ: Mapping[str, str], root: str = "/usr/local/Ascend") -> Dict[str, Optional[str]]:
    """CANN toolkit, driver and firmware versions from the files CANN installs."""
    cann: Optional[str] = None
    for home in _ascend_homes(environ, root):
        cann = _install_info_version(home, "ascend_toolkit_install.info")
        if cann:
            break
        cfg = os.path.join(home, "version.cfg")
        text = _safe(lambda path=cfg: Path(path).read_text(encoding="utf-8"))
        match = re.search(r"runtime_running_version=\[[^:\]]*:([^\]]+)\]", text or "")
        if match:
            cann = match.group(1)
            break
    driver = _safe(lambda: parse_kv_file(f"{root}/driver/version.info"))
    firmware = _safe(lambda: parse_kv_file(f"{root}/firmware/version.info"))
    return {
        "cann_version": cann,
        "cann_ops_version": cann_ops_version(environ, root),
        "driver_version": (driver or {}).get("package_version") or (driver or {}).get("Version"),
        "firmware_version": (firmware or {}).get("Version"),
    }


def cann_ops_version(environ: Mapping[str, str], root: str = "/usr/local/Ascend") -> Optional[str]:
    """The operator (kernel) package version: a separate package from CANN 8.5 on.

    8.5+ installs ``<home>/<arch>-linux/ascend_ops_install.info`` next to the toolkit's file;
    older layouts carry the kernels in ``opp_kernel`` (``opp_kernel/version.info``).
    """
    for home in _ascend_homes(environ, root):
        version = _install_info_version(home, "ascend_ops_install.info")
        if version:
            return version
        info = _safe(lambda h=home: parse_kv_file(os.path.join(h, "opp_kernel", "version.info")))
        if info and (info.get("version_dir") or info.get("Version")):
            return info.get("version_dir") or info.get("Version")
    return None


def npu_smi_driver_version() -> Optional[str]:
    exe = shutil.which("npu-smi")
    if not exe:
        return None
    out = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"Version:\s*([0-9A-Za-z.\-]+)", out)
    return match.group(1) if match else None


def npu_smi_firmware_version(index: int = 0) -> Optional[str]:
    """'Firmware Version : 7.1.0.7.220' from ``npu-smi info -t board``, where the file is absent."""
    exe = shutil.which("npu-smi")
    if not exe:
        return None
    out = subprocess.run([exe, "info", "-t", "board", "-i", str(index)], capture_output=True, text=True,
                         timeout=10).stdout
    match = re.search(r"Firmware Version\s*:\s*([0-9A-Za-z.\-]+)", out)
    return match.group(1) if match else None


def cpu_binding() -> Dict[str, Any]:
    """The CPUs this process may run on: host-side dispatch speed depends on them on every device."""
    affinity = _safe(lambda: sorted(os.sched_getaffinity(0)))
    return {"cpu_count": os.cpu_count(), "cpu_affinity": affinity}


# Set by torch itself when a module imports inductor: not a setting of the user's.
_SET_BY_TORCH = ("TORCHINDUCTOR_CACHE_DIR",)


def env_snapshot(environ: Mapping[str, str]) -> Dict[str, str]:
    """Performance-relevant variables, secrets redacted."""
    out = {}
    for key, value in environ.items():
        if (key.startswith(ENV_PREFIXES) or key in NPU_ENV_VARS) and key not in _SET_BY_TORCH:
            out[key] = REDACTED if _SECRET.search(key) else value
    return dict(sorted(out.items()))


def torchair_version(torchair: Any, torch_npu_release: str) -> str:
    """torchair's version: torch_npu's own where torchair is the copy bundled in torch_npu.

    The bundled torchair has no version of its own; a separately installed one (built from the
    torchair repository) has package metadata.
    """
    where = str(getattr(torchair, "__file__", "") or "").replace(os.sep, "/")
    if not where or "torch_npu/dynamo/torchair" in where:
        return torch_npu_release
    return package_version("torchair") or "unknown"


def torchair_facts(torch_npu: Any) -> Dict[str, Any]:
    """torchair's version, where it comes from, and whether npugraph_ex ships, for the fingerprint.

    Read from torch_npu's files, without importing either package (importing npugraph_ex installs
    SIGTERM/SIGINT handlers, ``npugraph_ex/__init__.py``); a separately installed torchair is
    known by its package metadata. Empty where there is no torchair.
    """
    where = getattr(torch_npu, "__file__", None)
    if where:
        dynamo = Path(where).parent / "dynamo"
        if (dynamo / "torchair" / "__init__.py").is_file():
            return {"torchair": str(torch_npu.__version__), "torchair_source": "bundled in torch_npu",
                    "npugraph_ex": (dynamo / "npugraph_ex" / "__init__.py").is_file()}
    version = package_version("torchair")
    return {"torchair": version, "torchair_source": "torchair package"} if version else {}


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def nvidia_driver_version() -> Optional[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    out = subprocess.run(
        [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=10,
    ).stdout.strip()
    return out.splitlines()[0] if out else None


def collect(device_kind: str, device_info: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The fingerprint of this process's stack on the given device."""
    environ = os.environ if environ is None else environ
    stack: Dict[str, Any] = {
        "python": platform.python_version(),
        "platform": _safe(platform.platform),
        "cpu_model": _safe(cpu_model_name),
        "torch": package_version("torch"),
        "torch_npu": package_version("torch-npu", "torch_npu"),
        "transformers": package_version("transformers"),
        "mistral_common": package_version("mistral-common", "mistral_common"),
        "pytest_npuperf": package_version("pytest-npuperf"),
        # The serving test's third engine, when installed (by the vllm distribution or a repackage).
        "vllm": provider_version("vllm"),
        "vllm_ascend": package_version("vllm-ascend", "vllm_ascend"),
        "driver_version": None,
        "firmware_version": None,
        "cann_version": None,
    }
    try:
        import torch  # a dependency; imported here so every fingerprint records the threads
    except Exception:
        torch = None
    if torch is not None:
        stack["torch_threads"] = _safe(torch.get_num_threads)
        stack["torch_cuda_build"] = _safe(lambda: torch.version.cuda)
    stack.update(cpu_binding())
    if device_kind == "npu":
        stack.update({k: v for k, v in ascend_versions(environ).items() if v})
        torch_npu = sys.modules.get("torch_npu")
        if torch_npu is not None:
            # get_cann_version is absent in torch_npu 2.1.0.post8 and returns '' before CANN
            # 8.1.RC1: the install files read above stay the answer then.
            api = _safe(lambda: torch_npu.npu.utils.get_cann_version(module="CANN"))
            if api:
                stack["cann_version"] = api
            if not stack.get("driver_version"):
                stack["driver_version"] = _safe(lambda: torch_npu.npu.utils.get_cann_version(module="DRIVER")) or None
            stack["npu_jit_compile"] = _safe(lambda: not torch_npu.npu.is_jit_compile_false())
            stack.update(_safe(lambda: torchair_facts(torch_npu)) or {})
        if not stack.get("driver_version"):
            stack["driver_version"] = _safe(npu_smi_driver_version)
        if not stack.get("firmware_version"):
            stack["firmware_version"] = _safe(npu_smi_firmware_version)
    elif device_kind == "cuda":
        stack["driver_version"] = _safe(nvidia_driver_version)
    stack.update({k: v for k, v in device_info.items()})
    stack["env"] = env_snapshot(environ)
    return stack


