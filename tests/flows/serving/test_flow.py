"""The serving flow's offered load (flows/serving/flow.py): where a frozen load comes from, when
it is measured again, and the warm-up's settling rule."""

import json
from types import SimpleNamespace

import pytest

from pytest_npuperf.errors import MeasurementError
from pytest_npuperf.flows.recording import SERVING_LOADS_ENV
from pytest_npuperf.flows.serving.engines import Scenario
from pytest_npuperf.flows.serving.flow import MAX_WARMUP_RUNS, frozen_load, settled, warm_up

FROZEN = {"load": 0.4, "capacity_rps": 12.5, "rate_rps": 5.0, "measured": "npu-x, 2026-12-01T00:00:00+00:00"}


class Session:
    def __init__(self, load=None):
        self.entry = None if load is None else SimpleNamespace(serving_load=load)
        self.asked = []

    def baseline_entry(self, test_id):
        self.asked.append(test_id)
        return self.entry


@pytest.fixture(autouse=True)
def no_recording_parent(monkeypatch):
    monkeypatch.delenv(SERVING_LOADS_ENV, raising=False)


def test_no_baseline_means_the_capacity_is_measured():
    assert frozen_load(Session(), "t", 0.4) is None


def test_the_baselines_load_is_reused():
    assert frozen_load(Session(FROZEN), "t", 0.4) == FROZEN


def test_a_baseline_frozen_for_another_fraction_is_not_reused():
    assert frozen_load(Session(FROZEN), "t", 0.8) is None


def test_a_load_measured_for_another_scenario_is_not_reused():
    shaped = dict(FROZEN, scenario="static, 64 requests, 120 new tokens, max_batch 8, timeout 0.05s")
    assert frozen_load(Session(shaped), "t", 0.4, shaped["scenario"]) == shaped
    assert frozen_load(Session(shaped), "t", 0.4, "static, 16 requests, 32 new tokens, max_batch 8, timeout 0.05s") is None


def test_a_recording_parents_load_comes_first(tmp_path, monkeypatch):
    mine = dict(FROZEN, rate_rps=6.0)
    path = tmp_path / "loads.json"
    path.write_text(json.dumps({"t": mine}))
    monkeypatch.setenv(SERVING_LOADS_ENV, str(path))
    session = Session(FROZEN)
    assert frozen_load(session, "t", 0.4) == mine and session.asked == []
    assert frozen_load(session, "other", 0.4) == FROZEN  # not in the parent's file: the baseline's


