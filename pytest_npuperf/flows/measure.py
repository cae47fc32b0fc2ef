"""Timed generation -> Samples.

Guards against the reference study's mistakes:

- the output length is fixed (``min_new_tokens == max_new_tokens``: EOS cannot end a row) and
  verified from the returned ids, per sequence; a shortfall is a :class:`MeasurementError`;
- only real generated tokens count towards throughput (padding is never counted);
- each request's latency is the time it waited (the whole batch time in a static batch);
- the device is synchronized (or its events recorded) around every timed region, and the
  warm-up runs at exactly the measured shapes are discarded;
- peak memory is reset before each run.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Sequence

from ..devices import Device
from ..errors import MeasurementError
from ..judge.metrics import METRICS
from ..judge.result import Sample, token_ids_hash
from ..model.loader import LoadedModel
from ..model.workloads import Prompt


def check_finite(sample: Sample, index: int) -> None:
    """A NaN or infinite value is a broken measurement, never a number to judge."""
    bad = [f"{name}={value}" for name in METRICS
           for value in [sample.metric(name)] if value is not None and not math.isfinite(value)]
    if bad:
        raise MeasurementError(
            f"sample {index + 1} has non-finite values ({', '.join(bad)}): a broken timer, counter or "
            "model output; no verdict is drawn from it"
        )


# What generate_fixed asks of transformers: part of the workload's identity (with the model's
# attention implementation), since a change of any of them changes the work.
GENERATION_SETTINGS = "greedy, num_beams=1, fixed length (min_new_tokens=max_new_tokens), cache=dynamic"


@dataclass
class Batch:
    input_ids: Any
    attention_mask: Any
    prompt_tokens: List[int]
    prompt_ids: List[str]
    ids_hash: str = ""  # token_ids_hash of the unpadded rows


def make_batch(loaded: LoadedModel, prompts: Sequence[Prompt], torch_device: str) -> Batch:
    """Tokenize with the chat template and left-pad (decoder-only models generate on the right)."""
    import torch

    rows = [loaded.tokenizer.chat_ids(p.text) for p in prompts]
    width = max(len(r) for r in rows)
    pad = loaded.tokenizer.eos_id
    ids = [[pad] * (width - len(r)) + r for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return Batch(
        input_ids=torch.tensor(ids, dtype=torch.long, device=torch_device),
        attention_mask=torch.tensor(mask, dtype=torch.long, device=torch_device),
        prompt_tokens=[len(r) for r in rows],
        prompt_ids=[p.prompt_id for p in prompts],
        ids_hash=token_ids_hash(rows),
    )


class TokenClock:
    """A transformers streamer that timestamps each generated step.

    ``generate`` calls ``put`` once with the prompt, then once per step with the new tokens
    already copied to the host (``.cpu()`` waits for the device), so each timestamp is the
    time the step's tokens were available on the host.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen_prompt = False
        self.times: List[float] = []

    def put(self, value: Any) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.times.append(self._clock())

    def end(self) -> None:
        pass


def real_token_counts(generated: Any, eos_id: int) -> List[int]:
    """Tokens per row up to (not including) the first EOS/pad: the tokens a user would get."""
    counts = []
    for row in generated.tolist():
        counts.append(row.index(eos_id) if eos_id in row else len(row))
    return counts


def generate_fixed(loaded: LoadedModel, batch: Batch, max_new_tokens: int, streamer: Any = None,
                   **extra: Any) -> Any:
    """Greedy generation of exactly ``max_new_tokens`` per row (EOS suppressed until then).
    ``extra``: more generate arguments (graph mode's agreement check asks for the logits)."""
    import torch

    eos = loaded.tokenizer.eos_id
    with torch.inference_mode():
        return loaded.model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=eos,
            eos_token_id=eos,
            streamer=streamer,
            **extra,
        )


Generate = Callable[..., Any]  # generate_fixed's signature: (loaded, batch, max_new_tokens, streamer)


def warm_up(loaded: LoadedModel, device: Device, batch: Batch, max_new_tokens: int, runs: int,
            generate: Generate = generate_fixed) -> None:
    for _ in range(runs):
        generate(loaded, batch, max_new_tokens)
    device.synchronize()


def measure_once(
    loaded: LoadedModel,
    device: Device,
    batch: Batch,
    max_new_tokens: int,
    clock: Callable[[], float] = time.perf_counter,
    generate: Generate = generate_fixed,
) -> Sample:
    """One whole timed generation of the batch (``generate``: eager by default; graph mode
    passes its runner's, which keeps the same contract)."""
    device.synchronize()
    device.reset_peak_memory()
    streamer = TokenClock(clock)
    timer = device.timer()
    timer.start()
    t0 = clock()
    out = generate(loaded, batch, max_new_tokens, streamer)
    e2e = timer.stop()
    memory = device.memory()

    width = batch.input_ids.shape[1]
    generated = out[:, width:]
    if generated.shape[1] != max_new_tokens:
        raise MeasurementError(
            f"generate returned {generated.shape[1]} new positions, {max_new_tokens} were requested"
        )
    counts = real_token_counts(generated, loaded.tokenizer.eos_id)
    short = [(i, c) for i, c in enumerate(counts) if c != max_new_tokens]
    if short:
        raise MeasurementError(
            "output length is not fixed: rows (index, real tokens) "
            f"{short} produced fewer than the {max_new_tokens} requested tokens; EOS or padding "
            "ended them, so tokens/s and TPOT would be wrong"
        )
    if len(streamer.times) != max_new_tokens:
        raise MeasurementError(
            f"the token clock saw {len(streamer.times)} steps for {max_new_tokens} tokens"
        )
    token_times = [t - t0 for t in streamer.times]
    ttft = token_times[0]
    if ttft > e2e * 1.05 + 1e-3:
        raise MeasurementError(f"TTFT {ttft:.4f}s exceeds the e2e time {e2e:.4f}s: clocks disagree")
    tpots = [(e2e - ttft) / (n - 1) for n in counts]
    checksum = hashlib.sha256(generated.cpu().numpy().tobytes()).hexdigest()[:16]
    return Sample(
        e2e_s=e2e,
        ttft_s=ttft,
        tpot_s=sum(tpots) / len(tpots),
        tokens_per_s=sum(counts) / e2e,
        output_tokens=counts,
        request_e2e_s=[e2e] * len(counts),
        request_ttft_s=[ttft] * len(counts),
        request_tpot_s=tpots,
        token_times_s=token_times,
        output_checksum=checksum,
        **memory,
    )
