"""Precisions (precision.py): an unknown one is a clear error naming the accepted ones."""


def test_unknown_precision_is_a_clear_error(npt):
    npt.fake(
        "def test_generate(npuperf):\n"
        "    npuperf.generate(precision='fp8', batch_size=1, workload='zh_qa')\n"
    )
    result = npt.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown precision 'fp8'; accepted: fp16, bf16*"])
