"""Serving under load (flows/serving/engines.py): schedules, metrics and bad input on synthetic
data; one real tiny run per engine."""

import math
import statistics

import pytest
from fakes import synthetic
from support.skips import require

from pytest_npuperf.flows.serving.engines import (
    DEFAULT_SLOS,
    SLO,
    RequestRecord,
    Scenario,
    ServingError,
    check_kv_budget,
    parse_slo,
    percentile,
    summarize,
)
from pytest_npuperf.stack.compat import require_continuous_batching


def test_poisson_schedule_is_seeded_and_has_the_requested_rate():
    a = Scenario(2000, rate=50.0, seed=3).arrivals()
    assert a == Scenario(2000, rate=50.0, seed=3).arrivals() and a != Scenario(2000, rate=50.0, seed=4).arrivals()
    gaps = [y - x for x, y in zip(a, a[1:])]
    assert statistics.mean(gaps) == pytest.approx(1 / 50, rel=0.08)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, rel=0.1)  # exponential: CV 1


def test_burstiness_changes_the_spread_not_the_rate():
    bursty = Scenario(4000, rate=50.0, burstiness=0.25, seed=1).arrivals()
    gaps = [y - x for x, y in zip(bursty, bursty[1:])]
    assert statistics.mean(gaps) == pytest.approx(1 / 50, rel=0.1)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(2.0, rel=0.15)  # 1/sqrt(shape)


def test_all_at_once():
    assert Scenario(5, rate=math.inf).arrivals() == [0.0] * 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(requests=4, rate=0.0), "request rate must be > 0"),
    (dict(requests=4, rate=-3.0), "request rate must be > 0"),
    (dict(requests=4, rate=float("nan")), "request rate must be > 0"),
    (dict(requests=0, rate=1.0), "requests must be >= 1"),
    (dict(requests=4, rate=1.0, burstiness=0.0), "burstiness must be a positive number"),
    (dict(requests=4, rate=1.0, max_new_tokens=1), "max_new_tokens must be >= 2"),
])
def test_bad_scenarios(kwargs, message):
    with pytest.raises(ServingError, match=message):
        Scenario(**kwargs).validate()


def test_slo_parsing():
    assert parse_slo("chat:ttft=800ms,tpot=50ms") == SLO("chat", 0.8, 0.05)
    assert parse_slo("ttft=2s,tpot=0.1") == SLO("custom", 2.0, 0.1)
    for bad, message in [("chat:ttft=fast,tpot=1", "must be a number"), ("chat:ttft=1s", "both ttft and tpot"),
                         ("chat:latency=1s,tpot=1s", "expected 'name:ttft="), ("x:ttft=-1ms,tpot=1ms", "positive")]:
        with pytest.raises(ServingError, match=message):
            parse_slo(bad)


def test_kv_budget_is_checked_before_anything_runs():
    check_kv_budget([30, 40], 32, capacity_tokens=8 * 72, max_batch=8)
    with pytest.raises(ServingError, match="needs 72 KV tokens but the KV budget holds 64: it can never be served"):
        check_kv_budget([30, 40], 32, capacity_tokens=64, max_batch=1)
    with pytest.raises(ServingError, match="static batch of 8 requests"):
        check_kv_budget([30, 40], 32, capacity_tokens=300, max_batch=8)


def _record(i, arrival, start, first, step, n=5):
    return RequestRecord(f"r{i}", 10, arrival, start, [first + k * step for k in range(n)])


def test_request_metrics_follow_the_formulas():
    r = _record(0, arrival=1.0, start=1.2, first=1.5, step=0.1)
    assert r.ttft_s == pytest.approx(0.5)  # queueing counts
    assert r.queue_s == pytest.approx(0.2)
    assert r.e2e_s == pytest.approx(0.9)
    assert r.tpot_s == pytest.approx(0.1)
    assert r.itl_s == pytest.approx([0.1] * 4)


def test_summary_percentiles_throughput_and_goodput():
    records = [_record(i, 0.0, 0.0, 0.1 * (i + 1), 0.02) for i in range(20)]
    s = summarize(records, wall_s=4.0, slos=DEFAULT_SLOS)
    assert s["ttft_s_p50"] == pytest.approx(1.0) and s["ttft_s_p90"] == pytest.approx(1.8)
    assert s["ttft_s_p99"] is None  # 20 requests cannot give a p99
    assert s["output_tokens_per_s"] == 100 / 4.0 and s["request_throughput"] == 5.0
    assert s["goodput_mlperf"] == 20 / 4.0  # TTFT <= 2 s, TPOT 20 ms <= 100 ms
    assert s["goodput_interactive"] == 5 / 4.0  # TTFT 0.1 .. 0.5 s: 5 requests within 500 ms
    assert s["slo_attainment_interactive"] == pytest.approx(5 / 20)


def test_percentile_needs_enough_samples():
    assert percentile(list(range(9)), 0.9) is None
    assert percentile(list(range(1, 101)), 0.99) == 99


def test_bad_rate_fails_before_loading_a_model(npt):
    npt.fake("def test_serve(npuperf):\n    npuperf.serve('static', 'bf16', 0)\n")
    synthetic.LOADS.clear()
    result = npt.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*request rate must be > 0 requests/s (or inf for all at once), got 0.0"])
    assert synthetic.LOADS == []


def test_unknown_engine(npt):
    npt.fake("def test_serve(npuperf):\n    npuperf.serve('vllm-magic', 'bf16', 10)\n")
    npt.run().stdout.fnmatch_lines(["*unknown serving engine 'vllm-magic'; accepted: static, continuous, vllm"])


@pytest.mark.parametrize("engine", ["static", "continuous"])
def test_real_tiny_run(engine):
    torch = pytest.importorskip("torch")  # noqa: F841
    from pytest_npuperf.devices.cpu import CpuDevice
    from pytest_npuperf.flows.serving import engines as serving
    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision

    if engine == "continuous":
        require(require_continuous_batching)
    device = CpuDevice()
    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    scenario = Scenario(6, rate=math.inf, max_new_tokens=4, max_batch=4)
    prompts = serving.serving_prompts(6)
    if engine == "static":
        records, wall = serving.run_static(loaded, device, prompts, scenario)
    else:
        records, wall = serving.run_continuous(loaded, device, prompts, scenario, serving.kv_capacity_tokens(loaded, device))
    assert [r.output_tokens for r in records] == [4] * 6
    assert all(r.arrival_s <= r.start_s + 1e-3 and r.ttft_s > 0 and r.tpot_s > 0 for r in records)
    assert wall > 0
    assert loaded.model.config._attn_implementation == "sdpa"  # restored for later tests
