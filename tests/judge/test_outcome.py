"""A test's outcome (judge/outcome.py): the steps and operators that regressed with it."""

from pytest_npuperf.judge.compare import Comparison
from pytest_npuperf.judge.outcome import TestOutcome, related_regressions
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.judge.stats import OK, REGRESSED, Verdict


def _outcome(test_id, mode, status, change):
    workload = Workload("tiny", "f", "bf16", 1, ("x",), (1,), 0, kind=mode)
    result = Result(test_id, "cpu-X", workload, [Sample(time_s=1.0)], {}, "")
    verdict = Verdict("time_s", status, change=change)
    return TestOutcome(test_id, result, Comparison(status, [verdict]))


def test_localization_lists_slower_steps_and_ops_worst_first():
    outcomes = {o.test_id: o for o in [
        _outcome("t::test_op[bf16-rms_norm-m8]", "op", OK, 0.01),
        _outcome("t::test_decode[bf16-decode-bs8-ctx2048]", "step-decode", REGRESSED, 0.25),
        _outcome("t::test_op[bf16-attn_decode-ctx2048]", "op", REGRESSED, 0.31),
    ]}
    assert related_regressions(outcomes) == [
        "bf16-attn_decode-ctx2048 time +31.0% (REGRESSED)",
        "bf16-decode-bs8-ctx2048 time +25.0% (REGRESSED)",
    ]
