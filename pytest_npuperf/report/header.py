"""Lines of the run's header: the device's calibration next to its published peak."""

from __future__ import annotations

from typing import Any, List, Mapping

from ..judge.roofline import known_peak


def calibration_lines(device_name: str, cal: Mapping[str, Any]) -> List[str]:
    """The calibration next to the published peak of this device, when one is known."""
    fp16 = cal.get("matmul_float16_tflops")
    line = (f"npuperf calibration: matmul bf16 {cal['matmul_bfloat16_tflops']:.3g} TFLOP/s, "
            + (f"fp16 {fp16:.3g} TFLOP/s" if fp16 else "fp16 not timed (no fp16 matmul on this device)")
            + f", copy {cal['copy_gb_s']:.3g} GB/s")
    peak = known_peak(device_name)
    if peak is None:
        return [line + f"; no published peak known for {device_name}"]
    parts = []
    if peak.bf16_tflops:
        parts.append(f"bf16 {peak.bf16_tflops:g} TFLOP/s ({cal['matmul_bfloat16_tflops'] / peak.bf16_tflops:.0%} reached)")
    if peak.hbm_tb_s:
        parts.append(f"HBM {peak.hbm_tb_s:g} TB/s ({cal['copy_gb_s'] / 1e3 / peak.hbm_tb_s:.0%} reached by copy)")
    return [line, f"npuperf published peak of {peak.name}: {', '.join(parts) or 'none'} [{peak.source}]"]
