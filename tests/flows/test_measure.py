"""Timed generation (flows/measure.py): fixed output length, real token counts, TTFT, TPOT and
e2e from the device's timer and the host's token clock, and the guards against broken timings.

The real tiny model runs on the CPU and on a fake NPU that runs ahead of the host (the fake
queues device work and lets the host go on; a forward hook queues each step's device time), and
a test copy of the timing code without its synchronize is shown to fail the same checks.
Nothing asserts on a real timing value beyond its physical sanity.
"""

from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mistral_common")

from fakes import torch_npu as fake_torch_npu  # noqa: E402

from pytest_npuperf.devices.accel import AcceleratorDevice  # noqa: E402
from pytest_npuperf.devices.cpu import CpuDevice  # noqa: E402
from pytest_npuperf.errors import MeasurementError  # noqa: E402
from pytest_npuperf.flows.measure import Batch, TokenClock, check_finite, make_batch, measure_once, real_token_counts  # noqa: E402
from pytest_npuperf.judge.result import Sample  # noqa: E402
from pytest_npuperf.model.workloads import batch_prompts  # noqa: E402

SAVE = "--npuperf-save-baseline"
ONE = "fp16-bs1-zh_qa"


@pytest.mark.parametrize("metric", ["e2e_s", "tokens_per_s", "fidelity_kl"])
def test_a_non_finite_sample_is_a_measurement_error(npt, metric):
    npt.fake()
    npt.run(SAVE, "-k", ONE)
    result = npt.run("-k", ONE, NPUPERF_FAKE_NAN=f"{ONE}:{metric}")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([f"*{ONE}?: measurement error: sample 1 has non-finite values ({metric}=nan)*"])


def test_one_measured_generation(tiny):
    device = CpuDevice()
    batch = make_batch(tiny, batch_prompts("zh_qa", 2), "cpu")
    assert batch.attention_mask.sum(dim=1).tolist() == batch.prompt_tokens
    sample = measure_once(tiny, device, batch, max_new_tokens=6)
    assert sample.output_tokens == [6, 6]
    assert 0 < sample.ttft_s < sample.e2e_s
    assert sample.tokens_per_s == pytest.approx(12 / sample.e2e_s)
    assert sample.request_e2e_s == [sample.e2e_s] * 2  # each request waited the whole batch
    assert len(sample.token_times_s) == 6 and sample.token_times_s == sorted(sample.token_times_s)
    assert sample.peak_rss_bytes > 50 * 2**20


def test_early_eos_would_be_caught():
    generated = torch.tensor([[5, 6, 7, 8], [5, 2, 2, 2]])
    assert real_token_counts(generated, eos_id=2) == [4, 1]


def test_wrong_length_is_a_measurement_error(tiny, monkeypatch):
    original = tiny.model.generate

    def short_generate(**kwargs):
        kwargs["max_new_tokens"] = kwargs["min_new_tokens"] = 3
        return original(**kwargs)

    monkeypatch.setattr(tiny.model, "generate", short_generate)
    batch = make_batch(tiny, batch_prompts("en_qa", 1), "cpu")
    with pytest.raises(MeasurementError, match="3 new positions, 6 were requested"):
        measure_once(tiny, CpuDevice(), batch, max_new_tokens=6)


PREFILL_S, DECODE_S = 0.050, 0.010
LAUNCH_S = fake_torch_npu.LAUNCH_S


class _DeviceSteps:
    """Each forward of the model queues its device time; generate then reads the new token on the
    host (``.cpu()`` for the streamer and the stopping check), which waits for the device."""

    def __init__(self, model: Any, npu: Any) -> None:
        self.npu = npu
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: Any, kwargs_or_output: Any, *rest: Any) -> None:
        ids = module._npuperf_last_ids
        self.npu._launch(PREFILL_S if ids.shape[1] > 1 else DECODE_S)
        self.npu._copy_to_host()


def _run(tiny: Any, npu: Any, device: Any, max_new_tokens: int = 6) -> Any:
    def remember(module: Any, args: Any, kwargs: Any) -> None:
        module._npuperf_last_ids = kwargs.get("input_ids", args[0] if args else None)

    pre = tiny.model.register_forward_pre_hook(remember, with_kwargs=True)
    steps = _DeviceSteps(tiny.model, npu)
    try:
        batch = make_batch(tiny, batch_prompts("zh_qa", 2), "cpu")
        return measure_once(tiny, device, batch, max_new_tokens, clock=npu._host_clock)
    finally:
        pre.remove()
        steps.handle.remove()


