"""The serving flow: N requests arriving at a rate, served by one engine; each run of them is one
sample. In graph mode (static engine) every batch runs on a compiled decode step, one per batch
size bucket up to max_batch, all compiled before the requests arrive.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ...errors import BaselineError, MeasurementError
from ...judge.outcome import TestOutcome
from ...judge.result import Sample, Workload, token_ids_hash
from ...model.loader import tokenizer_identity
from ...modes import ExecutionMode
from ...precision import Precision
from ...stack.compat import require_continuous_batching
from ...store.baselines import SERVING_LOAD_KEY
from ..graph.plan import GraphPlan
from ..graph.runner import BATCH_BUCKETS, batch_bucket
from ..measure import generate_fixed, make_batch
from ..measurement import TestRun
from ..recording import SERVING_LOADS_ENV
from ..session import PerfSession, utc_now
from . import engines
from . import vllm as vllm_engine


def serving_identity(scenario: engines.Scenario, engine_args: Optional[Mapping[str, Any]]) -> str:
    """The arrival schedule (hashed), SLOs and engine settings of a serving test.

    The vLLM arguments that name a temporary folder or follow the free memory are left out:
    they differ between runs of the same work.
    """
    arrivals = hashlib.sha256(json.dumps([round(t, 9) for t in scenario.arrivals()]).encode()).hexdigest()[:16]
    slos = ";".join(f"{x.name}:ttft<={x.ttft_s:g}s,tpot<={x.tpot_s:g}s" for x in scenario.slos)
    text = f"arrivals={arrivals}, slos=[{slos}], max_batch={scenario.max_batch}"
    if engine_args:
        kept = {k: v for k, v in engine_args.items() if k not in ("model", "gpu_memory_utilization")}
        text += f", engine_args={json.dumps(kept, sort_keys=True, default=str)}"
    return text


def check_engine(session: PerfSession, engine: str, precision: Precision, mode: ExecutionMode,
                 scenario: engines.Scenario) -> None:
    """Refuse an unknown engine, a mode it cannot serve or a bad scenario; skip (EngineUnavailable,
    Unsupported) an engine the stack lacks; all before anything is loaded."""
    if engine not in engines.ENGINES:
        raise engines.ServingError(f"unknown serving engine {engine!r}; accepted: {', '.join(engines.ENGINES)}")
    if mode.graph and engine != "static":
        raise engines.ServingError(f"graph mode serves with the static engine only, not {engine!r} "
                                   "(continuous batching and vLLM bring their own graph handling)")
    scenario.validate()
    if engine == "vllm":
        why = vllm_engine.unavailable(session.device().kind, precision.name)
        if why:
            raise vllm_engine.EngineUnavailable(why)
    if engine == "continuous":
        require_continuous_batching()


# Warm-up runs of a serving test send every request at once and go on until the median TPOT of
# the last two agrees within SETTLED (the decode step has settled: caches, allocator, clocks), up
# to MAX_WARMUP_RUNS. Not the output tokens/s: under a load below the capacity it follows the
# offered rate, so it agreed from the second run while the step time was still falling (on the
# simulated device of benchmarks/serving_aa.py the transient then leaked into the timed runs).
SETTLED = 0.05
MAX_WARMUP_RUNS = 5


def load_scenario(engine: str, scenario: engines.Scenario, mode: ExecutionMode) -> str:
    """What a capacity depends on besides the device: the engine and the scenario's shape."""
    return (f"{engine}{mode.id_suffix}, {scenario.requests} requests, {scenario.max_new_tokens} new tokens, "
            f"max_batch {scenario.max_batch}, timeout {scenario.batch_timeout_s:g}s")


def frozen_load(session: PerfSession, test_id: str, load: float, shape: str = "") -> Optional[Dict[str, Any]]:
    """The offered load this test must run at: the one a recording parent measured (children of a
    multi-process recording), else the one its baseline on this profile froze; None when neither
    exists or it was frozen for another fraction or another scenario ``shape`` (load_scenario;
    the capacity is then measured again, and the workload differs from the baseline's, which the
    comparison reports). A baseline file that cannot be read raises BaselineError."""
    path = os.environ.get(SERVING_LOADS_ENV)
    found: Optional[Mapping[str, Any]] = None
    if path:
        try:
            found = json.loads(Path(path).read_text(encoding="utf-8")).get(test_id)
        except (OSError, ValueError, AttributeError) as exc:
            raise MeasurementError(f"the offered loads of the recording ({path}) cannot be read: {exc}") from None
    if found is None:
        entry = session.baseline_entry(test_id)
        found = entry.serving_load if entry is not None else None
    if found is not None and not isinstance(found, Mapping):
        raise MeasurementError(f"the offered load of {test_id} is not a mapping ({found!r}); "
                               "delete the test's baseline entry and record it again")
    if not found or found.get("load") != load or found.get("scenario", shape) != shape:
        return None
    rate = found.get("rate_rps")
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise MeasurementError(f"the stored offered load of {test_id} is invalid ({dict(found)}); "
                               "delete the test's baseline entry and record it again")
    return dict(found)


