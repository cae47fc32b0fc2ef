"""Serving under load: requests arriving over time, served by static or continuous batching.

The reference study claimed continuous batching but measured only static batches that start
together. Here N requests arrive by a gamma process (burstiness 1.0 = Poisson) at a given rate,
or all at once, from a fixed seed, and two engines serve them with the same metrics:

- ``static``: ``generate`` on batches formed as requests arrive (wait for B requests or a
  timeout), the way the study served;
- ``continuous``: transformers' own continuous-batching engine (paged KV cache), with the KV
  blocks sized explicitly (it would otherwise reserve most of the device's memory);
- ``vllm``: vLLM (vllm-ascend on an NPU) when installed, else skipped with the reason
  (``flows/serving/vllm.py``).

Per request (docs/serving.md#metrics-under-load): TTFT = first token on the host - arrival
(queueing included); E2E = last token - arrival; TPOT = (E2E - TTFT) / (tokens - 1); ITL = each
gap between consecutive tokens; queueing delay = start of service - arrival. Per run: request and
output-token throughput over the wall time, and goodput = requests meeting every SLO / wall time.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ...devices.base import Device
from ...errors import MeasurementError
from ...judge.result import Sample
from ...model.loader import LoadedModel, kv_bytes_per_token
from ...model.workloads import BUILT_IN
from ...stack.compat import continuous_batching_config
from ..measure import TokenClock, generate_fixed, make_batch

ENGINES = ("static", "continuous", "vllm")
PAGE = 256  # tokens per KV page of the continuous-batching engine
# A run is saturated (the engine could not keep up with the offered load, so its figures follow
# the backlog rather than the service) when more than BACKLOG_SHARE of the requests had not yet
# started when the last one arrived, or when the last quarter of the requests (by arrival) took
# more than BACKLOG_GROWTH times as long, end to end, as the first quarter. (Queueing alone is no
# sign: a static batch makes every request that arrives while it runs wait for it, at any load.)
BACKLOG_SHARE = 0.25
BACKLOG_GROWTH = 2.0


class ServingError(ValueError):
    """A scenario that cannot be run as given; raised before anything is loaded."""


@dataclass(frozen=True)
class SLO:
    name: str
    ttft_s: float
    tpot_s: float


# MLPerf Inference server-scenario limits for 8B-class models (docs/serving.md#service-level-objectives).
DEFAULT_SLOS = (SLO("mlperf", 2.0, 0.100), SLO("interactive", 0.5, 0.030))


def parse_slo(text: str) -> SLO:
    """'name:ttft=2000ms,tpot=100ms' (units ms or s; the name is optional)."""
    name, sep, body = text.partition(":")
    if not sep:
        name, body = "custom", text
    values: Dict[str, float] = {}
    for part in body.split(","):
        key, eq, raw = part.strip().partition("=")
        if not eq or key not in ("ttft", "tpot"):
            raise ServingError(f"SLO {text!r}: expected 'name:ttft=2000ms,tpot=100ms', got {part.strip()!r}")
        scale = 1e-3 if raw.endswith("ms") else 1.0
        number = raw[:-2] if raw.endswith("ms") else raw[:-1] if raw.endswith("s") else raw
        try:
            value = float(number) * scale
        except ValueError:
            raise ServingError(f"SLO {text!r}: {key} must be a number with ms or s, got {raw!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ServingError(f"SLO {text!r}: {key} must be positive, got {raw!r}")
        values[key] = value
    if set(values) != {"ttft", "tpot"}:
        raise ServingError(f"SLO {text!r}: both ttft and tpot are needed")
    return SLO(name or "custom", values["ttft"], values["tpot"])


@dataclass(frozen=True)
class Scenario:
    requests: int
    rate: float  # requests per second; math.inf = all at once; with ``load``: set once resolved
    burstiness: float = 1.0
    seed: int = 0
    max_new_tokens: int = 32
    max_batch: int = 8  # static engine: the batch it waits for
    batch_timeout_s: float = 0.05  # static engine: the longest the first waiting request waits
    slos: Tuple[SLO, ...] = DEFAULT_SLOS
    # The offered load as a fraction of the engine's capacity on this device (requests/s of a run
    # where every request arrives at once), measured when the test's first baseline is recorded
    # and frozen into its workload; ``rate`` is then that fraction of the capacity.
    load: Optional[float] = None

    def validate(self) -> None:
        if self.requests < 1:
            raise ServingError(f"requests must be >= 1, got {self.requests}")
        if self.load is not None:
            if not (0 < self.load < 1):
                raise ServingError(
                    f"load must be a fraction of the capacity between 0 and 1 (0.5 = half of it), got {self.load}; "
                    "a load of 1 or more saturates the engine by definition: rate=math.inf measures the capacity")
        elif not (self.rate > 0):
            raise ServingError(f"request rate must be > 0 requests/s (or inf for all at once), got {self.rate}")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise ServingError(f"burstiness must be a positive number (1.0 = Poisson), got {self.burstiness}")
        if self.max_new_tokens < 2:
            raise ServingError(f"max_new_tokens must be >= 2 (TPOT needs two tokens), got {self.max_new_tokens}")
        if self.max_batch < 1 or self.batch_timeout_s < 0:
            raise ServingError("max_batch must be >= 1 and batch_timeout_s >= 0")

    def arrivals(self) -> List[float]:
        """Arrival offsets in seconds: gamma gaps with mean 1/rate and shape = burstiness."""
        if not (self.rate > 0):
            raise ServingError("the request rate is not resolved yet (load given, capacity not measured)")
        if math.isinf(self.rate):
            return [0.0] * self.requests
        rng = random.Random(self.seed)
        t, out = 0.0, []
        for _ in range(self.requests):
            out.append(t)
            t += rng.gammavariate(self.burstiness, 1.0 / (self.rate * self.burstiness))
        return out


def check_kv_budget(prompt_tokens: Sequence[int], max_new_tokens: int, capacity_tokens: int, max_batch: int) -> None:
    """Refuse, before loading anything, a scenario the KV budget can never hold."""
    longest = max(prompt_tokens) + max_new_tokens
    if longest > capacity_tokens:
        raise ServingError(
            f"a request needs {longest} KV tokens but the KV budget holds {capacity_tokens}: it can never be "
            "served; shorten the prompts or output, or give the cache more memory"
        )
    if max_batch * longest > capacity_tokens:
        raise ServingError(
            f"a static batch of {max_batch} requests of up to {longest} tokens needs {max_batch * longest} KV "
            f"tokens, more than the budget of {capacity_tokens}; lower the batch size"
        )


@dataclass
class RequestRecord:
    request_id: str
    prompt_tokens: int
    arrival_s: float
    start_s: float
    token_times_s: List[float] = field(default_factory=list)

    @property
    def output_tokens(self) -> int:
        return len(self.token_times_s)

    @property
    def ttft_s(self) -> float:
        return self.token_times_s[0] - self.arrival_s

    @property
    def e2e_s(self) -> float:
        return self.token_times_s[-1] - self.arrival_s

    @property
    def tpot_s(self) -> float:
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def queue_s(self) -> float:
        return self.start_s - self.arrival_s

    @property
    def itl_s(self) -> List[float]:
        t = self.token_times_s
        return [b - a for a, b in zip(t, t[1:])]


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank percentile, only where there are enough samples to mean something."""
    n = len(values)
    if n == 0 or (q >= 0.99 and n < 100) or (q >= 0.9 and n < 10):
        return None
    ordered = sorted(values)
    return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]


