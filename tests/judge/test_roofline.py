"""Physical limits (judge/roofline.py): published peaks, the bandwidth a timing may imply, the
device's health against the baseline's calibration."""

from pytest_npuperf.judge import roofline
from pytest_npuperf.judge.roofline import check_bandwidth, health_problems, known_peak, peak_gb_s


def test_known_peaks():
    assert known_peak("NVIDIA H100 80GB HBM3").hbm_tb_s == 3.35
    assert known_peak("NVIDIA H200").hbm_tb_s == 4.8
    assert known_peak("Ascend910B4").hbm_tb_s == 0.8
    assert known_peak("Ascend910B1").hbm_tb_s is None  # not published: never invented
    assert known_peak("AMD EPYC") is None


def test_health_check_flags_a_slow_device():
    base = {"matmul_bfloat16_tflops": 100.0, "copy_gb_s": 1000.0}
    assert health_problems({"matmul_bfloat16_tflops": 95.0, "copy_gb_s": 990.0}, base) == []
    (problem,) = health_problems({"matmul_bfloat16_tflops": 50.0, "copy_gb_s": 990.0}, base)
    assert problem.startswith("matmul_bfloat16_tflops 50 now vs 100 when the baseline was recorded (-50%)")


def test_impossible_bandwidth_is_rejected():
    cal = {"copy_gb_s": 100.0, "copy_buffer_bytes": 1e9}
    assert check_bandwidth(14e9, 0.2, cal, "decode") is None  # 70 GB/s: plausible
    assert check_bandwidth(14e9, 0.13, cal, "decode") is None  # 108 GB/s: within 1.1 x 100
    assert "implies 116.7 GB/s read (14 GB in 120 ms), above 1.1 x the calibrated copy bandwidth of 100.0 GB/s" \
        in check_bandwidth(14e9, 0.12, cal, "decode")
    assert check_bandwidth(1e6, 1e-6, cal, "small") is None  # fits in caches: not judged
    # The published peak is a limit too, also when the calibration came out high.
    fast = {"copy_gb_s": 5000.0, "copy_buffer_bytes": 1e9}
    assert check_bandwidth(14e9, 0.0035, fast, "decode", 4800.0) is None  # 4.0 TB/s
    assert "implies 5185.2 GB/s read (14 GB in 2.7 ms), above the published peak of 4800.0 GB/s" \
        in check_bandwidth(14e9, 0.0027, fast, "decode", 4800.0)


ONE = "fp16-bs1-zh_qa"


def test_a_decode_step_faster_than_the_bandwidth_is_a_measurement_error(npt):
    npt.fake()
    # 14 GB of weights in the fake's ~10.5 ms TPOT: ~1.3 TB/s against a calibrated 1 TB/s copy.
    result = npt.run("-k", ONE, NPUPERF_FAKE_LINEAR_BYTES="14e9")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([
        f"*{ONE}?: measurement error: *{ONE}?: a decode step (TPOT) implies 13* GB/s read (14 GB in 10.* ms), "
        "above 1.1 x the calibrated copy bandwidth of 1000.0 GB/s*",
    ])
    assert npt.run("-k", ONE, NPUPERF_FAKE_LINEAR_BYTES="5e9").ret == 0  # ~480 GB/s: possible


def test_known_peak_takes_the_longest_name_the_device_name_contains(monkeypatch):
    family = roofline.Peak("Ascend910B", None, 1.0, "a family")
    sku = roofline.Peak("Ascend910B4", None, 0.8, "one SKU")
    for table in ((family, sku), (sku, family)):  # whatever the table's order
        monkeypatch.setattr(roofline, "PEAKS", table)
        assert known_peak("Ascend910B4") is sku
        assert known_peak("Ascend910B3") is family


def test_known_peak_ignores_case_and_spaces():
    assert known_peak("nvidia h200").name == "NVIDIA H200"
    assert known_peak("NVIDIA  H100 80GB HBM3").name == "NVIDIA H100"
    assert known_peak("Ascend910_9391").name == "Ascend910_93"


def test_peak_gb_s_is_the_published_bandwidth_where_one_is_known():
    assert peak_gb_s("NVIDIA H200") == 4800.0
    assert peak_gb_s("Ascend910B4") == 800.0
    assert peak_gb_s("Ascend910B1") is None  # a row without a published figure
    assert peak_gb_s("AMD EPYC") is None


def test_bandwidth_is_judged_only_against_figures_that_exist_and_working_sets_as_large_as_the_copy_buffer():
    cal = {"copy_gb_s": 100.0, "copy_buffer_bytes": 1e9}
    assert check_bandwidth(0.99e9, 0.001, cal, "op") is None  # 990 GB/s in a set below the buffer: caches
    assert "op implies 1000.0 GB/s read (1 GB in 1 ms), above 1.1 x the calibrated copy bandwidth of 100.0 GB/s" \
        in check_bandwidth(1e9, 0.001, cal, "op")  # the same speed at the buffer's size
    assert check_bandwidth(1e12, 0.001, {"copy_gb_s": 100.0}, "op") is None  # no buffer size: not judged
    assert check_bandwidth(1e12, 0.001, {"copy_buffer_bytes": 1e9}, "op") is None  # no copy figure
    assert check_bandwidth(1e12, 0.0, cal, "op") is None  # no time measured
    assert check_bandwidth(14e9, 0.2, cal, "decode", 50.0).startswith(
        "decode implies 70.0 GB/s read (14 GB in 200 ms), above the published peak of 50.0 GB/s")


def test_health_allows_20_percent_below_the_baseline_s_calibration_by_default():
    base = {"matmul_bfloat16_tflops": 100.0, "matmul_float16_tflops": 100.0, "copy_gb_s": 1000.0}
    assert health_problems({"matmul_bfloat16_tflops": 80.0, "matmul_float16_tflops": 80.0, "copy_gb_s": 800.0}, base) == []
    assert health_problems({"matmul_bfloat16_tflops": 100.0, "matmul_float16_tflops": 79.0, "copy_gb_s": 700.0}, base) == [
        "matmul_float16_tflops 79 now vs 100 when the baseline was recorded (-21%)",
        "copy_gb_s 700 now vs 1e+03 when the baseline was recorded (-30%)",
    ]
    assert health_problems({"copy_gb_s": 850.0}, {"copy_gb_s": 1000.0}, drop=0.9) == [
        "copy_gb_s 850 now vs 1e+03 when the baseline was recorded (-15%)"]
    # A figure missing, or not timed (fp16 on a CPU), on either side is not judged.
    assert health_problems({"matmul_bfloat16_tflops": 10.0}, {"copy_gb_s": 1000.0}) == []
    assert health_problems({"matmul_float16_tflops": None, "copy_gb_s": 0.0}, base) == []