def offered_rate(load: float, capacity_rps: float) -> float:
    """The rate a test offers: its fraction of the measured capacity, kept to 4 significant digits
    (it is part of the test's workload, so it must read the same in every process)."""
    return float(f"{load * capacity_rps:.4g}")


def settled(values: List[float]) -> bool:
    """Whether the last two warm-up runs' figures (their median TPOT) agree within SETTLED."""
    if len(values) < 2:
        return False
    a, b = values[-2:]
    return abs(b - a) <= SETTLED * max(a, b)


def warm_up(serve_once: Callable[[engines.Scenario], Mapping[str, Any]], scenario: engines.Scenario,
            at_least: int, settle: bool = True) -> Dict[str, Any]:
    """The untimed runs before the timed ones, and what they showed (kept in the results JSON).

    Every request at once (the shortest run that keeps the device busy) ``at_least`` times
    (``--npuperf-warmup``; 0: no warm-up), and with ``settle`` until the decode step has settled,
    at most MAX_WARMUP_RUNS; then, under a load, one run at that load, so that the timed runs meet
    no batch shape for the first time. ``settle`` is off where the timing budgets are raised to a
    pipeline check (the CPU): there a 5% settling rule buys nothing but time (the quick preset's
    serving tests recorded in 131 s with it and 108 s without, on the project's 2-core CPU).
    """
    tpot: List[float] = []
    tokens_per_s: List[float] = []
    all_at_once = replace(scenario, rate=math.inf)
    while len(tpot) < at_least or (settle and at_least and not settled(tpot) and len(tpot) < MAX_WARMUP_RUNS):
        summary = serve_once(all_at_once)
        tpot.append(summary["tpot_s_p50"])
        tokens_per_s.append(summary["output_tokens_per_s"])
    at_load = 0
    if at_least and not math.isinf(scenario.rate):
        serve_once(scenario)
        at_load = 1
    return {"runs": len(tpot), "all_at_once": bool(tpot), "tpot_s": tpot, "tokens_per_s": tokens_per_s,
            "settled": settled(tpot) if settle and len(tpot) > 1 else None, "runs_at_load": at_load}