def saturation(records: Sequence[RequestRecord], all_at_once: bool) -> Optional[str]:
    """Why a run was saturated, or None: see BACKLOG_SHARE and BACKLOG_GROWTH."""
    if all_at_once:
        return "every request arrives at once: saturated by design (a capacity test)"
    if len(records) < 4:
        return None
    last_arrival = max(r.arrival_s for r in records)
    waiting = sum(1 for r in records if r.start_s > last_arrival)
    if waiting > BACKLOG_SHARE * len(records):
        return (f"{waiting} of {len(records)} requests had not started when the last one arrived "
                f"(more than {BACKLOG_SHARE:.0%})")
    ordered = sorted(records, key=lambda r: r.arrival_s)
    quarter = len(ordered) // 4
    first = statistics.median(r.e2e_s for r in ordered[:quarter])
    last = statistics.median(r.e2e_s for r in ordered[-quarter:])
    if first > 0 and last > BACKLOG_GROWTH * first:
        return (f"the queue grew over the run: the last quarter of the requests took {last / first:.1f}x "
                f"as long end to end as the first (more than {BACKLOG_GROWTH:g}x)")
    return None


def summarize(records: Sequence[RequestRecord], wall_s: float, slos: Sequence[SLO],
              rate: Optional[float] = None) -> Dict[str, Any]:
    """One run's figures; with the offered ``rate`` (requests/s, inf: all at once) also that rate
    and whether the run was saturated (``saturated``: the reason, or None)."""
    out: Dict[str, Any] = {"requests": len(records), "wall_s": wall_s}
    if rate is not None:
        out["offered_rps"] = None if math.isinf(rate) else rate
        out["saturated"] = saturation(records, math.isinf(rate))
    series = {
        "ttft_s": [r.ttft_s for r in records], "tpot_s": [r.tpot_s for r in records],
        "e2e_s": [r.e2e_s for r in records], "queue_s": [r.queue_s for r in records],
        "itl_s": [g for r in records for g in r.itl_s],
    }
    for name, values in series.items():
        for q, label in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            out[f"{name}_{label}"] = percentile(values, q)
    tokens = sum(r.output_tokens for r in records)
    out["output_tokens"] = tokens
    out["request_throughput"] = len(records) / wall_s
    out["output_tokens_per_s"] = tokens / wall_s
    for slo in slos:
        good = sum(1 for r in records if r.ttft_s <= slo.ttft_s and r.tpot_s <= slo.tpot_s)
        out[f"goodput_{slo.name}"] = good / wall_s
        out[f"slo_attainment_{slo.name}"] = good / len(records)
    return out


