"""The run header's calibration line (report/header.py)."""

from pytest_npuperf.report.header import calibration_lines


def test_header_shows_calibration_and_peak(npt):
    npt.fake()
    result = npt.run()
    result.stdout.fnmatch_lines(["npuperf calibration: matmul bf16 100 TFLOP/s, fp16 100 TFLOP/s, copy 1e+03 GB/s; "
                                 "no published peak known for Fake Accelerator"])


def test_calibration_lines_put_the_calibration_next_to_the_published_peak():
    cal = {"matmul_bfloat16_tflops": 700.0, "matmul_float16_tflops": None, "copy_gb_s": 3000.0}
    assert calibration_lines("NVIDIA H100 80GB HBM3", cal) == [
        "npuperf calibration: matmul bf16 700 TFLOP/s, fp16 not timed (no fp16 matmul on this device), copy 3e+03 GB/s",
        "npuperf published peak of NVIDIA H100: bf16 989.4 TFLOP/s (71% reached), HBM 3.35 TB/s (90% reached by copy) "
        "[NVIDIA H100 datasheet (SXM5): 989.4 TFLOP/s BF16 dense, 3.35 TB/s]",
    ]
    npu = calibration_lines("Ascend910B4", {"matmul_bfloat16_tflops": 250.0, "matmul_float16_tflops": 260.0, "copy_gb_s": 600.0})
    assert npu[1] == ("npuperf published peak of Ascend910B4: HBM 0.8 TB/s (75% reached by copy) "
                      "[bandwidth ~0.8 TB/s, medium confidence (docs/measurement.md#physical-limits)]")
    assert calibration_lines("Ascend910B1", {"matmul_bfloat16_tflops": 250.0, "copy_gb_s": 600.0})[1].startswith(
        "npuperf published peak of Ascend910B1: none [")
