"""Deterministic synthetic measurements for end-to-end plugin tests.

``install()`` replaces the device, model and timing steps of ``pytest_npuperf.flows.session`` with
fakes whose samples come from a seeded generator, so the decision logic is exercised through
the real plugin without real timing noise. Controlled by environment variables:

- NPUPERF_FAKE_SEED: the 'process' seed (a new nightly run = a new seed);
- NPUPERF_FAKE_SLOWDOWN: 'fp16-bs1-zh_qa=1.3,...' multiplies that test's times;
- NPUPERF_FAKE_SLOWDOWN_ONCE: the same, but not in a --npuperf-confirm child process;
- NPUPERF_FAKE_SHORT: 'fp16-bs1-zh_qa' makes that test's first row stop early (EOS);
- NPUPERF_FAKE_MEMORY: 'fp16-bs1-zh_qa=2.0' multiplies that test's peak memory;
- NPUPERF_FAKE_OOM: 'fp16-bs8-zh_qa' makes that test run out of device memory;
- NPUPERF_FAKE_CALIBRATION_SCALE: 0.5 makes the device calibrate at half its usual speed;
- NPUPERF_FAKE_CHILD: what a --npuperf-confirm child process does: 'crash' (dies at start),
  'oom' (runs out of memory), 'mismatch' (measures another model fingerprint), 'usage' (exits
  with a usage error before measuring);
- NPUPERF_FAKE_NAN: 'fp16-bs1-zh_qa:tokens_per_s,...' makes that metric of that test NaN;
- NPUPERF_FAKE_LINEAR_BYTES: the size of the model's linear weights (default 800);
- NPUPERF_FAKE_TOKEN: the id the fake tokenizer emits (default 5): other ids, same lengths;
- NPUPERF_FAKE_INDEX_LOG: a file a confirmation child appends '<xdist worker> <device index>' to.

EVENTS records, in order, model loads ('load:fp16') and cache empties ('empty_cache').
"""

from __future__ import annotations

import os
import random
import signal
import sys
import types
from typing import Any, Dict, List

from pytest_npuperf import devices as device_mod
from pytest_npuperf.devices import calibration as roofline_mod
from pytest_npuperf.errors import MeasurementError
from pytest_npuperf.flows import generation as generation_mod
from pytest_npuperf.flows import session as session_mod
from pytest_npuperf.judge.result import Sample
from pytest_npuperf.model.loader import LoadedModel

NOISE = 0.01  # 1% relative noise per sample
MIB = 1024 * 1024


def _table(name: str) -> Dict[str, float]:
    out = {}
    for item in filter(None, os.environ.get(name, "").split(",")):
        key, _, value = item.partition("=")
        out[key] = float(value or 1)
    return out


class FakeTimer:
    def start(self) -> None:
        pass

    def stop(self) -> float:
        return 0.0


class FakeDevice:
    kind = "cpu"
    torch_device = "cpu"
    timing_source = "synthetic"
    memory_source = "synthetic"

    def __init__(self, index: int = 0) -> None:
        self.index = index

    def name(self) -> str:
        return "Fake Accelerator"

    def profile(self) -> str:
        return "fake-Accelerator"

    def synchronize(self) -> None:
        pass

    def timer(self) -> FakeTimer:
        return FakeTimer()

    def reset_peak_memory(self) -> None:
        pass

    def memory(self) -> Dict[str, Any]:
        return {"peak_allocated_bytes": 60 * 1024 * MIB, "device_used_bytes": 62 * 1024 * MIB}

    def empty_cache(self) -> None:
        EVENTS.append("empty_cache")

    def info(self) -> Dict[str, Any]:
        return {"device_kind": "fake", "device_name": self.name(),
                "device_count": int(os.environ.get("NPUPERF_FAKE_DEVICES", "1"))}

    def time_floor(self) -> None:
        return None


