"""Every torch_npu / torch.npu name the project uses, in one place.

The conformance tests (``tests/stack/test_npu_api_conformance.py``) check each entry against the published
torch-npu wheels, and ``tests/stack/test_npu_api.py`` scans the project's source for ``torch_npu.*`` and
``torch.npu.*`` uses (including through the aliases below) and fails when a use, or a keyword
argument of a call, is missing here: a new use cannot skip the check.

Kinds of entries:

- ``python``: a module attribute, function, class or class member defined in the wheel's Python
  sources (``torch.npu`` is ``torch_npu.npu`` once torch_npu is imported, so it is written that
  way here);
- ``op``: a custom operator, checked against the schema in
  ``torch_npu/csrc/aten/npu_native_functions_by_codegen.yaml`` (argument names included);
- ``compiled``: a name that lives in the C++ extension (``torch_npu._C``), checked as a string in
  the wheel's shared libraries;
- ``env``: an environment variable torch_npu reads, found in its Python sources, documentation or
  shared libraries.

``optional`` marks a name the project feature-detects (``getattr(..., None)`` or a guarded call),
because older releases lack it; the check then only requires it in the newest wheel.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Tuple


class ApiUse(NamedTuple):
    path: str
    kind: str  # python | op | compiled | env
    keywords: Tuple[str, ...] = ()
    optional: bool = False
    why: str = ""


_NPU = "torch_npu.npu."
_PROF = "torch_npu.profiler."
# torchair and npugraph_ex ship inside torch_npu and are imported as top-level ``torchair`` /
# ``npugraph_ex`` (torch_npu puts proxies in sys.modules); their entries name the wheel's files.
_TA = "torch_npu.dynamo.torchair."
_EX = "torch_npu.dynamo.npugraph_ex."

USES: Tuple[ApiUse, ...] = (
    # device selection and timing (devices/__init__.py, devices/accel.py)
    ApiUse(_NPU + "device_count", "python"),
    ApiUse(_NPU + "set_device", "python"),
    ApiUse(_NPU + "synchronize", "python"),
    ApiUse(_NPU + "Event", "python", ("enable_timing",)),
    ApiUse(_NPU + "Event.record", "python"),
    ApiUse(_NPU + "Event.synchronize", "python"),
    ApiUse(_NPU + "Event.elapsed_time", "python"),
    ApiUse(_NPU + "get_device_name", "python"),
    ApiUse(_NPU + "get_device_properties", "python"),
    # memory (devices/accel.py)
    ApiUse(_NPU + "memory_stats", "python"),
    ApiUse(_NPU + "reset_peak_memory_stats", "python"),
    ApiUse(_NPU + "mem_get_info", "python"),
    ApiUse(_NPU + "empty_cache", "python"),
    # stack/fingerprint.py
    ApiUse(_NPU + "is_jit_compile_false", "python"),
    ApiUse(_NPU + "utils.get_cann_version", "python", ("module",), optional=True,
           why="absent in 2.1.0.post8; returns '' before CANN 8.1.RC1"),
    # device properties read with getattr (devices/accel.py AcceleratorDevice.info)
    ApiUse(_NPU + "_DeviceProperties.name", "compiled"),
    ApiUse(_NPU + "_DeviceProperties.total_memory", "compiled"),
    ApiUse(_NPU + "_DeviceProperties.cube_core_num", "compiled", optional=True, why="2.1.0.post17, 2.8 and later"),
    ApiUse(_NPU + "_DeviceProperties.vector_core_num", "compiled", optional=True, why="2.1.0.post17, 2.8 and later"),
    ApiUse(_NPU + "_DeviceProperties.L2_cache_size", "compiled", optional=True, why="2.1.0.post17, 2.8 and later"),
    ApiUse(_NPU + "_DeviceProperties.multi_processor_count", "compiled", optional=True, why="newer releases only"),
    # int8 kernels (quant.py)
    ApiUse("torch_npu.npu_weight_quant_batchmatmul", "op", ("x", "weight", "antiquant_scale")),
    ApiUse("torch_npu.npu_dynamic_quant", "op", ("input",)),
    ApiUse("torch_npu.npu_quant_matmul", "op", ("x1", "x2", "scale", "pertoken_scale", "output_dtype")),
    # profiler (devices/profiler.py)
    ApiUse(_PROF + "_ExperimentalConfig", "python",
           ("export_type", "profiler_level", "aic_metrics", "l2_cache", "data_simplification")),
    ApiUse(_PROF + "ExportType.Text", "python"),
    ApiUse(_PROF + "ProfilerLevel.Level1", "python"),
    ApiUse(_PROF + "AiCMetrics.AiCoreNone", "python"),
    ApiUse(_PROF + "profile", "python",
           ("activities", "schedule", "on_trace_ready", "record_shapes", "profile_memory", "with_stack",
            "with_modules", "experimental_config")),
    ApiUse(_PROF + "profile.step", "python"),
    ApiUse(_PROF + "ProfilerActivity", "python"),
    ApiUse(_PROF + "ProfilerActivity.CPU", "compiled"),
    ApiUse(_PROF + "ProfilerActivity.NPU", "compiled"),
    ApiUse(_PROF + "schedule", "python", ("wait", "warmup", "active", "repeat", "skip_first")),
    ApiUse(_PROF + "tensorboard_trace_handler", "python"),
    # graph mode (devices/npu_graph.py)
    ApiUse("torch_npu.__version__", "python"),
    ApiUse(_TA + "CompilerConfig", "python"),
    ApiUse(_TA + "CompilerConfig.mode", "python", optional=True,
           why="absent in 2.1.0.post8 and post10 (GE graphs only); from 2.1.0.post12"),
    ApiUse(_TA + "get_npu_backend", "python", ("compiler_config",)),
    ApiUse(_EX + "CompilerConfig", "python", optional=True, why="the npugraph_ex package arrived in 2.11.0"),
    ApiUse(_EX + "CompilerConfig.mode", "python", optional=True, why="the npugraph_ex package arrived in 2.11.0"),
    ApiUse(_EX + "get_npu_backend", "python", ("compiler_config",), optional=True,
           why="the npugraph_ex package arrived in 2.11.0"),
)

# Graph modes (devices/npu_graph.py) -> the first checked torch_npu release that has it: for the
# torchair modes, the first whose ``CompilerConfig.mode`` accepts the string; for npugraph_ex, the
# first with the ``torch_npu/dynamo/npugraph_ex`` package. 2.1.0.post8/post10 build GE graphs
# (max-autotune) without a mode option. Releases 2.2 to 2.4 were not checked; npu_graph.py detects
# the features, so these say only where the conformance test expects them.
GRAPH_MODE_SINCE: Dict[str, str] = {
    "max-autotune": "2.1.0.post12",
    "reduce-overhead": "2.1.0.post12",
    "npugraph_ex": "2.11.0",
}
# SoC name prefixes of the chips torchair documents aclgraph (reduce-overhead, npugraph_ex) for.
ACLGRAPH_CHIPS: Tuple[Tuple[str, str], ...] = (("Ascend910B", "Atlas A2"), ("Ascend910_93", "Atlas A3"))

# Environment variables the fingerprint records by name (besides its prefixes) because torch_npu
# reads them and they change speed or memory.
ENV_USES: Tuple[ApiUse, ...] = (
    ApiUse("PYTORCH_NO_NPU_MEMORY_CACHING", "env"),
    ApiUse("ENABLE_ACLNN", "env"),
    ApiUse("ACLNN_CACHE_LIMIT", "env"),
    ApiUse("NPU_ASD_ENABLE", "env"),
    ApiUse("TASK_QUEUE_ENABLE", "env"),
    ApiUse("PYTORCH_NPU_ALLOC_CONF", "env"),
    ApiUse("ASCEND_RT_VISIBLE_DEVICES", "env", optional=True,
           why="parsed in Python from 2.6; the CANN runtime applies it in older releases"),
    ApiUse("TORCH_DEVICE_BACKEND_AUTOLOAD", "env", optional=True, why="auto-loading exists from 2.5.1"),
)

NPU_ENV_VARS: Tuple[str, ...] = tuple(use.path for use in ENV_USES)

# Error text the project recognises in a failed ``import torch_npu``: phrase -> first release
# that raises it (checked in the wheels' sources).
DEVICE_CONFLICT_PHRASE = "Two accelerators cannot be used at the same time"
ERROR_PHRASES: Dict[str, str] = {DEVICE_CONFLICT_PHRASE: "2.5.1"}

# Names that stand for a torch_npu object inside one source file, so that the source scan sees
# uses through them: the device module handed to AcceleratorDevice, its events, the profiler.
ALIASES: Dict[str, Dict[str, str]] = {
    "pytest_npuperf/devices/__init__.py": {"module": "torch_npu.npu"},
    "pytest_npuperf/devices/accel.py": {
        "self._module": "torch_npu.npu",
        "module": "torch_npu.npu",
        "self._start": "torch_npu.npu.Event",
        "self._end": "torch_npu.npu.Event",
    },
    "pytest_npuperf/devices/profiler.py": {"npu_prof": "torch_npu.profiler.profile"},
    "pytest_npuperf/devices/npu_graph.py": {
        "torchair": "torch_npu.dynamo.torchair",
        "npugraph_ex": "torch_npu.dynamo.npugraph_ex",
        "ta_config": "torch_npu.dynamo.torchair.CompilerConfig",
        "ex_config": "torch_npu.dynamo.npugraph_ex.CompilerConfig",
    },
}


def find(path: str) -> ApiUse:
    """The entry for a dotted name; KeyError when the project does not declare it."""
    for use in USES + ENV_USES:
        if use.path == path:
            return use
    raise KeyError(path)
