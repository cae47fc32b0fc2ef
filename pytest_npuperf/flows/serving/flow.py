"""The serving flow: N requests arriving at a rate, served by one engine; each run of them is one
sample. In graph mode (static engine) every batch runs on a compiled decode step, one per batch
size bucket up to max_batch, all compiled before the requests arrive.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ...judge.outcome import TestOutcome
from ...judge.result import Sample, Workload, token_ids_hash
from ...model.loader import tokenizer_identity
from ...modes import ExecutionMode
from ...precision import Precision
from ...stack.compat import require_continuous_batching
from ..graph.plan import GraphPlan
from ..graph.runner import BATCH_BUCKETS, batch_bucket
from ..measure import generate_fixed, make_batch
from ..measurement import TestRun
from ..session import PerfSession
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

    def measure() -> Sample:
        if engine == "static":
            records, wall = engines.run_static(loaded, device, prompts, scenario, generate)
        elif engine == "continuous":
            records, wall = engines.run_continuous(loaded, device, prompts, scenario, capacity)
        else:
            if not servers:
                servers.append(vllm_engine.VllmServer(
                    loaded, device, precision.name, max(token_counts) + scenario.max_new_tokens,
                    checkpoint=session.model_name if loaded.real_weights else None))
            records, wall = servers[0].run(ids, scenario.arrivals(), scenario.max_new_tokens)
        summary = engines.summarize(records, wall, scenario.slos)
        summaries.append(summary)
        sample = engines.serving_sample(summary, scenario.slos)
        if graph:
            graph.stamp(sample)
        return sample

    def warm() -> None:
        if graph:  # every batch size bucket compiled before the requests arrive, as servers do
            graph.plan(shapes)
            for rows, _ in shapes:
                graph.use(rows, tokens)
            # the first max_batch requests as one batch: graph vs eager on the same weights
            first = make_batch(loaded, prompts[: min(scenario.max_batch, len(prompts))], device.torch_device)
            graph.check_agreement(first, scenario.max_new_tokens, cache_len=shapes[0][1])
        if session.settings.warmup:
            measure()
            summaries.clear()
        if graph:
            graph.start_timing()

    try:
        samples = run.samples(warm, measure, session.settings.runs)
        rate = "inf" if math.isinf(scenario.rate) else f"{scenario.rate:g}"
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
                 "slos": [dict(name=x.name, ttft_s=x.ttft_s, tpot_s=x.tpot_s) for x in scenario.slos]}
        if graph:
            extra["graph"] = graph.summary()
        if servers:
            extra["vllm_engine_args"] = servers[0].engine_args
        return run.judge(run.result(workload, samples, extra), measure, tolerances, budgets)
    finally:
        for server in servers:
            server.close()
