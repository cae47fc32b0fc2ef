"""Timed generation (flows/measure.py): fixed output length, real token counts, TTFT, TPOT and
e2e from the device's timer and the host's token clock, and the guards against broken timings.

The real tiny model runs on the CPU and on a fake NPU that runs ahead of the host (the fake
queues device work and lets the host go on; a forward hook queues each step's device time), and
a test copy of the timing code without its synchronize is shown to fail the same checks.
Nothing asserts on a real timing value beyond its physical sanity.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mistral_common")

from fakes import torch_npu as fake_torch_npu  # noqa: E402

from pytest_npuperf.devices.accel import AcceleratorDevice  # noqa: E402
from pytest_npuperf.devices.cpu import CpuDevice  # noqa: E402
from pytest_npuperf.errors import MeasurementError  # noqa: E402
from pytest_npuperf.flows.measure import make_batch, measure_once, real_token_counts  # noqa: E402  # noqa: E402
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
