"""Between-process noise (judge/noise.py)."""

from pytest_npuperf.judge.noise import NOISE_METRICS


def test_noise_covers_every_gated_metric():
    assert {"time_s", "serving_ttft_p50_s", "goodput_rps", "peak_reserved_bytes"} <= set(NOISE_METRICS)
