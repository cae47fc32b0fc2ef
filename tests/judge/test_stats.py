"""The regression rule on synthetic samples: deterministic, no real timing."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_npuperf.judge.metrics import METRICS
from pytest_npuperf.judge.stats import (
    DRIFT,
    IMPROVED,
    INCONCLUSIVE,
    OK,
    REGRESSED,
    decide,
    min_attainable_p,
    robust_cv,
    screen_outliers,
)

E2E = METRICS["e2e_s"]
TPS = METRICS["tokens_per_s"]
MEM = METRICS["peak_allocated_bytes"]
BASE = [1.00, 1.01, 0.99, 1.02, 0.98]
samples = st.lists(st.floats(min_value=1e-3, max_value=1e3, allow_nan=False), min_size=3, max_size=12)
fractions = st.floats(min_value=0.001, max_value=2.0)


def test_clear_regression():
    v = decide(E2E, [x * 1.2 for x in BASE], BASE, floor=0.03)
    assert v.status == REGRESSED
    assert v.change == pytest.approx(0.2)
    assert v.p_value == pytest.approx(1 / 252)
    assert v.tolerance == pytest.approx(max(0.03, 3 * robust_cv(BASE)))


def test_higher_is_better_direction():
    assert decide(TPS, [x * 0.8 for x in BASE], BASE, floor=0.03).status == REGRESSED
    assert decide(TPS, [x * 1.2 for x in BASE], BASE, floor=0.03).status == IMPROVED
    assert decide(E2E, [x * 0.8 for x in BASE], BASE, floor=0.03).status == IMPROVED


def test_drift_is_significant_but_small():
    assert decide(E2E, [x * 1.02 + 0.03 for x in BASE], BASE, floor=0.10).status == DRIFT


def test_three_vs_three_cannot_regress_only_inconclusive():
    v = decide(E2E, [1.5, 1.5, 1.5], [1.0, 1.0, 1.0], floor=0.03)
    assert v.status == INCONCLUSIVE
    assert "cannot reach p < 0.05" in v.note
    assert min_attainable_p(3, 3) == pytest.approx(0.05)
    assert min_attainable_p(5, 5) == pytest.approx(0.003968, rel=1e-3)


def test_one_slow_outlier_is_screened_and_reported():
    current = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 5.0]
    v = decide(E2E, current, BASE, floor=0.03)
    assert v.dropped_current == [5.0]
    assert v.status == OK


def test_screen_drops_at_most_a_fifth():
    kept, dropped = screen_outliers([1, 1, 1, 1, 1, 9, 9, 9, 9, 9.5], higher_is_better=False)
    assert len(dropped) <= 2
    kept, dropped = screen_outliers([1.0, 2.0, 3.0, 100.0], higher_is_better=False)
    assert dropped == []  # n // 5 == 0


def test_memory_uses_ratio_and_absolute_slack():
    mib = 2**20
    base = [1000 * mib] * 5
    assert decide(MEM, [1050 * mib] * 5, base, floor=0.01).status == OK  # within 64 MiB
    assert decide(MEM, [1100 * mib] * 5, base, floor=0.01).status == REGRESSED
    assert decide(MEM, [1100 * mib] * 5, base, floor=0.01).p_value is None


def test_stored_between_process_noise_widens_tolerance():
    current = [x * 1.2 for x in BASE]
    assert decide(E2E, current, BASE, floor=0.03).status == REGRESSED
    widened = decide(E2E, current, BASE, floor=0.03, noise_cv=0.1)
    assert widened.tolerance == pytest.approx(0.3)
    assert widened.status == DRIFT  # still significant, no longer beyond the tolerance


@given(samples)
def test_sample_compared_with_itself_never_regresses(values):
    for metric in (E2E, TPS, MEM):
        assert decide(metric, values, values, floor=0.03).status in (OK,)


@settings(max_examples=200)
@given(samples, samples, fractions, fractions)
def test_wider_tolerance_never_turns_ok_into_regressed(current, baseline, t1, t2):
    low, high = sorted((t1, t2))
    for metric in (E2E, TPS, MEM):
        narrow = decide(metric, current, baseline, floor=low).status
        wide = decide(metric, current, baseline, floor=high).status
        if narrow != REGRESSED:
            assert wide != REGRESSED


@given(samples, st.floats(min_value=1.01, max_value=10))
def test_a_slowdown_beyond_the_tolerance_is_never_ok(values, factor):
    v = decide(E2E, [x * factor for x in values], values, floor=0.03)
    assert math.isclose(v.worse_ratio, factor, rel_tol=1e-9)
    if factor > 1 + v.tolerance:
        assert v.status in (REGRESSED, INCONCLUSIVE)
    else:
        assert v.status in (OK, DRIFT)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_the_decision_refuses_non_finite_samples(bad):
    # Today NaN was OK for lower-is-better and inf REGRESSED for higher-is-better.
    for name in ("e2e_s", "tokens_per_s"):
        with pytest.raises(ValueError, match="non-finite current samples"):
            decide(METRICS[name], [1.0, 1.0, bad, 1.0, 1.0], [1.0] * 5, 0.03)
        with pytest.raises(ValueError, match="non-finite baseline samples"):
            decide(METRICS[name], [1.0] * 5, [1.0, bad, 1.0, 1.0, 1.0], 0.03)