class FakeTokenizer:
    eos_id = 2
    name = "fake"

    def chat_ids(self, text: str) -> List[int]:
        return [1] + [int(os.environ.get("NPUPERF_FAKE_TOKEN", "5"))] * (len(text) // 4 + 3)


class FakeBatch:
    def __init__(self, prompts: Any) -> None:
        from pytest_npuperf.judge.result import token_ids_hash

        rows = [FakeTokenizer().chat_ids(p.text) for p in prompts]
        self.prompt_ids = [p.prompt_id for p in prompts]
        self.prompt_tokens = [len(r) for r in rows]
        self.ids_hash = token_ids_hash(rows)


LOADS: List[str] = []
EVENTS: List[str] = []


def _child_mode() -> str:
    return os.environ.get("NPUPERF_FAKE_CHILD", "") if os.environ.get("NPUPERF_CONFIRMING") == "1" else ""


def _fake_module() -> Any:
    """Enough of a model for the bookkeeping around a measurement: its config and a dtype."""
    import torch
    from transformers import MistralConfig

    from pytest_npuperf.model.loader import TINY_CONFIG

    weight = torch.zeros(1, dtype=torch.bfloat16)
    return types.SimpleNamespace(config=MistralConfig(**TINY_CONFIG), parameters=lambda: iter([weight]))


def _load_model(model: str, precision: Any, torch_device: str, prompts: Any = None) -> LoadedModel:
    LOADS.append(precision.name)
    EVENTS.append(f"load:{precision.name}")
    other = "-other" if _child_mode() == "mismatch" else ""
    return LoadedModel(
        model_id=model, precision=precision, model=_fake_module(), tokenizer=FakeTokenizer(),
        fingerprint="fake-" + precision.name + other, weight_bytes=1000,
        linear_weight_bytes=int(float(os.environ.get("NPUPERF_FAKE_LINEAR_BYTES", "800"))),
        attn_implementation="fake",
    )


# (module, name): the session loads models; the generation flow batches, warms up and measures.
_PATCHED = ((session_mod, "load_model"), (generation_mod, "make_batch"), (generation_mod, "warm_up"),
            (generation_mod, "measure_once"))
CALIBRATION = {"matmul_bfloat16_tflops": 100.0, "matmul_float16_tflops": 100.0, "copy_gb_s": 1000.0,
               "copy_buffer_bytes": float(1 << 30), "measured_at": "2026-01-01T00:00:00Z"}
_ORIGINALS: Dict[str, Any] = {}


def uninstall() -> None:
    for name, value in _ORIGINALS.items():
        if name == "cpu_factory":
            device_mod._FACTORIES["cpu"] = value
        elif name == "calibrate":
            roofline_mod.calibrate = value
        else:
            setattr(*name, value)
    _ORIGINALS.clear()


def install() -> None:
    """The fake device answers where the CPU would (npu and cuda are absent here)."""
    if _child_mode() == "crash":
        sys.stderr.write("Fatal Python error: Segmentation fault (fake, at start)\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if _child_mode() == "usage":
        import pytest

        raise pytest.UsageError("fake usage error in the confirmation process")
    for module, name in _PATCHED:
        _ORIGINALS.setdefault((module, name), getattr(module, name))
    _ORIGINALS.setdefault("cpu_factory", device_mod._FACTORIES["cpu"])
    device_mod._FACTORIES["cpu"] = lambda index: FakeDevice(index)
    _ORIGINALS.setdefault("calibrate", roofline_mod.calibrate)
    scale = float(os.environ.get("NPUPERF_FAKE_CALIBRATION_SCALE", "1"))
    roofline_mod.calibrate = lambda device, budget_s=1.0: {
        k: (v * scale if isinstance(v, float) and k != "copy_buffer_bytes" else v) for k, v in CALIBRATION.items()}
    counters: Dict[str, int] = {}
    current: Dict[str, str] = {}

    def make_batch(loaded: Any, prompts: Any, torch_device: str) -> FakeBatch:
        batch = FakeBatch(prompts)
        current["id"] = f"{loaded.precision.name}-bs{len(prompts)}-{prompts[0].prompt_id}"
        return batch

    def measure_once(loaded: Any, device: Any, batch: FakeBatch, max_new_tokens: int, clock: Any = None,
                     generate: Any = None) -> Sample:
        test = current["id"]
        if os.environ.get("NPUPERF_FAKE_INDEX_LOG") and os.environ.get("NPUPERF_CONFIRMING") == "1":
            with open(os.environ["NPUPERF_FAKE_INDEX_LOG"], "a") as log:
                log.write(f"{os.environ.get('PYTEST_XDIST_WORKER', '-')} {device.index}\n")
        n = counters.get(test, 0)
        counters[test] = n + 1
        rng = random.Random(f"{os.environ.get('NPUPERF_FAKE_SEED', '0')}|{test}|{n}")
        slow = _table("NPUPERF_FAKE_SLOWDOWN").get(test, 1.0)
        if os.environ.get("NPUPERF_CONFIRMING") != "1":  # a slowdown of this process only
            slow *= _table("NPUPERF_FAKE_SLOWDOWN_ONCE").get(test, 1.0)
        bs = len(batch.prompt_ids)
        counts = [max_new_tokens] * bs
        if test in _table("NPUPERF_FAKE_OOM") or _child_mode() == "oom":
            raise RuntimeError("NPU out of memory. Tried to allocate 2.00 GiB (NPU 0; 60.97 GiB total capacity)")
        if test in _table("NPUPERF_FAKE_SHORT"):
            counts[0] = max_new_tokens // 2
            raise MeasurementError(f"output length is not fixed: rows (index, real tokens) [(0, {counts[0]})]")
        ttft = 0.020 * (1 + 0.1 * bs) * slow * (1 + rng.gauss(0, NOISE))
        tpot = 0.010 * (1 + 0.05 * bs) * slow * (1 + rng.gauss(0, NOISE))
        e2e = ttft + tpot * (max_new_tokens - 1)
        mem = int((500 + 10 * bs) * MIB * _table("NPUPERF_FAKE_MEMORY").get(test, 1.0))
        sample = Sample(
            e2e_s=e2e, ttft_s=ttft, tpot_s=tpot, tokens_per_s=sum(counts) / e2e, output_tokens=counts,
            request_e2e_s=[e2e] * bs, request_ttft_s=[ttft] * bs, request_tpot_s=[tpot] * bs,
            peak_allocated_bytes=mem, peak_reserved_bytes=mem + 64 * MIB,
        )
        for item in filter(None, os.environ.get("NPUPERF_FAKE_NAN", "").split(",")):
            name, _, metric = item.partition(":")
            if name == test:
                setattr(sample, metric, float("nan"))
        return sample

    session_mod.load_model = _load_model
    generation_mod.make_batch = make_batch
    generation_mod.warm_up = lambda *a, **k: None
    generation_mod.measure_once = measure_once