def test_an_unreadable_parent_file_fails_closed(tmp_path, monkeypatch):
    monkeypatch.setenv(SERVING_LOADS_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(MeasurementError, match="offered loads of the recording .* cannot be read"):
        frozen_load(Session(FROZEN), "t", 0.4)


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf"), "5"])
def test_an_invalid_stored_rate_is_an_error_naming_the_fix(rate):
    with pytest.raises(MeasurementError, match="delete the test's baseline entry and record it again"):
        frozen_load(Session(dict(FROZEN, rate_rps=rate)), "t", 0.4)


def test_settled_needs_two_runs_within_five_percent():
    assert not settled([]) and not settled([100.0])
    assert not settled([80.0, 100.0])
    assert settled([80.0, 100.0, 104.0]) and settled([100.0, 96.0])


class Engine:
    """serve_once for warm_up: the median TPOT of each run scripted, every scenario kept."""

    def __init__(self, tpots):
        self.tpots, self.seen = list(tpots), []

    def __call__(self, scenario):
        self.seen.append(scenario)
        return {"tpot_s_p50": self.tpots.pop(0) if self.tpots else 0.020, "output_tokens_per_s": 100.0}


def test_the_warm_up_sends_every_request_at_once_until_the_step_settles_then_one_run_at_the_load():
    engine = Engine([0.040, 0.030, 0.025, 0.024])
    out = warm_up(engine, Scenario(8, 2.5), at_least=1)
    assert [s.rate for s in engine.seen] == [float("inf")] * 4 + [2.5]
    assert out["runs"] == 4 and out["settled"] and out["runs_at_load"] == 1
    assert out["tpot_s"] == [0.040, 0.030, 0.025, 0.024]


def test_the_throughput_under_a_load_does_not_decide_when_the_step_has_settled():
    """Under a load below the capacity the tokens/s follow the offered rate: they agree from the
    second run on while the step time still falls; the TPOT does not."""
    engine = Engine([0.040, 0.030, 0.0295])  # the tokens/s of every run: 100.0
    out = warm_up(engine, Scenario(8, 2.5), at_least=1)
    assert settled(out["tokens_per_s"][:2])
    assert out["runs"] == 3 and out["settled"]  # 0.040 -> 0.030 is not settled; 0.030 -> 0.0295 is


def test_the_warm_up_stops_at_its_cap_unsettled_and_says_so():
    engine = Engine([0.100 * 0.8 ** k for k in range(10)])
    out = warm_up(engine, Scenario(8, 2.5), at_least=1)
    assert out["runs"] == MAX_WARMUP_RUNS and out["settled"] is False


def test_the_warm_up_takes_at_least_what_was_asked_and_none_when_zero():
    engine = Engine([])
    assert warm_up(engine, Scenario(8, 2.5), at_least=3)["runs"] == 3
    engine = Engine([])
    out = warm_up(engine, Scenario(8, 2.5), at_least=0)
    assert engine.seen == [] and out["runs"] == 0 and out["runs_at_load"] == 0


def test_where_timing_is_only_a_pipeline_check_the_warm_up_does_not_wait_for_the_step_to_settle():
    engine = Engine([0.100 * 0.8 ** k for k in range(10)])
    out = warm_up(engine, Scenario(8, 2.5), at_least=1, settle=False)
    assert [s.rate for s in engine.seen] == [float("inf"), 2.5] and out["settled"] is None


def test_an_all_at_once_test_takes_no_extra_run_at_its_load():
    engine = Engine([])
    warm_up(engine, Scenario(8, float("inf")), at_least=2)
    assert len(engine.seen) == 2


SERVE = """
import pytest

pytestmark = pytest.mark.npu


def test_serve(npuperf):
    npuperf.serve("static", "bf16", load=0.5, requests=6, max_new_tokens=3, max_batch=2)
"""


@pytest.mark.orchestration
def test_a_load_is_measured_once_then_frozen_for_every_recording_process_and_the_compare_pass(npt):
    """The real plugin and the tiny model on the CPU: the capacity is probed in the first
    recording process only; the second runs at the same rate (so their samples pool); the
    baseline stores the load; the compare pass runs at it and finds the same workload."""
    npt.pytester.makepyfile(test_serve=SERVE)
    common = ("--npuperf-device", "cpu", "--npuperf-model", "tiny", "--npuperf-runs", "2",
              "--npuperf-baseline-dir", "b", "--npuperf-results", "r.json")
    npt.run(*common, "--npuperf-save-baseline", "--npuperf-processes", "2").assert_outcomes(passed=1)
    (path,) = (npt.path / "b").rglob("*.json")
    entry = json.loads(path.read_text())["entries"]["test_serve.py::test_serve"]
    load = entry["serving_load"]
    assert load["load"] == 0.5 and load["capacity_rps"] > 0
    assert load["rate_rps"] == float(f"{0.5 * load['capacity_rps']:.4g}")
    assert sorted({s.get("process", 0) for s in entry["samples"]}) == [0, 1]  # pooled: one workload
    assert f"={load['rate_rps']:g}-" in entry["workload"]["mode"]
    npt.run(*common).assert_outcomes(passed=1)
    (test,) = json.loads((npt.path / "r.json").read_text())["tests"]
    extra = test["result"]["extra"]
    assert extra["serving_load"] == load
    assert test["comparison"]["status"] != "NO_BASELINE" and not test["comparison"]["mismatch"]
    assert all(run["offered_rps"] == load["rate_rps"] for run in extra["serving_runs"])
    warmup = extra["serving_warmup"]
    # the CPU: a pipeline check, so the warm-up is the one all-at-once run asked for, not settled
    assert warmup["runs"] == 1 and warmup["all_at_once"] and warmup["runs_at_load"] == 1 and warmup["settled"] is None
    assert len(warmup["tpot_s"]) == warmup["runs"] and all(t > 0 for t in warmup["tpot_s"])
