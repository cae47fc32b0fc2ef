"""Lines of the run's header: settings, device, stack, baselines without noise, calibration.

Pure: the facts in (gathered by the hooks from the session), the lines out.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

from ..judge.roofline import known_peak
from ..stack.changes import HOOK_FIELDS

HEADER_STACK_KEYS = ("torch", "torch_npu", "transformers", "cann_version", "driver_version", "python", "torch_threads")


# The budgets the header names (every metric's is in the results JSON, verdict by verdict).
BUDGET_HEADLINE = ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "time_s", "peak_reserved_bytes",
                   "serving_tpot_p50_s", "serving_tokens_per_s")


def header_lines(
    settings: Any,
    device: Optional[Mapping[str, str]],
    unavailable: str = "",
    stack: Optional[Mapping[str, Any]] = None,
    skipped: Sequence[str] = (),
    without_noise: Tuple[int, int] = (0, 0),
    calibration: Optional[Mapping[str, Any]] = None,
    budgets: Optional[Mapping[str, float]] = None,
    raised_to: Optional[float] = None,
) -> List[str]:
    """The header of a run. ``device``: kind, name, profile, model, timing and memory source (None
    when the device is unavailable, ``unavailable`` saying why); ``without_noise``: baseline
    entries of this accelerator profile without between-process noise, of all its entries."""
    s = settings
    lines = [
        f"npuperf: preset={s.preset} max_new_tokens={s.max_new_tokens} warmup={s.warmup} "
        f"runs={s.runs} (cap {s.max_runs}) alpha={s.alpha:g} baselines={s.baseline_dir}"
        + (" [saving baseline]" if s.save_baseline else "")
    ]
    if device is None:
        return lines + [f"npuperf device: unavailable: {unavailable}"]
    st = stack or {}
    lines.append(
        f"npuperf device: {device['kind']} ({device['name']}), profile {device['profile']!r}, "
        f"model {device['model']}, timing by {device['timing']}, memory from {device['memory']}"
    )
    lines.append("npuperf stack: " + ", ".join(
        f"{k}={st.get(k) if st.get(k) is not None else 'unknown'}" for k in HEADER_STACK_KEYS))
    if st.get(HOOK_FIELDS):
        lines.append("npuperf stack fields from hooks: " + ", ".join(f"{k}={v}" for k, v in st[HOOK_FIELDS].items()))
    lines += [f"npuperf: not using {reason}" for reason in skipped]
    if budgets:
        shown = ", ".join(f"{name} {budgets[name] * 100:g}%" for name in BUDGET_HEADLINE if name in budgets)
        lines.append(f"npuperf budgets (largest accepted change): {shown}; bounds at {1 - s.alpha:.0%}"
                     + (f"; timing budgets raised to {raised_to * 100:g}% by the {device['kind']} profile (where not set explicitly), "
                        "a pipeline check, not a performance gate" if raised_to else ""))
    missing, total = without_noise
    if missing:
        lines.append(f"npuperf: {missing} of {total} baseline entries of {device['profile']} carry no "
                     "between-process noise, so their bounds count in-process noise only; record them again "
                     "with --npuperf-save-baseline (6 fresh processes by default on npu and cuda)")
    return lines + (calibration_lines(device["name"], calibration) if calibration is not None else [])


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
