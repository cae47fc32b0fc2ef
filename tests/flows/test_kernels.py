"""Model steps and operators (flows/kernels.py): their shapes, FLOPs and bytes, a decode step that
always decodes the same position, and device-event timing on the fake NPU."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from support.skips import require  # noqa: E402

from pytest_npuperf.flows.kernels import OPS, KernelError, op_kernel, step_kernel  # noqa: E402
from pytest_npuperf.model.loader import (  # noqa: E402
    model_config,
)
from pytest_npuperf.stack import compat  # noqa: E402
from pytest_npuperf.stack.compat import output_cache, require_int8  # noqa: E402


def test_prefill_step_counts(tiny):
    kernel = step_kernel(tiny, "prefill", 2, 16, "cpu")
    out = kernel.fn()
    assert out.logits.shape == (2, 16, 32000)
    cfg = tiny.model.config
    per_token = 2 * (cfg.num_hidden_layers * (128 * 32 * (2 * 4 + 2 * 2) + 3 * 128 * 256) + 128 * 32000)
    assert kernel.flops >= per_token * 2 * 16


def test_decode_step_always_decodes_the_same_position(tiny):
    kernel = step_kernel(tiny, "decode", 2, 24, "cpu")
    for _ in range(3):
        kernel.reset()
        out = kernel.fn()
        assert out.logits.shape == (2, 1, 32000)
        assert output_cache(out).get_seq_length() == 25
    kernel.reset()
    assert output_cache(out).get_seq_length() == 24


def test_decode_step_crops_a_real_cache_back_to_its_context():
    from pytest_npuperf.flows.kernels import step_kernel
    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision

    kernel = step_kernel(load_model("tiny", get_precision("bf16"), "cpu"), "decode", 2, 16, "cpu")
    out = kernel.fn()
    cache = compat.output_cache(out)
    assert compat.cache_length(cache) == 17
    kernel.reset()
    assert compat.cache_length(cache) == 16


def test_unknown_step_or_op():
    with pytest.raises(KernelError, match="unknown step 'train'"):
        step_kernel(None, "train", 1, 1, "cpu")
    with pytest.raises(KernelError, match="unknown operator 'conv'"):
        op_kernel(model_config("tiny"), "conv", 1, "bfloat16", "cpu", "cpu")


@pytest.mark.parametrize("name", OPS)
def test_every_operator_runs_at_config_shapes(name):
    if name.startswith("int8_"):
        require(require_int8, "cpu", name.split("_")[1])
    kernel = op_kernel(model_config("tiny"), name, 8, "bfloat16", "cpu", "cpu")
    out = kernel.fn()
    assert kernel.flops > 0 and kernel.bytes > 0
    assert out is not None


def test_mistral_7b_operator_shapes_come_from_the_config():
    kernel = op_kernel(model_config("mistral-7b"), "gate_proj", 1, "bfloat16", "cpu", "meta")
    assert kernel.flops == 2 * 4096 * 14336
    assert kernel.bytes == 4096 * 14336 * 2 + (4096 + 14336) * 2


def test_model_steps_on_the_fake_npu_are_timed_by_device_events(npu_run):
    npu_run.pytester.makepyfile(test_perf="""
import pytest

pytestmark = pytest.mark.npu

def test_prefill(npuperf):
    npuperf.step("prefill", "bf16", 1, 32)

def test_decode(npuperf):
    npuperf.step("decode", "bf16", 1, 64)
""")
    result = npu_run.run("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-save-baseline",
                         "--npuperf-processes", "1")
    result.assert_outcomes(passed=2)
    tests = json.loads((npu_run.path / "results.json").read_text(encoding="utf-8"))["tests"]
    times = {t["test_id"].rpartition("::")[2]: sorted(s["time_s"] for s in t["result"]["samples"]) for t in tests}
    assert 0.3 <= times["test_prefill"][2] < 0.3 * 1.5, times
    assert 0.2 <= times["test_decode"][2] < 0.2 * 1.5, times


def test_operators_on_the_fake_npu_run_ahead_and_are_timed_by_device_events(npu_run):
    npu_run.pytester.makepyfile(test_perf="""
import pytest

pytestmark = pytest.mark.npu

@pytest.mark.parametrize("name", ["q_proj", "int8_w8a16", "int8_w8a8"])
def test_op(npuperf, name):
    npuperf.op(name, "bf16", 8)
""")
    result = npu_run.run("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-save-baseline",
                         "--npuperf-processes", "1")
    result.assert_outcomes(passed=3)  # the int8 operators run through the fake's torch_npu kernels
    tests = json.loads((npu_run.path / "results.json").read_text(encoding="utf-8"))["tests"]
    for test in tests:
        times = sorted(s["time_s"] for s in test["result"]["samples"])
        assert 0.02 <= times[2] < 0.02 * 1.5, (test["test_id"], times)
