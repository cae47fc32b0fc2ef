"""Physical limits (judge/roofline.py): published peaks, the bandwidth a timing may imply, the
device's health against the baseline's calibration."""

from pytest_npuperf.judge.roofline import check_bandwidth, health_problems, known_peak


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