def run_serving(
    session: PerfSession, test_id: str, engine: str, precision: Precision, scenario: engines.Scenario,
    tolerances: Mapping[str, float], budgets: Mapping[str, float], mode: ExecutionMode,
) -> TestOutcome:
    """Serve ``scenario`` with ``engine``, judge the runs against the baseline."""
    check_engine(session, engine, precision, mode, scenario)
    run = TestRun(session, test_id)
    device = session.device()
    loaded = run.load(precision)
    prompts = engines.serving_prompts(scenario.requests)
    ids = [loaded.tokenizer.chat_ids(p.text) for p in prompts]
    token_counts = [len(t) for t in ids]
    capacity = engines.kv_capacity_tokens(loaded, device)
    engines.check_kv_budget(token_counts, scenario.max_new_tokens, capacity,
                            scenario.max_batch if engine == "static" else 1)
    summaries: List[Dict[str, Any]] = []
    servers: List[vllm_engine.VllmServer] = []  # built by the first run and kept for the others
    graph = GraphPlan(session.graph_runner(loaded), loaded) if mode.graph else None
    generate: Callable[..., Any] = generate_fixed
    shapes: List[Tuple[int, int]] = []
    if graph:
        if scenario.max_batch > BATCH_BUCKETS[-1]:
            raise engines.ServingError(f"graph mode compiles batch sizes up to {BATCH_BUCKETS[-1]}; "
                                       f"max_batch={scenario.max_batch} needs eager mode")
        tokens = max(token_counts) + scenario.max_new_tokens
        shapes = sorted({graph.shape_for(b, tokens) for b in BATCH_BUCKETS if b <= batch_bucket(scenario.max_batch)})
        cache_len = shapes[0][1]

        def generate(loaded: Any, batch: Any, new: int, streamer: Any = None) -> Any:
            return graph.runner.generate_fixed(loaded, batch, new, streamer, cache_len=cache_len)

    offered: Dict[str, Any] = {}
    shape = load_scenario(engine, scenario, mode)
    warmup: Dict[str, Any] = {}

    def serve_once(run_scenario: engines.Scenario) -> Dict[str, Any]:
        if engine == "static":
            records, wall = engines.run_static(loaded, device, prompts, run_scenario, generate)
        elif engine == "continuous":
            records, wall = engines.run_continuous(loaded, device, prompts, run_scenario, capacity)
        else:
            if not servers:
                servers.append(vllm_engine.VllmServer(
                    loaded, device, precision.name, max(token_counts) + run_scenario.max_new_tokens,
                    checkpoint=session.model_name if loaded.real_weights else None))
            records, wall = servers[0].run(ids, run_scenario.arrivals(), run_scenario.max_new_tokens)
        return engines.summarize(records, wall, run_scenario.slos, run_scenario.rate)

    def measure() -> Sample:
        summary = serve_once(scenario)
        summaries.append(summary)
        sample = engines.serving_sample(summary, scenario.slos)
        if graph:
            graph.stamp(sample)
        return sample

    def warm() -> None:
        nonlocal scenario
        if graph:  # every batch size bucket compiled before the requests arrive, as servers do
            graph.plan(shapes)
            for rows, _ in shapes:
                graph.use(rows, tokens)
            # the first max_batch requests as one batch: graph vs eager on the same weights
            first = make_batch(loaded, prompts[: min(scenario.max_batch, len(prompts))], device.torch_device)
            graph.check_agreement(first, scenario.max_new_tokens, cache_len=shapes[0][1])
        if scenario.load is not None:
            try:
                offered.update(frozen_load(session, test_id, scenario.load, shape) or {})
            except BaselineError:
                if not session.settings.save_baseline:
                    raise
                # recording anew over a file that cannot be read: the capacity is measured again
        if scenario.load is not None and not offered:
            # The capacity: every request at once, twice (the first run warms up); the load is
            # that fraction of the second run's requests/s, kept to 4 significant digits.
            for _ in range(2):
                probe = serve_once(replace(scenario, rate=math.inf))
            capacity_rps = probe["request_throughput"]
            if not (math.isfinite(capacity_rps) and capacity_rps > 0):
                raise MeasurementError(f"the capacity run served {capacity_rps} requests/s; no load can be set from it")
            offered.update(load=scenario.load, capacity_rps=capacity_rps,
                           rate_rps=offered_rate(scenario.load, capacity_rps), scenario=shape,
                           measured=f"{device.profile()}, {utc_now()}")
        if offered:
            scenario = replace(scenario, rate=float(offered["rate_rps"]))
        warmup.update(warm_up(serve_once, scenario, session.settings.warmup, settle=device.time_floor() is None))
        if graph:
            graph.start_timing()

    try:
        samples = run.samples(warm, measure, session.settings.runs)
        rate = "inf" if math.isinf(scenario.rate) else f"{scenario.rate:g}"
        if scenario.load is not None:
            rate = f"{scenario.load:g}x{offered['capacity_rps']:.4g}={rate}"
        workload = Workload(
            loaded.model_id, loaded.fingerprint, precision.name, scenario.max_batch if engine == "static" else 0,
            tuple(p.prompt_id for p in prompts), tuple(token_counts), scenario.max_new_tokens,
            kind=f"serving-{engine}-rate{rate}-burst{scenario.burstiness:g}-seed{scenario.seed}"
                 f"-timeout{scenario.batch_timeout_s:g}" + mode.id_suffix,
            input_ids_hash=token_ids_hash(ids),
            tokenizer=tokenizer_identity(loaded),
            generation=f"greedy, fixed length, engine={engine}, attn={loaded.attn_implementation}"
                       + (f", decode step compiled, cache=static({shapes[0][1]})" if graph else ""),
            quant_kernel=graph.quant_kernel() if graph else loaded.quant_kernel,
            serving=serving_identity(scenario, servers[0].engine_args if servers else None),
            graph=graph.identity(shapes) if graph else "",
        )
        extra = {"serving_runs": summaries, "kv_capacity_tokens": capacity, "execution_mode": mode.name,
                 "slos": [dict(name=x.name, ttft_s=x.ttft_s, tpot_s=x.tpot_s) for x in scenario.slos],
                 "serving_warmup": warmup,
                 "saturated_runs": sum(1 for x in summaries if x.get("saturated") and x.get("offered_rps") is not None)}
        if offered:
            extra[SERVING_LOAD_KEY] = dict(offered)
        if graph:
            extra["graph"] = graph.summary()
        if servers:
            extra["vllm_engine_args"] = servers[0].engine_args
        return run.judge(run.result(workload, samples, extra), measure, tolerances, budgets)
    finally:
        for server in servers:
            server.close()
