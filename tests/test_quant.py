"""INT8 schemes: numerics per backend, the NPU call contracts (fake torch_npu), and the proof."""

import pytest

torch = pytest.importorskip("torch")

from fakes import torch_npu as fake_torch_npu  # noqa: E402
from support.skips import require  # noqa: E402

from pytest_npuperf.judge.result import Workload  # noqa: E402
from pytest_npuperf.model.loader import load_model  # noqa: E402
from pytest_npuperf.model.quant import (  # noqa: E402
    QuantizationError,
    _int8_linear_class,
    check_quantized,
    fidelity,
    quantize_model,
    quantize_per_channel,
)
from pytest_npuperf.precision import get_precision  # noqa: E402
from pytest_npuperf.stack.compat import require_dtype, require_int8  # noqa: E402


def dense(in_features=256, out_features=128, dtype=torch.bfloat16):
    torch.manual_seed(0)
    return torch.nn.Linear(in_features, out_features, bias=False).to(dtype)


def rel_err(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


def test_per_channel_quantization_round_trips():
    w = torch.randn(64, 96)
    q, scale = quantize_per_channel(w)
    assert q.dtype == torch.int8 and scale.shape == (64,) and scale.dtype == torch.float32
    assert rel_err(q.float() * scale[:, None], w) < 0.01


@pytest.mark.parametrize("scheme", ["w8a16", "w8a8"])
def test_cpu_kernels_match_the_dense_layer(scheme):
    require(require_int8, "cpu", scheme)
    linear = dense()
    layer = _int8_linear_class()(linear, scheme, "cpu")
    x = torch.randn(2, 3, 256, dtype=torch.bfloat16)
    y = layer(x)
    assert y.shape == (2, 3, 128) and y.dtype == torch.bfloat16
    assert rel_err(y, linear(x)) < 0.03
    assert all(b.device.type == "cpu" for b in layer.buffers())


def test_cpu_w8a16_guards_k_not_multiple_of_16():
    with pytest.raises(QuantizationError, match="multiple of 16"):
        _int8_linear_class()(dense(in_features=100), "w8a16", "cpu")


@pytest.mark.parametrize("scheme", ["w8a16", "w8a8"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_npu_kernels_satisfy_the_documented_contracts(monkeypatch, scheme, dtype):
    require(require_dtype, "cpu", str(dtype).split(".")[-1])  # the dense reference runs on the CPU
    fake_torch_npu.install(monkeypatch)
    linear = dense(dtype=dtype)
    layer = _int8_linear_class()(linear, scheme, "npu")
    x = torch.randn(4, 256, dtype=dtype)
    y = layer(x)  # the fake raises ContractError on a wrong dtype, shape or layout
    assert y.dtype == dtype and y.shape == (4, 128)
    q, scale = quantize_per_channel(linear.weight)
    reference = x.float() @ (q.float() * scale[:, None]).t()  # the int8 weights, exact activations
    assert rel_err(y, reference) < (0.02 if scheme == "w8a8" else 0.005)
    assert rel_err(y, linear(x)) < 0.03


def test_fake_rejects_a_wrong_weight_layout(monkeypatch):
    fake = fake_torch_npu.install(monkeypatch)
    x = torch.randn(4, 256, dtype=torch.float16)
    w_nk = torch.randint(-127, 127, (128, 256), dtype=torch.int8)
    with pytest.raises(fake_torch_npu.ContractError, match="pass the .N, K. weight transposed"):
        fake.npu_weight_quant_batchmatmul(x, w_nk, torch.ones(128, dtype=torch.float16))
    with pytest.raises(fake_torch_npu.ContractError, match="antiquant_scale must have x's dtype"):
        fake.npu_weight_quant_batchmatmul(x, w_nk.t(), torch.ones(128, dtype=torch.float32))
    qx, _ = fake.npu_dynamic_quant(x)
    with pytest.raises(fake_torch_npu.ContractError, match="x2 must be .K, N."):
        fake.npu_quant_matmul(qx, w_nk, torch.ones(128), output_dtype=torch.float16)


def test_tiny_int8_model_is_really_int8():
    require(require_int8, "cpu", "w8a16")
    loaded = load_model("tiny", get_precision("int8-w8a16"), "cpu")
    names = [type(m).__name__ for m in loaded.model.model.layers.modules()]
    assert names.count("Int8Linear") == 2 * 7  # q, k, v, o, gate, up, down per layer
    assert "Linear" not in names
    assert loaded.linear_weight_bytes < 0.55 * loaded.dense_linear_weight_bytes
    assert loaded.model.lm_head.weight.dtype == torch.bfloat16  # lm_head and embedding stay 16-bit
    f = loaded.fidelity["zh_qa"]
    assert f["fidelity_cosine"] > 0.99 and f["fidelity_kl"] < 0.01 and 0 <= f["fidelity_top1"] <= 1


def test_a_no_op_quantization_is_caught(monkeypatch):
    from pytest_npuperf.model import quant

    require(require_int8, "cpu", "w8a8")
    monkeypatch.setattr(quant, "quantize_model", lambda model, scheme, backend: [])
    with pytest.raises(QuantizationError, match="quantization not applied: precision int8-w8a8 .*1.00x of the 16-bit"):
        load_model("tiny", get_precision("int8-w8a8"), "cpu")


def test_check_quantized_needs_int8_tensors():
    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    with pytest.raises(QuantizationError, match="0 int8 tensors"):
        check_quantized(loaded.model, loaded.linear_weight_bytes * 4, loaded.linear_weight_bytes, "int8-w8a16")


def test_fidelity_of_identical_logits():
    logits = torch.randn(5, 32)
    f = fidelity(logits, logits)
    assert f["fidelity_kl"] == pytest.approx(0, abs=1e-6)
    assert f["fidelity_top1"] == 1.0 and f["fidelity_cosine"] == pytest.approx(1.0)


def test_int8_against_a_16bit_baseline_is_a_mismatch():
    a = Workload("tiny", "x", "bf16", 1, ("zh_qa",), (31,), 120)
    b = Workload("tiny", "y", "int8-w8a16", 1, ("zh_qa",), (31,), 120)
    assert "precision: bf16 (baseline) vs int8-w8a16 (now)" in b.differences(a)


def test_unknown_backend_has_no_silent_fallback():
    model = load_model("tiny", get_precision("bf16"), "cpu").model
    with pytest.raises(QuantizationError, match="no int8 w8a8 kernel for the xpu backend"):
        quantize_model(model, "w8a8", "xpu")


def test_greedy_agreement_path_for_real_weights(monkeypatch):
    """Checkpoints get greedy-token agreement and length; forced here on the tiny model."""
    from pytest_npuperf.model import loader as model_mod

    require(require_int8, "cpu", "w8a16")
    original = model_mod._random_model

    def as_checkpoint(*args, **kwargs):
        loaded = original(*args, **kwargs)
        loaded.real_weights = True
        return loaded

    monkeypatch.setattr(model_mod, "_random_model", as_checkpoint)
    loaded = load_model("tiny", get_precision("int8-w8a16"), "cpu")
    f = loaded.fidelity["en_qa"]
    assert 0 <= f["fidelity_greedy_agreement"] <= 1 and f["fidelity_length_ratio"] > 0


def test_greedy_fidelity_formula():
    from pytest_npuperf.model.loader import greedy_fidelity

    assert greedy_fidelity([1, 2, 3, 4], [1, 2, 9, 4, 5]) == {"fidelity_greedy_agreement": 0.75,
                                                           "fidelity_length_ratio": 1.25}
    assert greedy_fidelity([1, 2, 3, 4], [1, 2]) == {"fidelity_greedy_agreement": 0.5, "fidelity_length_ratio": 0.5}
