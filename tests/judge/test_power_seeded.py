"""The power benchmark's simulation (benchmarks/power.py), seeded, on a CI budget: a suite compare
with a 10% slowdown fails every test, an A/A compare fails none. The baseline is recorded in the
plugin's default number of processes on an accelerator (settings.DEFAULT_ACCELERATOR_PROCESSES,
6). The counts are what this seed gives (every draw is seeded, so they do not flake); a change of
the rule, of the plugin's sampling loop, of that default or of the simulation that moves them
shows here."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict

import pytest
from scipy.stats import mannwhitneyu

from pytest_npuperf.judge.stats import DRIFT, INCONCLUSIVE, OK, REGRESSED, UNCONFIRMED, UNDECIDED
from pytest_npuperf.settings import DEFAULT_ACCELERATOR_PROCESSES

POWER_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "power.py"
MODULE = "npuperf_benchmarks_power"  # benchmarks/ is no package: imported by path
SEED, TRIALS = 5, 2  # 2 trials x 8 tests per cell
BETWEEN, WITHIN = 0.03, 0.01


@pytest.fixture(scope="module")
def power() -> ModuleType:
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    spec = importlib.util.spec_from_file_location(MODULE, POWER_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def config(power: ModuleType) -> object:
    return power.Config(seed=SEED, trials=TRIALS, baseline_processes=DEFAULT_ACCELERATOR_PROCESSES)


@pytest.fixture(scope="module")
def cells(power: ModuleType) -> Dict[float, Dict[str, object]]:
    return power.simulate(config(power), BETWEEN, WITHIN, [0.0, 0.10])


def test_the_benchmark_records_the_baseline_in_the_plugins_default_processes(power: ModuleType) -> None:
    assert power.Config().baseline_processes == DEFAULT_ACCELERATOR_PROCESSES == 6


def test_ten_percent_slowdown_fails_every_test(power: ModuleType, cells) -> None:
    new, old = cells[0.10]["new"], cells[0.10]["old"]
    assert new.tests == TRIALS * len(power.SUITE) == 16
    assert new.status == {REGRESSED: 16}
    # Trial 1's first process shows the regression in all 8 tests and one fresh process confirms
    # each (5 + 5 runs). Trial 0's first process is shifted fast (the 8 tests of a suite process
    # share its shift): the first 5 runs leave every test UNDECIDED, and fresh processes decide
    # REGRESSED, after 1 (6 tests), 2 and 3 processes: 8 + 11 fresh processes, 80 + 95 runs.
    assert new.first_regressed == 8
    assert (new.fresh_sum, new.fresh_max, new.runs_sum) == (19, 3, 175)
    firsts = {spec.test_id: outcome.first for spec, outcome in outcomes(power, 0.10, trial=0)}
    assert set(firsts.values()) == {UNDECIDED}
    assert new.per_metric["e2e_s"][REGRESSED] == new.per_metric["tpot_s"][REGRESSED] == 16
    assert new.per_metric["tokens_per_s"][REGRESSED] == 16
    # TTFT (a 5% budget, its own prefill jitter) is still undecided in 7 tests when the other
    # metrics are REGRESSED; the test is REGRESSED all the same (the worst of its gated verdicts).
    assert new.per_metric["ttft_s"] == {REGRESSED: 9, INCONCLUSIVE: 7, power.PASSED: 0}
    # The rule before the budget rule, on the same draws: its practical gate is 3 x the CV of the
    # baseline's process medians (near 9% at 3% noise), so the 10% slowdown passes it as DRIFT in
    # 4 tests, and 1 is UNCONFIRMED by its fresh process.
    assert old.status == {REGRESSED: 11, DRIFT: 4, UNCONFIRMED: 1}


def outcomes(power: ModuleType, slowdown: float, trial: int):
    """The new rule's outcome of each test of one trial, judged as ``simulate`` judges it."""
    cfg, npu = config(power), power.fake_torch_npu()
    noise = power.Noise(BETWEEN, WITHIN, cfg.shared)
    base = power.record_baseline(npu, cfg, noise, trial)
    suite = power.Process(npu, cfg.seed, trial, power.CURRENT_SIDE, 0, noise, slowdown)
    return [(spec, power.judge_new(npu, cfg, noise, slowdown, trial, suite, spec, base)) for spec in power.SUITE]


