"""Profile one generation of a regressed test, so the report says which operators got slower.

NPU: ``torch_npu.profiler`` (docs/torch-npu.md#profiler) writes its trace folder with
``kernel_details.csv`` and ``op_statistic.csv``. CUDA and CPU: ``torch.profiler``, whose table of
the top operators by self time is written as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..store.files import safe_component
from .base import Device

TOP_OPS = 25


def profile_generation(device: Device, run: Callable[[], Any], test_id: str, folder: Path) -> Path:
    """Run ``run`` once under the device's profiler; return the file or folder written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_component(test_id)
    if device.kind == "npu":
        import torch_npu

        out = folder / name
        experimental = torch_npu.profiler._ExperimentalConfig(
            export_type=torch_npu.profiler.ExportType.Text,
            profiler_level=torch_npu.profiler.ProfilerLevel.Level1,
            aic_metrics=torch_npu.profiler.AiCMetrics.AiCoreNone,
            l2_cache=False, data_simplification=True,
        )
        with torch_npu.profiler.profile(
            activities=[torch_npu.profiler.ProfilerActivity.CPU, torch_npu.profiler.ProfilerActivity.NPU],
            schedule=torch_npu.profiler.schedule(wait=0, warmup=0, active=1, repeat=1, skip_first=0),
            on_trace_ready=torch_npu.profiler.tensorboard_trace_handler(str(out)),
            record_shapes=False, profile_memory=False, with_stack=False, with_modules=False,
            experimental_config=experimental,
        ) as npu_prof:
            run()
            npu_prof.step()
        return out  # .../ASCEND_PROFILER_OUTPUT/kernel_details.csv, op_statistic.csv
    import torch.profiler as tp

    activities = [tp.ProfilerActivity.CPU] + ([tp.ProfilerActivity.CUDA] if device.kind == "cuda" else [])
    with tp.profile(activities=activities) as prof:
        run()
    sort = "self_cuda_time_total" if device.kind == "cuda" else "self_cpu_time_total"
    path = folder / f"{name}.txt"
    path.write_text(prof.key_averages().table(sort_by=sort, row_limit=TOP_OPS) + "\n", encoding="utf-8")
    return path
