"""The real plugin on the asynchronous fake NPU (``--npuperf-device npu``), for pytester runs.

``install()`` (called from the run's conftest, so a confirmation child gets it too) puts a
real-time fake torch_npu in ``sys.modules`` and ``torch.npu``, keeps the NPU device's tensors on
the CPU (the fake holds none), gives the header calibration fixed numbers, and makes every model
forward queue its device time on the fake (prefill NPUPERF_FAKE_NPU_PREFILL_S, default 0.3,
decode NPUPERF_FAKE_NPU_DECODE_S, default 0.2 seconds: far above the tiny model's CPU time, which
they overlap) before generate reads the token on the host. With
NPUPERF_FAKE_NPU_SLOW_ONCE set, decode steps take twice as long, except in a confirmation child;
with NPUPERF_FAKE_NPU_CHILD_CRASH set, a confirmation child fails to load the model. Each
operator call (``npuperf.op``) queues NPUPERF_FAKE_NPU_OP_S (default 0.02) seconds without waiting.
The fake torchair of the same release (tests/fakes/torchair.py) is importable as ``torchair`` and
``npugraph_ex``, so graph mode compiles with its recording, eager-running backends. The release
is NPUPERF_FAKE_NPU_RELEASE (default 2.14.0), the chip NPUPERF_FAKE_NPU_SOC (default ``SOC``);
its CANN version is the one installed where the environment's CANN points (ASCEND_TOOLKIT_HOME,
read as the fingerprint reads it; 8.3.RC1 when there is none), as a real torch_npu reports the
CANN it was started with. NPUPERF_FAKE_NPU_SLOW_WHEN ties a slowdown to the stack, for the
attribution's tests (tests/fakes/slow_when.py): 'cann=8.5.0*2' doubles every device time under
CANN 8.5.0; the keys are cann, torch_npu (the release) and env.NAME.
NPUPERF_FAKE_NPU_NO_TORCHAIR set makes it a torch_npu built without torchair. torch_npu's
``__file__`` points into a temporary folder holding the release's ``dynamo/torchair`` (and
``dynamo/npugraph_ex``) packages, so the fingerprint reads the torchair facts as on a real install.
Everything else (device resolution, events, synchronize, measure_once, the verdict and the
confirmation process) is the plugin's own code.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

import pytest_npuperf.devices.accel as accel_mod
import pytest_npuperf.devices.calibration as roofline_mod
import pytest_npuperf.flows.kernels as kernels_mod
import pytest_npuperf.flows.session as session_mod
from fakes import slow_when, synthetic
from fakes import torch_npu as fake_torch_npu
from fakes import torchair as fake_torchair
from pytest_npuperf.flows.confirm import in_confirmation_child
from pytest_npuperf.stack.fingerprint import ascend_versions

_SAVED: Dict[str, Any] = {}
SOC = "Ascend910B3"  # the chip of the fake (a test may set another before the run starts)


class CpuBackedNpuDevice(accel_mod.AcceleratorDevice):
    def __init__(self, kind: str, module: Any, index: int = 0) -> None:
        super().__init__(kind, module, index)
        if kind == "npu":
            self.torch_device = "cpu"


def _decode_s() -> float:
    decode = float(os.environ.get("NPUPERF_FAKE_NPU_DECODE_S", "0.2")) * _stack_slowdown()
    if os.environ.get("NPUPERF_FAKE_NPU_SLOW_ONCE") and not in_confirmation_child():
        decode *= 2
    return decode


def cann_version() -> str:
    """The CANN version of the environment's CANN installation (the fake torch_npu reports it)."""
    return ascend_versions(os.environ).get("cann_version") or "8.3.RC1"


def _stack_slowdown() -> float:
    """NPUPERF_FAKE_NPU_SLOW_WHEN's factor for this process's CANN, torch_npu release and variables."""
    facts = {"cann": cann_version(), "torch_npu": os.environ.get("NPUPERF_FAKE_NPU_RELEASE", "2.14.0")}
    return slow_when.slowdown(facts, os.environ.get("NPUPERF_FAKE_NPU_SLOW_WHEN", ""))


def _queue_device_time(model: Any, npu: Any) -> None:
    prefill = float(os.environ.get("NPUPERF_FAKE_NPU_PREFILL_S", "0.3")) * _stack_slowdown()
    decode = _decode_s()

    import torch

    # torch.compiler.is_compiling arrived in torch 2.3 (no graph mode before it); called as a
    # closure, not a module global: torch 2.5's dynamo trips over a global alias of it.
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (lambda: False)

    def before(module: Any, args: Any, kwargs: Any) -> None:
        # Queued when the forward starts, so the host's own work overlaps the device's (as on a
        # real device, where the host runs ahead): the step takes the device time, not the sum.
        # Inside a compiled graph the hooks are traced, not run: the graph's replay queues the
        # decode step instead (fake_torchair.FakeBackend.replay, set by install()).
        if compiling():
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        npu._launch(prefill if ids.shape[1] > 1 else decode)

    def after(module: Any, args: Any, output: Any) -> None:
        if not compiling():
            npu._copy_to_host()  # generate reads the new token on the host

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after)


