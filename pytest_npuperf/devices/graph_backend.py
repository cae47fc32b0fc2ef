"""Which graph compiler runs on a device, with which settings.

One GraphBackend per device kind: inductor on a CPU, inductor with CUDA graphs
("reduce-overhead") on CUDA, torchair on an Ascend NPU (see ``devices/npu_graph.py``). Its
``description`` goes into the workload identity (a different compiler or mode is different
work) and ``versions`` into the stack fingerprint.
"""

from __future__ import annotations

import shutil

from ..stack.compat import Unsupported
from .base import GraphBackend
from .npu_graph import npu_backend


def cpu_compiler() -> str:
    """The C++ compiler inductor will call on a CPU; Unsupported when there is none."""
    import torch._inductor.config as inductor_config

    cxx = getattr(getattr(inductor_config, "cpp", None), "cxx", (None, "g++"))
    names = [c for c in (cxx if isinstance(cxx, (tuple, list)) else (cxx,)) if c]
    for name in names:
        if shutil.which(name):
            return name
    raise Unsupported(
        f"graph mode on a CPU compiles C++ kernels with inductor, and no C++ compiler ({', '.join(names)}) "
        "is on PATH: install one (apt-get install g++) or run --npuperf-mode eager"
    )


def select_backend(device_kind: str, device_name: str, requested: str = "auto") -> GraphBackend:
    """The graph backend of this device (``requested``: 'auto' or a pinned torchair mode on an
    NPU); Unsupported, with the reason, where there is none."""
    import torch

    if device_kind == "npu":
        return npu_backend(device_name, None if requested == "auto" else requested)
    if requested != "auto":
        raise Unsupported(f"--npuperf-graph-backend {requested} names a torchair mode of an NPU; on {device_kind} "
                          "graph mode has one backend: leave the option at auto")
    if device_kind == "cuda":
        kwargs = dict(backend="inductor", mode="reduce-overhead", fullgraph=True, dynamic=False)
        return GraphBackend("inductor-cudagraphs", kwargs,
                            "torch.compile(backend=inductor, mode=reduce-overhead, fullgraph=True, dynamic=False)",
                            {"torch": torch.__version__})
    cpu_compiler()
    kwargs = dict(backend="inductor", fullgraph=True, dynamic=False)
    return GraphBackend("inductor", kwargs, "torch.compile(backend=inductor, fullgraph=True, dynamic=False)",
                        {"torch": torch.__version__})