def test_a_a_compare_fails_no_test(power: ModuleType, cells) -> None:
    new, old = cells[0.0]["new"], cells[0.0]["old"]
    assert REGRESSED not in new.status
    # At 3% between-process noise and a 3% budget, 6 baseline processes and at most 10 current ones
    # cannot show an unchanged test inside the budget unless its processes ran fast: 9 tests end
    # INCONCLUSIVE (a pass unless --npuperf-strict), never a failure. An undecided test takes at
    # least three fresh processes before the power calculation may call it futile (sampling.py),
    # and more while its change is clearly above zero (gate.processes_needed).
    assert new.status == {OK: 7, INCONCLUSIVE: 9}
    assert new.first_regressed == 0
    assert (new.fresh_sum, new.fresh_max, new.runs_sum) == (50, 8, 330)
    assert new.outcome == {REGRESSED: 0, INCONCLUSIVE: 9, power.PASSED: 7}
    assert old.status == {OK: 8, DRIFT: 8}


def test_a_cell_sees_the_same_draws_alone(power: ModuleType, cells) -> None:
    """Common random numbers: the draws are keyed by trial, side, process and test, not by the order
    in which the cells run, so a cell run alone gives the same outcomes."""
    alone = power.simulate(config(power), BETWEEN, WITHIN, [0.10])[0.10]
    for rule in ("new", "old"):
        assert alone[rule].status == cells[0.10][rule].status
        assert alone[rule].seconds_sum == pytest.approx(cells[0.10][rule].seconds_sum, rel=1e-12)
        assert alone[rule].per_test == cells[0.10][rule].per_test


def test_generation_is_timed_on_the_fake_npu_virtual_clock(power: ModuleType) -> None:
    launch = power.fake_torch_npu().LAUNCH_S
    spec = power.SUITE[-1]  # en_qa, batch 8
    process = power.Process(power.fake_torch_npu(), SEED, 0, power.CURRENT_SIDE, 0,
                            power.Noise(0.0, 0.0, 1.0), 0.10)
    samples, seconds = process.take(spec, 2, warmup=1)
    prefill, decode = spec.prefill_s * 1.10, spec.decode_s * 1.10
    e2e = power.NEW_TOKENS * launch + prefill + (power.NEW_TOKENS - 1) * decode
    for s in samples:
        assert s.e2e_s == pytest.approx(e2e, rel=1e-9)
        assert s.ttft_s == pytest.approx(launch + prefill, rel=1e-9)
        assert s.tpot_s == pytest.approx((e2e - s.ttft_s) / (power.NEW_TOKENS - 1), rel=1e-9)
        assert s.tokens_per_s == pytest.approx(8 * power.NEW_TOKENS / e2e, rel=1e-9)
    assert seconds == pytest.approx(3 * e2e, rel=1e-9)  # the warm-up run costs time too


@pytest.mark.parametrize("n,m", [(5, 15), (10, 15), (20, 15), (1, 4)])
def test_old_rules_exact_mann_whitney_matches_scipy(power: ModuleType, n: int, m: int) -> None:
    rng = random.Random(n * 100 + m)
    for _ in range(5):
        x = [rng.gauss(0.3, 1.0) for _ in range(n)]
        y = [rng.gauss(0.0, 1.0) for _ in range(m)]
        for higher_is_better in (False, True):
            expected = mannwhitneyu(x, y, alternative="less" if higher_is_better else "greater", method="exact").pvalue
            assert math.isclose(power.old_p_worse(x, y, higher_is_better), expected, rel_tol=1e-9, abs_tol=1e-15)