# --- engines ------------------------------------------------------------------------------------

def serving_sample(summary: Mapping[str, Any], slos: Sequence[Any]) -> Sample:
    """One serving run's summary as the sample the judge reads (the first SLO's goodput)."""
    return Sample(
        serving_ttft_p50_s=summary["ttft_s_p50"], serving_tpot_p50_s=summary["tpot_s_p50"],
        serving_tokens_per_s=summary["output_tokens_per_s"],
        goodput_rps=summary[f"goodput_{slos[0].name}"] if slos else None,
    )


@dataclass(frozen=True)
class Clock:
    """The host clock an engine schedules arrivals on and stamps tokens with (a simulation on a
    virtual clock passes its own)."""

    now: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep

    def wait_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            self.sleep(delay)


HOST_CLOCK = Clock()


def wait_until(t: float) -> None:
    HOST_CLOCK.wait_until(t)


def run_static(loaded: LoadedModel, device: Device, prompts: Sequence[Any], scenario: Scenario,
               generate: Any = None, clock: Clock = HOST_CLOCK,
               batcher: Callable[..., Any] = make_batch) -> Tuple[List[RequestRecord], float]:
    """Batches formed as requests arrive: up to max_batch, or whatever waited batch_timeout_s.
    ``generate``: measure.generate_fixed's contract (graph mode passes its compiled one);
    ``clock`` and ``batcher`` (measure.make_batch's contract): a simulation passes its own."""

    generate = generate or generate_fixed
    offsets = scenario.arrivals()
    t0 = clock.now() + 0.01
    arrivals = [t0 + o for o in offsets]
    records: List[RequestRecord] = []
    next_up, n, size = 0, len(prompts), scenario.max_batch
    while next_up < n:
        # Launch when the batch is full or its oldest request has waited the timeout, whichever
        # comes first (and never before the previous batch finished).
        clock.wait_until(arrivals[next_up])
        full_at = arrivals[next_up + size - 1] if next_up + size - 1 < n else math.inf
        launch = max(clock.now(), min(full_at, arrivals[next_up] + scenario.batch_timeout_s))
        clock.wait_until(launch)
        end = next_up
        while end < n and end - next_up < size and arrivals[end] <= launch:
            end += 1
        batch_prompts = list(prompts[next_up:end])
        batch = batcher(loaded, batch_prompts, device.torch_device)
        stamps = TokenClock(clock.now)
        device.synchronize()
        start = clock.now()
        out = generate(loaded, batch, scenario.max_new_tokens, stamps)
        device.synchronize()
        if out.shape[1] - batch.input_ids.shape[1] != scenario.max_new_tokens:
            raise MeasurementError("generate did not produce the fixed output length")
        for i in range(len(batch_prompts)):
            records.append(RequestRecord(f"req_{next_up + i}", batch.prompt_tokens[i], arrivals[next_up + i], start,
                                         list(stamps.times)))
        next_up = end
    wall = max(r.token_times_s[-1] for r in records) - t0
    return records, wall