def _check(sample: Any, n: int = 6) -> None:
    assert sample.ttft_s == pytest.approx(PREFILL_S + LAUNCH_S, rel=1e-6)
    assert sample.e2e_s == pytest.approx(PREFILL_S + (n - 1) * DECODE_S + n * LAUNCH_S, rel=1e-6)
    assert sample.tpot_s == pytest.approx(DECODE_S + LAUNCH_S, rel=1e-6)


def _npu_device(npu: Any) -> AcceleratorDevice:
    device = AcceleratorDevice("npu", npu, 0)
    device.torch_device = "cpu"  # the fake holds no tensors: the model's stay on the CPU
    return device


def test_measure_once_on_the_asynchronous_fake(tiny, npu):
    npu._launch(0.5)  # work left queued before the measurement
    _check(_run(tiny, npu, _npu_device(npu)))


class _EventTimerWithoutSync:
    """A test copy of accel.EventTimer with the synchronize before the start event removed."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._start = module.Event(enable_timing=True)
        self._end = module.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end)) / 1e3


class _DeviceWithoutSync(AcceleratorDevice):
    """The same device, with its synchronize and its timer's synchronize removed."""

    def synchronize(self) -> None:
        pass

    def timer(self) -> Any:
        return _EventTimerWithoutSync(self._module)


@pytest.mark.parametrize("leftover_s", [0.5, 0.02], ids=["caught-by-measure_once", "caught-by-the-check"])
def test_timing_code_without_synchronize_fails_the_same_checks(tiny, npu, leftover_s):
    device = _DeviceWithoutSync("npu", npu, 0)
    device.torch_device = "cpu"
    npu._launch(leftover_s)  # leftover work: TTFT (host clock) now includes it, e2e (events) does not
    if leftover_s > PREFILL_S + 5 * DECODE_S:
        with pytest.raises(MeasurementError, match="clocks disagree"):
            _run(tiny, npu, device)
    else:  # measure_once's own guard does not see a smaller error; the numbers are just wrong
        sample = _run(tiny, npu, device)
        with pytest.raises(AssertionError):
            _check(sample)
        assert sample.ttft_s == pytest.approx(leftover_s + PREFILL_S, rel=1e-6)  # the launch overlapped the queue


# --- measure_once on a fake device: its timer, the host clock and generate injected ---------------

class _Timer:
    def __init__(self, device: Any) -> None:
        self.device = device

    def start(self) -> None:
        self.device.events.append("timer start")

    def stop(self) -> float:
        self.device.events.append("timer stop")
        return self.device.e2e_s


class _InjectedDevice:
    """A device whose timer reports ``e2e_s`` and whose memory figures are fixed."""

    def __init__(self, e2e_s: float) -> None:
        self.e2e_s = e2e_s
        self.events: List[str] = []

    def synchronize(self) -> None:
        self.events.append("synchronize")

    def reset_peak_memory(self) -> None:
        self.events.append("reset peak memory")

    def timer(self) -> _Timer:
        return _Timer(self)

    def memory(self) -> Dict[str, Any]:
        return {"peak_allocated_bytes": 123, "peak_reserved_bytes": 456}


def _clock(*times: float) -> Any:
    """A host clock that returns these times, one per call."""
    it = iter(times)
    return lambda: next(it)


EOS = 2
_LOADED = SimpleNamespace(tokenizer=SimpleNamespace(eos_id=EOS))


def _batch() -> Batch:
    ids = torch.tensor([[1, 5, 6], [EOS, 1, 5]])  # the second row left-padded
    return Batch(input_ids=ids, attention_mask=(ids != EOS).long(), prompt_tokens=[3, 2], prompt_ids=["a", "b"])


def _generate(new: List[List[int]], steps: int = -1) -> Any:
    """A generate that appends these new tokens and tells the streamer of ``steps`` steps (all by default)."""

    def generate(loaded: Any, batch: Batch, max_new_tokens: int, streamer: Any = None) -> Any:
        tokens = torch.tensor(new)
        streamer.put(batch.input_ids)  # the prompt first, as transformers does
        for i in range(tokens.shape[1] if steps < 0 else steps):
            streamer.put(tokens[:, i])
        return torch.cat([batch.input_ids, tokens], dim=1)

    return generate


