"""No verdict from impossible numbers (issue 13, section 3)."""

import math

import pytest
from test_baseline import make_result

from pytest_npuperf.errors import BaselineError
from pytest_npuperf.judge.compare import compare, floors_for
from pytest_npuperf.judge.metrics import METRICS
from pytest_npuperf.judge.result import Sample
from pytest_npuperf.judge.stats import OK, REGRESSED, decide
from pytest_npuperf.store.baselines import BaselineEntry

SAVE = "--npuperf-save-baseline"
ONE = "fp16-bs1-zh_qa"


@pytest.mark.parametrize("metric", ["e2e_s", "tokens_per_s", "fidelity_kl"])
def test_a_non_finite_sample_is_a_measurement_error(npt, metric):
    npt.fake()
    npt.run(SAVE, "-k", ONE)
    result = npt.run("-k", ONE, NPUPERF_FAKE_NAN=f"{ONE}:{metric}")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([f"*{ONE}?: measurement error: sample 1 has non-finite values ({metric}=nan)*"])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_the_decision_refuses_non_finite_samples(bad):
    # Today NaN was OK for lower-is-better and inf REGRESSED for higher-is-better.
    for name in ("e2e_s", "tokens_per_s"):
        with pytest.raises(ValueError, match="non-finite current samples"):
            decide(METRICS[name], [1.0, 1.0, bad, 1.0, 1.0], [1.0] * 5, 0.03)
        with pytest.raises(ValueError, match="non-finite baseline samples"):
            decide(METRICS[name], [1.0] * 5, [1.0, bad, 1.0, 1.0, 1.0], 0.03)


def test_a_baseline_with_non_finite_samples_asks_to_be_recorded_again():
    stored = make_result(e2e=(1.0, math.nan, 1.0))
    entry = BaselineEntry(stored.test_id, stored.to_dict(), "x.json")
    with pytest.raises(BaselineError, match="non-finite e2e_s samples.*--npuperf-save-baseline"):
        compare(make_result(e2e=(1.0, 1.0, 1.0)), entry, floors_for(None, {}), 0.05)


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


def _fidelity(top1, kl=0.001, cosine=0.999):
    return make_result(e2e=(1.0,) * 5), [Sample(e2e_s=1.0, fidelity_top1=top1, fidelity_kl=kl, fidelity_cosine=cosine)
                                         for _ in range(5)]


@pytest.mark.parametrize("real_weights, status", [(False, OK), (True, REGRESSED)])
def test_top1_agreement_is_gated_only_with_real_weights(real_weights, status):
    base, base_samples = _fidelity(0.98)
    now, now_samples = _fidelity(0.90)  # -8% top-1: a flat-logit flip with random weights
    base.samples, now.samples = base_samples, now_samples
    now.extra["real_weights"] = real_weights
    entry = BaselineEntry(base.test_id, base.to_dict(), "x.json")
    comparison = compare(now, entry, floors_for(None, {}), 0.05)
    assert comparison.verdict("fidelity_top1").status == REGRESSED
    assert comparison.verdict("fidelity_top1").gated is real_weights
    assert comparison.status == status


def test_kl_and_cosine_stay_gated_with_random_weights():
    base, base_samples = _fidelity(0.98)
    now, now_samples = _fidelity(0.98, kl=0.05, cosine=0.95)
    base.samples, now.samples = base_samples, now_samples
    entry = BaselineEntry(base.test_id, base.to_dict(), "x.json")
    comparison = compare(now, entry, floors_for(None, {}), 0.05)
    assert comparison.status == REGRESSED
    assert {v.metric for v in comparison.verdicts if v.status == REGRESSED} == {"fidelity_kl", "fidelity_cosine"}
    assert not METRICS["fidelity_greedy_agreement"].gates(False) and METRICS["fidelity_greedy_agreement"].gates(True)
