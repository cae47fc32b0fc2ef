"""Drift across upgrades (judge/drift.py): steps that each pass add up, and fail past the budget."""

import pytest
from support.results import make_result

from pytest_npuperf.judge.compare import budgets_for, compare
from pytest_npuperf.judge.stats import OK, REGRESSED
from pytest_npuperf.store.baselines import BaselineStore

BASE = (1.00, 1.002, 0.998, 1.001, 0.999)


def _record_five_upgrades(store, reset_at=None):
    """Six recordings, each 2% slower than the last (every one passed within its 3% budget)."""
    for step in range(6):
        result = make_result(e2e=tuple(x * 1.02 ** step for x in BASE))
        result.timestamp = f"2026-0{step + 1}-01T00:00:00+00:00"
        store.save("cpu-X", "tiny", [result], reason=f"upgrade {step}", reset_drift=(step == reset_at))
    return store.load("cpu-X", "tiny")[result.test_id]


def test_five_small_steps_that_each_passed_add_up_to_a_failure(tmp_path):
    entry = _record_five_upgrades(BaselineStore(tmp_path))
    assert len(entry.history) == 5
    today = make_result(e2e=tuple(x * 1.02 ** 5 for x in BASE))  # the same as the last baseline
    comparison = compare(today, entry, budgets_for(None, {}), 0.05)
    v = comparison.verdict("e2e_s")
    assert v.status == REGRESSED and comparison.status == REGRESSED
    assert v.worse_change == pytest.approx(0.0, abs=1e-3)  # nothing moved since the last baseline
    assert v.drift == pytest.approx(1.02 ** 5 - 1, rel=1e-3)
    assert "drift since the baseline of 2026-01-01T00:00:00+00:00: +10.4% worse" in v.note
    assert "over 6 steps: baseline of 2026-02-01T00:00:00+00:00 +2.0%" in v.note
    assert v.note.count("+2.0%") == 5 and "--npuperf-reset-drift" in v.note
    # tokens/s went down by the same steps: the direction is right for higher-is-better metrics
    assert comparison.verdict("tokens_per_s").status == REGRESSED


def test_a_reset_drift_starts_the_chain_again(tmp_path):
    entry = _record_five_upgrades(BaselineStore(tmp_path), reset_at=4)
    today = make_result(e2e=tuple(x * 1.02 ** 5 for x in BASE))
    v = compare(today, entry, budgets_for(None, {}), 0.05).verdict("e2e_s")
    assert v.status == OK and v.drift == pytest.approx(0.02, rel=1e-2)  # since the reset recording only
    latest = _record_five_upgrades(BaselineStore(tmp_path / "b"), reset_at=5)
    assert latest.drift_reset and compare(today, latest, budgets_for(None, {}), 0.05).verdict("e2e_s").drift is None


def test_a_different_workload_in_the_history_breaks_the_chain(tmp_path):
    store = BaselineStore(tmp_path)
    old = make_result(e2e=tuple(x * 0.5 for x in BASE), tokens=8)  # another output length
    store.save("cpu-X", "tiny", [old])
    for step in range(2):
        store.save("cpu-X", "tiny", [make_result(e2e=tuple(x * 1.01 ** step for x in BASE))])
    entry = store.load("cpu-X", "tiny")[old.test_id]
    v = compare(make_result(e2e=tuple(x * 1.01 for x in BASE)), entry, budgets_for(None, {}), 0.05).verdict("e2e_s")
    assert v.status == OK and v.drift == pytest.approx(0.01, rel=5e-2)  # the 16-token baselines only


def test_a_value_that_fell_to_zero_or_a_count_adds_no_drift(tmp_path):
    from pytest_npuperf.judge.drift import drift
    from pytest_npuperf.judge.metrics import METRICS

    items = [{"recorded_at": "2026-01-01", "medians": {"e2e_s": 1.0}}]
    assert drift(METRICS["e2e_s"], items, 1.1, "2026-02-01", (-1.0, -1.0, -1.0)) is None
    store = BaselineStore(tmp_path)
    for count in (2, 3):
        result = make_result()
        for sample in result.samples:
            sample.graph_compiles = count
        store.save("cpu-X", "tiny", [result])
    entry = store.load("cpu-X", "tiny")[result.test_id]
    now = make_result()
    for sample in now.samples:
        sample.graph_compiles = 3
    v = compare(now, entry, budgets_for(None, {}), 0.05).verdict("graph_compiles")
    assert v.status == OK and v.drift is None  # an accepted count is not drift
