"""Physical limits: published peaks, the bandwidth a timing may imply, the device's health.

Pure: the calibration figures (measured by ``devices/calibration.py``, stored with every result)
and the published peaks in, verdicts out. A device that is clearly slower than when the
baseline was recorded (throttling, another process) is reported before any verdict, and a
measurement implying more bandwidth than the device has is rejected as a measurement error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Peak:
    """Published figures of a device; None where no trustworthy public figure exists."""

    name: str
    bf16_tflops: Optional[float]
    hbm_tb_s: Optional[float]
    source: str


# Dense (no sparsity) 16-bit tensor throughput and memory bandwidth.
PEAKS: Tuple[Peak, ...] = (
    Peak("Ascend910B1", None, None, "not published by Huawei per SKU; measure with the calibration"),
    Peak("Ascend910B2", None, 1.6, "bandwidth ~1.6 TB/s, medium confidence (docs/measurement.md#physical-limits)"),
    Peak("Ascend910B3", None, 1.6, "bandwidth ~1.6 TB/s, medium confidence (docs/measurement.md#physical-limits)"),
    Peak("Ascend910B4", None, 0.8, "bandwidth ~0.8 TB/s, medium confidence (docs/measurement.md#physical-limits)"),
    Peak("Ascend910_93", None, None, "Atlas A3: not published per die; measure with the calibration"),
    Peak("Ascend310P", None, None, "Atlas inference series: not published per chip; measure"),
    Peak("NVIDIA A100 80GB", 312.0, 2.039, "NVIDIA A100 datasheet (SXM4 80GB): 312 TFLOP/s BF16 dense, 2,039 GB/s"),
    Peak("NVIDIA H100", 989.4, 3.35, "NVIDIA H100 datasheet (SXM5): 989.4 TFLOP/s BF16 dense, 3.35 TB/s"),
    Peak("NVIDIA H200", 989.4, 4.8, "NVIDIA H200 datasheet (SXM): 989 TFLOP/s BF16 dense, 4.8 TB/s"),
)


def known_peak(device_name: str) -> Optional[Peak]:
    """The table row whose name is contained in the device name (longest match wins)."""
    compact = device_name.replace(" ", "").lower()
    matches = [p for p in PEAKS if p.name.replace(" ", "").lower() in compact]
    return max(matches, key=lambda p: len(p.name)) if matches else None


def health_problems(current: Mapping[str, float], baseline: Mapping[str, float], drop: float = 0.8) -> List[str]:
    """Calibration figures clearly below the baseline's (by more than 1 - drop)."""
    problems = []
    for key in ("matmul_bfloat16_tflops", "matmul_float16_tflops", "copy_gb_s"):
        now, then = current.get(key), baseline.get(key)
        if now and then and now < drop * then:
            problems.append(f"{key} {now:.3g} now vs {then:.3g} when the baseline was recorded ({now / then - 1:+.0%})")
    return problems


# A timing may imply at most this much more than the calibrated copy bandwidth (the copy is a
# measurement too; a little above it is real, 10% above it is a broken timing).
BANDWIDTH_SLACK = 1.1


def peak_gb_s(device_name: str) -> Optional[float]:
    """The published memory bandwidth of this device in GB/s, where one is known."""
    peak = known_peak(device_name)
    return peak.hbm_tb_s * 1e3 if peak is not None and peak.hbm_tb_s else None


def check_bandwidth(
    bytes_read: float,
    seconds: float,
    calibration: Mapping[str, float],
    what: str,
    published_gb_s: Optional[float] = None,
) -> Optional[str]:
    """A reason to reject a measurement that reads faster than the device can, else None.

    Rejected above 1.1 x the calibrated copy bandwidth or above the published peak. Only
    applied when the data is at least as large as the calibration's copy buffer: smaller
    working sets can live in caches, where higher figures are real.
    """
    peak = calibration.get("copy_gb_s")
    if not peak or seconds <= 0 or bytes_read < calibration.get("copy_buffer_bytes", float("inf")):
        return None
    implied = bytes_read / seconds / 1e9
    if implied > BANDWIDTH_SLACK * peak:
        return (f"{what} implies {implied:.1f} GB/s read ({bytes_read / 1e9:.3g} GB in {seconds * 1e3:.3g} ms), "
                f"above {BANDWIDTH_SLACK:g} x the calibrated copy bandwidth of {peak:.1f} GB/s: "
                "the timing cannot be right (missing synchronization?)")
    if published_gb_s and implied > published_gb_s:
        return (f"{what} implies {implied:.1f} GB/s read ({bytes_read / 1e9:.3g} GB in {seconds * 1e3:.3g} ms), "
                f"above the published peak of {published_gb_s:.1f} GB/s: the timing cannot be right "
                "(missing synchronization?)")
    return None
