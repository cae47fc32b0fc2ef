"""The run header's calibration line (report/header.py)."""


def test_header_shows_calibration_and_peak(npt):
    npt.fake()
    result = npt.run()
    result.stdout.fnmatch_lines(["npuperf calibration: matmul bf16 100 TFLOP/s, fp16 100 TFLOP/s, copy 1e+03 GB/s; "
                                 "no published peak known for Fake Accelerator"])
