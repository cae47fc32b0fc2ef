"""Between-process noise (judge/noise.py)."""

from pytest_npuperf.judge.metrics import METRICS
from pytest_npuperf.judge.noise import NOISE_METRICS


def test_noise_covers_every_gated_metric_and_no_reported_one():
    assert {"time_s", "serving_tpot_p50_s", "goodput_rps", "peak_reserved_bytes"} <= set(NOISE_METRICS)
    assert set(NOISE_METRICS) == {name for name, m in METRICS.items() if m.gated}
    assert "serving_ttft_p50_s" not in NOISE_METRICS and "peak_rss_bytes" not in NOISE_METRICS
