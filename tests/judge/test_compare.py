"""Comparing a result with its baseline (judge/compare.py): budgets per device, gating (fidelity,
memory), non-finite baselines, the note on baselines without between-process noise."""

import math

import pytest
from support.results import make_result

from pytest_npuperf.errors import BaselineError
from pytest_npuperf.judge.compare import NO_PROCESS_NOISE, budgets_for, compare
from pytest_npuperf.judge.metrics import METRICS
from pytest_npuperf.judge.result import Sample
from pytest_npuperf.judge.stats import OK, REGRESSED
from pytest_npuperf.store.baselines import BaselineEntry


def test_budgets_per_device_profile():
    from pytest_npuperf.judge.compare import budgets_for

    accel = budgets_for(None, {})
    assert accel["e2e_s"] == 0.03 and accel["ttft_s"] == 0.05 and accel["time_s"] == 0.03
    from pytest_npuperf.devices.cpu import CPU_TIME_FLOOR

    cpu = budgets_for(CPU_TIME_FLOOR, {})
    assert CPU_TIME_FLOOR == 3.0
    assert cpu["e2e_s"] == cpu["serving_tpot_p50_s"] == cpu["time_s"] == 3.0 and cpu["peak_rss_bytes"] == 0.01
    assert budgets_for(CPU_TIME_FLOOR, {"time_s": 0.5})["time_s"] == 0.5  # the user's override wins


def test_a_baseline_with_non_finite_samples_asks_to_be_recorded_again():
    stored = make_result(e2e=(1.0, math.nan, 1.0))
    entry = BaselineEntry(stored.test_id, stored.to_dict(), "x.json")
    with pytest.raises(BaselineError, match="non-finite e2e_s samples.*--npuperf-save-baseline"):
        compare(make_result(e2e=(1.0, 1.0, 1.0)), entry, budgets_for(None, {}), 0.05)


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
    comparison = compare(now, entry, budgets_for(None, {}), 0.05)
    assert comparison.verdict("fidelity_top1").status == REGRESSED
    assert comparison.verdict("fidelity_top1").gated is real_weights
    assert comparison.status == status


def test_kl_and_cosine_stay_gated_with_random_weights():
    base, base_samples = _fidelity(0.98)
    now, now_samples = _fidelity(0.98, kl=0.05, cosine=0.95)
    base.samples, now.samples = base_samples, now_samples
    entry = BaselineEntry(base.test_id, base.to_dict(), "x.json")
    comparison = compare(now, entry, budgets_for(None, {}), 0.05)
    assert comparison.status == REGRESSED
    assert {v.metric for v in comparison.verdicts if v.status == REGRESSED} == {"fidelity_kl", "fidelity_cosine"}
    assert not METRICS["fidelity_greedy_agreement"].gates(False) and METRICS["fidelity_greedy_agreement"].gates(True)


MIB = 2**20


def test_peak_reserved_memory_is_gated():
    assert METRICS["peak_reserved_bytes"].gated
    base, now = make_result(e2e=(1.0,) * 5), make_result(e2e=(1.0,) * 5)
    base.samples = [Sample(e2e_s=1.0, peak_reserved_bytes=8000 * MIB) for _ in range(5)]
    now.samples = [Sample(e2e_s=1.0, peak_reserved_bytes=12000 * MIB) for _ in range(5)]  # kept reserved
    comparison = compare(now, BaselineEntry(base.test_id, base.to_dict(), "x.json"), budgets_for(None, {}), 0.05)
    assert comparison.status == REGRESSED


@pytest.mark.parametrize("kind, noted", [("npu", True), ("cuda", True), ("cpu", False)])
def test_an_accelerator_baseline_without_noise_says_so_in_each_row(kind, noted):
    stored = make_result(e2e=(1.0, 1.01, 0.99, 1.0, 1.0))
    now = make_result(e2e=(1.0, 1.01, 0.99, 1.0, 1.0))
    now.extra["device_kind"] = kind
    comparison = compare(now, BaselineEntry(stored.test_id, stored.to_dict(), "x.json"), budgets_for(None, {}), 0.05)
    assert (NO_PROCESS_NOISE in comparison.verdict("e2e_s").note) is noted
    with_noise = dict(stored.to_dict(), noise_cv={"e2e_s": 0.02})
    comparison = compare(now, BaselineEntry(stored.test_id, with_noise, "x.json"), budgets_for(None, {}), 0.05)
    assert NO_PROCESS_NOISE not in comparison.verdict("e2e_s").note