def continuous_manager(loaded: LoadedModel, capacity_tokens: int, max_batch_tokens: int, max_new_tokens: int) -> Any:
    from transformers import GenerationConfig


    sizing = continuous_batching_config(max(1, math.ceil(capacity_tokens / PAGE)) + 1, PAGE, max_batch_tokens)
    # The engine ignores min_new_tokens; with EOS disabled every request runs to max_new_tokens.
    gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=-1)
    return loaded.model.init_continuous_batching(generation_config=gen, **sizing)


def run_continuous(
    loaded: LoadedModel, device: Device, prompts: Sequence[Any], scenario: Scenario, capacity_tokens: int,
    max_batch_tokens: int = 1024,
) -> Tuple[List[RequestRecord], float]:
    """transformers' continuous batching: requests join and leave the running batch every step."""
    import torch

    attention = loaded.model.config._attn_implementation  # the engine may switch it
    ids = [loaded.tokenizer.chat_ids(p.text) for p in prompts]
    # Room for every request at once (each holds whole pages), within the budget: no more KV
    # memory than the run can use.
    needed = sum(math.ceil((len(t) + scenario.max_new_tokens) / PAGE) * PAGE for t in ids)
    manager = continuous_manager(loaded, min(capacity_tokens, needed), max_batch_tokens, scenario.max_new_tokens)
    offsets = scenario.arrivals()
    records: Dict[str, RequestRecord] = {}
    with torch.inference_mode():
        manager.start()
        try:
            t0 = time.perf_counter() + 0.01
            for i, (tokens, offset) in enumerate(zip(ids, offsets)):
                wait_until(t0 + offset)
                rid = f"req_{i}"
                records[rid] = RequestRecord(rid, len(tokens), time.perf_counter(), 0.0)
                manager.add_request(tokens, request_id=rid, max_new_tokens=scenario.max_new_tokens,
                                    record_timestamps=True, eos_token_id=-1)
            done = 0
            give_up = time.perf_counter() + 600
            while done < len(records):
                result = manager.get_result(timeout=1.0)
                if result is None:
                    if not manager.is_running():
                        status = getattr(manager, "background_thread_status", None)
                        reason = getattr(status, "fatal_error", None)
                        raise MeasurementError(f"the continuous-batching engine stopped: {reason!r}")
                    if time.perf_counter() > give_up:
                        raise MeasurementError("the continuous-batching engine returned no result for 10 minutes")
                    continue
                if not result.is_finished():
                    continue
                if result.error:
                    raise MeasurementError(f"continuous batching failed for {result.request_id}: {result.error}")
                record = records[result.request_id]
                record.start_s = result.lifespan[0]
                record.token_times_s = list(result.timestamps or [])
                done += 1
        finally:
            manager.stop(block=True)
            _restore_attention(loaded.model, attention)
    out = list(records.values())
    short = [r.request_id for r in out if r.output_tokens != scenario.max_new_tokens]
    if short:
        raise MeasurementError(f"requests {short[:5]} did not produce {scenario.max_new_tokens} tokens")
    wall = max(r.token_times_s[-1] for r in out) - t0
    return out, wall


def _restore_attention(model: Any, implementation: str) -> None:
    """Give later tests the attention kernel they had before the engine ran."""
    if model.config._attn_implementation == implementation:
        return
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:
        model.config._attn_implementation = implementation


def serving_prompts(count: int) -> List[Any]:
    """The study's prompts (workloads first, then the batch prompts), cycled to ``count``. Always
    the suite's own: a workload a hook adds or replaces leaves the serving tests and their
    baselines as they are."""
    pool = BUILT_IN.prompts()
    return [pool[i % len(pool)] for i in range(count)]


CPU_KV_BUDGET_BYTES = 1 << 30  # the KV cache every engine gets on a CPU (vLLM's included)


def kv_capacity_tokens(loaded: LoadedModel, device: Device, cpu_budget_bytes: int = CPU_KV_BUDGET_BYTES) -> int:
    """Tokens of KV cache the budget holds: half the free device memory, or 1 GiB on a CPU."""
    per_token = kv_bytes_per_token(loaded.model.config, next(loaded.model.parameters()).element_size())
    budget = cpu_budget_bytes
    if device.kind != "cpu":
        mem = device.memory()
        total = mem.get("device_used_bytes") or 0
        info = device.info().get("device_total_memory_bytes") or 0
        budget = max(0, info - total) // 2 if info else cpu_budget_bytes
    return int(budget // per_token)