def _replay_graph(npu: Any) -> None:
    """A compiled decode step: one launch of the whole step's device time."""
    npu._launch(_decode_s())


def install() -> None:
    import torch

    # transformers asks importlib whether torch_npu is installed while importing the model code
    # (and caches the answer); the fake is not an importable package, so import it first.
    import transformers.models.mistral.modeling_mistral  # noqa: F401

    release = os.environ.get("NPUPERF_FAKE_NPU_RELEASE", "2.14.0")
    bundled = not os.environ.get("NPUPERF_FAKE_NPU_NO_TORCHAIR")
    mod = fake_torch_npu.build(version=release, soc=os.environ.get("NPUPERF_FAKE_NPU_SOC", SOC), realtime=True,
                               cann=cann_version())
    files = Path(tempfile.mkdtemp(prefix="fake_torch_npu_"))
    packages = [name for name in fake_torchair.build(release) if bundled]
    for package in packages:
        (files / "torch_npu" / "dynamo" / package).mkdir(parents=True)
        (files / "torch_npu" / "dynamo" / package / "__init__.py").write_text("")
    mod.__file__ = str(files / "torch_npu" / "__init__.py")
    _SAVED["files"] = files
    _SAVED.update(torch_npu=sys.modules.get("torch_npu"), torch_npu_attr=getattr(torch, "npu", None),
                  accel=accel_mod.AcceleratorDevice, calibrate=roofline_mod.calibrate,
                  load_model=session_mod.load_model)
    sys.modules["torch_npu"] = mod
    torch.npu = mod.npu
    graph_modules = fake_torchair.module_entries(release, bundled=bundled)
    _SAVED["graph_modules"] = {name: sys.modules.get(name) for name in graph_modules}
    sys.modules.update(graph_modules)  # type: ignore[arg-type]
    mod.dynamo = graph_modules["torch_npu.dynamo"]  # type: ignore[attr-defined]
    accel_mod.AcceleratorDevice = CpuBackedNpuDevice
    roofline_mod.calibrate = lambda device, budget_s=1.0: dict(synthetic.CALIBRATION)
    original = _SAVED["load_model"]

    def load_model(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("NPUPERF_FAKE_NPU_CHILD_CRASH") and in_confirmation_child():
            raise RuntimeError("the confirmation child crashed (NPUPERF_FAKE_NPU_CHILD_CRASH)")
        loaded = original(*args, **kwargs)
        mod.npu._allocate(int(loaded.weight_bytes))
        _queue_device_time(loaded.model, mod.npu)
        return loaded

    session_mod.load_model = load_model
    _SAVED["replay"] = fake_torchair.FakeBackend.replay
    fake_torchair.FakeBackend.replay = lambda: _replay_graph(mod.npu)
    original_op = _SAVED["op_kernel"] = kernels_mod.op_kernel

    def op_kernel(*args: Any, **kwargs: Any) -> Any:
        # An operator is launched and the host goes on: only the timer's end event waits.
        kernel = original_op(*args, **kwargs)
        fn, seconds = kernel.fn, float(os.environ.get("NPUPERF_FAKE_NPU_OP_S", "0.02"))

        def queued() -> Any:
            mod.npu._launch(seconds)
            return fn()

        kernel.fn = queued
        return kernel

    kernels_mod.op_kernel = op_kernel


def uninstall() -> None:
    import torch

    if not _SAVED:
        return
    if _SAVED["torch_npu"] is None:
        sys.modules.pop("torch_npu", None)
    else:
        sys.modules["torch_npu"] = _SAVED["torch_npu"]
    if _SAVED["torch_npu_attr"] is None:
        if hasattr(torch, "npu"):
            delattr(torch, "npu")
    else:
        torch.npu = _SAVED["torch_npu_attr"]
    for name, previous in _SAVED["graph_modules"].items():
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    accel_mod.AcceleratorDevice = _SAVED["accel"]
    roofline_mod.calibrate = _SAVED["calibrate"]
    session_mod.load_model = _SAVED["load_model"]
    kernels_mod.op_kernel = _SAVED["op_kernel"]
    fake_torchair.FakeBackend.replay = _SAVED["replay"]
    shutil.rmtree(_SAVED["files"], ignore_errors=True)
    _SAVED.clear()
