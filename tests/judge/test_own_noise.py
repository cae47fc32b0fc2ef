"""This compare pass's own between-process noise against the baseline's (judge/own_noise.py):
synthetic samples tagged by process, no timing."""

import math

import numpy as np
import pytest

from pytest_npuperf.judge import own_noise
from pytest_npuperf.judge.gate import NoisePrior
from pytest_npuperf.judge.result import Result, Sample, Workload, tag_process

WORKLOAD = Workload("m", "h", "bf16", 1, (), (), 32)
# The baseline's recording: 3% between processes, 5 degrees of freedom (6 processes).
PRIOR = {"tpot_s": NoisePrior(0.03 ** 2, 5.0, "the 6 recorded processes, pooled over the run's baselines")}


def result(test_id, shifts, first=1.0):
    """A test's own process at ``first``, then one fresh process per shift, 5 runs each."""
    samples = tag_process([Sample(tpot_s=first * r) for r in (1.0, 1.001, 0.999, 1.0, 1.002)], 0)
    for tag, shift in enumerate(shifts, start=1):
        samples += tag_process([Sample(tpot_s=shift * r) for r in (1.0, 1.001, 0.999, 1.0, 1.002)], tag)
    return Result(test_id, "npu-X", WORKLOAD, samples)


def shifts(rng, cv, n):
    return list(np.exp(rng.normal(0.0, cv, n)))


def test_only_the_fresh_processes_count_and_tests_without_two_of_them_give_nothing():
    # The first process landed 40% off (why the test took fresh processes): it is not a fair draw.
    far_first = result("a", [1.0, 1.01, 0.99], first=1.4)
    one_fresh = result("b", [1.2])
    pooled = own_noise.pooled([far_first, one_fresh, result("c", [])])
    ss, df, tests = pooled["tpot_s"]
    assert (df, tests) == (2, 1)
    assert math.sqrt(ss / df) == pytest.approx(0.01, rel=0.05)


def test_a_pass_as_steady_as_its_baseline_is_consistent():
    rng = np.random.default_rng(3)
    results = [result(f"t{i}", shifts(rng, 0.03, 3)) for i in range(8)]
    (check,) = own_noise.check(results, PRIOR)
    assert check.metric == "tpot_s" and check.df == 16 and check.tests == 8 and not check.noisier
    (line,) = own_noise.summary_lines([check], ["t9"])
    assert line.startswith("npuperf: this compare pass's own process noise is consistent with the baseline's")
    assert "tpot_s CV " in line and "against the baseline's 3.0% (df 5)" in line


def test_a_pass_three_times_noisier_needs_attention_naming_the_first_process_verdicts():
    rng = np.random.default_rng(3)
    results = [result(f"t{i}", shifts(rng, 0.09, 3)) for i in range(8)]
    (check,) = own_noise.check(results, PRIOR)
    assert check.noisier
    lines = own_noise.summary_lines([check], ["test_generate[bf16-bs1]", "test_generate[bf16-bs8]"])
    assert lines[0].startswith("npuperf: NOISE needs attention: this compare pass's fresh processes scattered more")
    assert lines[1].startswith("npuperf: 2 test(s) decided in their first process used the baseline's smaller noise")
    assert "test_generate[bf16-bs1], test_generate[bf16-bs8]" in lines[1]
    assert len(lines) == 2  # a report, not a failure (too weak a test to fail a nightly run on)
    assert len(own_noise.summary_lines([check], [])) == 1


def test_what_could_not_be_measured_is_said():
    assert own_noise.summary_lines([], ["a"]) == [
        "npuperf: this compare pass measured no between-process noise of its own (no test took two fresh "
        "processes); its verdicts rest on the noise the baseline's recording processes showed"]
    # Fresh processes, but a baseline recorded in one process: measured, not tested.
    (check,) = own_noise.check([result("a", [1.0, 1.05, 0.97])], {})
    assert check.prior is None and not check.noisier
    (line,) = own_noise.summary_lines([check], [])
    assert line.endswith("the baseline's not known (the baseline's recording measured no between-process noise to hold it against)")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0])
def test_a_fresh_process_with_a_value_that_is_no_time_is_left_out(bad):
    broken = result("a", [1.0, 1.02, 0.98])
    broken.samples[-1] = Sample(tpot_s=bad, process=3)
    assert own_noise.pooled([broken]) == {}