def test_token_clock_times_each_step_after_the_prompt():
    clock = _clock(1.0, 2.5, 4.0)
    tokens = TokenClock(clock)
    tokens.put("the prompt")
    assert tokens.times == []  # the prompt is not a generated step
    tokens.put("step 1")
    tokens.put("step 2")
    tokens.end()
    assert tokens.times == [1.0, 2.5]


def test_real_token_counts_stop_at_the_first_eos():
    generated = torch.tensor([[5, 6, 7, 8], [EOS, 6, 7, 8], [5, EOS, EOS, 7]])
    assert real_token_counts(generated, eos_id=EOS) == [4, 0, 1]


def test_measure_once_takes_e2e_from_the_device_timer_and_ttft_from_the_host_clock():
    device = _InjectedDevice(e2e_s=1.0)
    new = [[5, 6, 7, 8], [9, 10, 11, 12]]
    # t0, then one reading per generated step: the first token after 0.25 s, then one every 0.25 s
    sample = measure_once(_LOADED, device, _batch(), 4, clock=_clock(100.0, 100.25, 100.5, 100.75, 101.0),
                          generate=_generate(new))
    assert device.events == ["synchronize", "reset peak memory", "timer start", "timer stop"]
    assert sample.e2e_s == 1.0 and sample.ttft_s == 0.25
    assert sample.token_times_s == [0.25, 0.5, 0.75, 1.0]
    assert sample.tpot_s == 0.25  # (e2e - TTFT) / (4 - 1)
    assert sample.tokens_per_s == 8.0  # 2 rows x 4 tokens in 1 s
    assert sample.output_tokens == [4, 4]
    assert (sample.request_e2e_s, sample.request_ttft_s, sample.request_tpot_s) == ([1.0, 1.0], [0.25, 0.25], [0.25, 0.25])
    assert (sample.peak_allocated_bytes, sample.peak_reserved_bytes) == (123, 456)
    assert sample.output_checksum == hashlib.sha256(torch.tensor(new).numpy().tobytes()).hexdigest()[:16]


def test_measure_once_refuses_a_row_that_ended_early():
    with pytest.raises(MeasurementError, match=r"output length is not fixed: rows \(index, real tokens\) \[\(1, 2\)\] "
                                               r"produced fewer than the 4 requested tokens"):
        measure_once(_LOADED, _InjectedDevice(1.0), _batch(), 4, clock=_clock(0.0, 0.25, 0.5, 0.75, 1.0),
                     generate=_generate([[5, 6, 7, 8], [9, 10, EOS, EOS]]))


def test_measure_once_refuses_a_wrong_number_of_positions_or_of_timed_steps():
    with pytest.raises(MeasurementError, match="generate returned 3 new positions, 4 were requested"):
        measure_once(_LOADED, _InjectedDevice(1.0), _batch(), 4, clock=_clock(0.0, 0.25, 0.5, 0.75),
                     generate=_generate([[5, 6, 7], [9, 10, 11]]))
    with pytest.raises(MeasurementError, match="the token clock saw 3 steps for 4 tokens"):
        measure_once(_LOADED, _InjectedDevice(1.0), _batch(), 4, clock=_clock(0.0, 0.25, 0.5, 0.75),
                     generate=_generate([[5, 6, 7, 8], [9, 10, 11, 12]], steps=3))


def test_measure_once_refuses_a_ttft_larger_than_e2e():
    # The device timer says 0.2 s for the whole generation; the host saw the first token at 0.25 s.
    with pytest.raises(MeasurementError, match=r"TTFT 0\.2500s exceeds the e2e time 0\.2000s: clocks disagree"):
        measure_once(_LOADED, _InjectedDevice(0.2), _batch(), 4, clock=_clock(0.0, 0.25, 0.5, 0.75, 1.0),
                     generate=_generate([[5, 6, 7, 8], [9, 10, 11, 12]]))


def test_a_non_finite_value_names_the_sample_and_the_metric():
    check_finite(Sample(e2e_s=1.0, ttft_s=0.1), 0)
    with pytest.raises(MeasurementError, match=r"sample 3 has non-finite values \(ttft_s=nan, tokens_per_s=inf\)"):
        check_finite(Sample(e2e_s=1.0, ttft_s=math.nan, tokens_per_s=math.inf), 2)
    with pytest.raises(MeasurementError, match=r"sample 1 has non-finite values \(e2e_s=-inf\)"):
        check_finite(Sample(e2e_s=-math.inf), 0)
