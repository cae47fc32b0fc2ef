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
    saturation,
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


@pytest.mark.parametrize("load", [0.0, -0.2, 1.0, 1.5, float("nan")])
def test_a_load_is_a_fraction_below_the_capacity(load):
    with pytest.raises(ServingError, match="load must be a fraction of the capacity between 0 and 1"):
        Scenario(4, rate=0.0, load=load).validate()


def test_a_load_needs_its_rate_resolved_before_arrivals():
    scenario = Scenario(4, rate=0.0, load=0.5)
    scenario.validate()  # the rate comes from the capacity, later
    with pytest.raises(ServingError, match="not resolved yet"):
        scenario.arrivals()


def _stream(arrivals, starts, service=0.1, tokens=4):
    return [RequestRecord(f"r{i}", 10, a, s, [s + service + 0.01 * k for k in range(tokens)])
            for i, (a, s) in enumerate(zip(arrivals, starts))]


def test_saturation_all_at_once_is_by_design():
    records = _stream([0.0] * 8, [0.0] * 8)
    assert "saturated by design" in saturation(records, all_at_once=True)


def test_a_run_that_keeps_up_is_not_saturated_even_when_requests_wait_for_a_batch():
    # Every request waits for the running batch (up to 0.3 s, longer than its own service), yet
    # the engine keeps up: no backlog at the last arrival, no growth.
    arrivals = [0.5 * i for i in range(16)]
    records = _stream(arrivals, [a + 0.3 for a in arrivals])
    assert saturation(records, all_at_once=False) is None


def test_a_backlog_at_the_last_arrival_is_saturation():
    arrivals = [0.01 * i for i in range(16)]
    records = _stream(arrivals, [0.2 * (i // 4) for i in range(16)])  # batches of 4, 0.2 s apart
    why = saturation(records, all_at_once=False)
    assert why.startswith("12 of 16 requests had not started when the last one arrived")


def test_a_growing_queue_is_saturation():
    arrivals = [0.1 * i for i in range(16)]
    starts = [a + 0.02 * i * i / 16 for i, a in enumerate(arrivals)]  # waits grow with each request
    starts[-1] = arrivals[-1]  # and nobody is still waiting at the last arrival
    records = _stream(arrivals, starts)
    assert "the queue grew over the run" in saturation(records, all_at_once=False)


def test_summary_carries_the_offered_rate_and_saturation():
    arrivals = [0.5 * i for i in range(8)]
    summary = summarize(_stream(arrivals, arrivals), 4.0, DEFAULT_SLOS, rate=2.0)
    assert summary["offered_rps"] == 2.0 and summary["saturated"] is None
    summary = summarize(_stream([0.0] * 8, [0.0] * 8), 1.0, DEFAULT_SLOS, rate=math.inf)
    assert summary["offered_rps"] is None and "by design" in summary["saturated"]
    assert "saturated" not in summarize(_stream(arrivals, arrivals), 4.0, DEFAULT_SLOS)


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
