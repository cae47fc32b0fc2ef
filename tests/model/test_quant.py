"""INT8 schemes (model/quant.py): numerics per backend, the NPU call contracts (fake torch_npu),
the proof that a model is really int8, and that the 16-bit weights leave the device."""

import weakref

import pytest

torch = pytest.importorskip("torch")

from fakes import torch_npu as fake_torch_npu  # noqa: E402
from support.skips import require  # noqa: E402

from pytest_npuperf.model import quant  # noqa: E402
from pytest_npuperf.model.loader import load_model  # noqa: E402
from pytest_npuperf.model.quant import (  # noqa: E402
    QuantizationError,
    check_memory_released,
    check_quantized,
    fidelity,
    int8_linear_class,
    quantize_model,
    quantize_per_channel,
)
from pytest_npuperf.precision import get_precision  # noqa: E402
from pytest_npuperf.stack import compat  # noqa: E402
from pytest_npuperf.stack.compat import (  # noqa: E402
    require_dtype,
    require_int8,
)


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
    layer = int8_linear_class()(linear, scheme, "cpu")
    x = torch.randn(2, 3, 256, dtype=torch.bfloat16)
    y = layer(x)
    assert y.shape == (2, 3, 128) and y.dtype == torch.bfloat16
    assert rel_err(y, linear(x)) < 0.03
    assert all(b.device.type == "cpu" for b in layer.buffers())


def test_cpu_w8a16_guards_k_not_multiple_of_16():
    with pytest.raises(QuantizationError, match="multiple of 16"):
        int8_linear_class()(dense(in_features=100), "w8a16", "cpu")


@pytest.mark.parametrize("scheme", ["w8a16", "w8a8"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_npu_kernels_satisfy_the_documented_contracts(monkeypatch, scheme, dtype):
    require(require_dtype, "cpu", str(dtype).split(".")[-1])  # the dense reference runs on the CPU
    fake_torch_npu.install(monkeypatch)
    linear = dense(dtype=dtype)
    layer = int8_linear_class()(linear, scheme, "npu")
    x = torch.randn(4, 256, dtype=dtype)
    y = layer(x)  # the fake raises ContractError on a wrong dtype, shape or layout
    assert y.dtype == dtype and y.shape == (4, 128)
    q, scale = quantize_per_channel(linear.weight)
    reference = x.float() @ (q.float() * scale[:, None]).t()  # the int8 weights, exact activations
    assert rel_err(y, reference) < (0.02 if scheme == "w8a8" else 0.005)
    assert rel_err(y, linear(x)) < 0.03


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


def test_unknown_backend_has_no_silent_fallback():
    model = load_model("tiny", get_precision("bf16"), "cpu").model
    with pytest.raises(QuantizationError, match="no int8 w8a8 kernel for the xpu backend"):
        quantize_model(model, "w8a8", "xpu")


MIB = 2**20


def test_each_16bit_weight_is_dropped_as_soon_as_its_int8_replacement_exists(monkeypatch):
    require(require_int8, "cpu", "w8a16")
    model = load_model("tiny", get_precision("bf16"), "cpu").model
    weights = [weakref.ref(m.weight) for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]
    alive_at_each_call = []
    real = quant.quantize_per_channel

    def counting(weight):
        alive_at_each_call.append(sum(1 for ref in weights if ref() is not None))
        return real(weight)

    monkeypatch.setattr(quant, "quantize_per_channel", counting)
    quantize_model(model, "w8a16", "cpu")
    # While the k-th layer is quantized, only the layers not yet replaced hold 16-bit weights
    # (before: all of them stayed alive until quantize_model returned).
    assert alive_at_each_call == list(range(len(weights), 0, -1))
    assert all(ref() is None for ref in weights)


def test_memory_released_by_quantization_is_checked():
    dense = 1000 * MIB
    assert check_memory_released(None, None, dense, "int8-w8a16") is None  # a CPU: no allocator figure
    assert check_memory_released(15000 * MIB, 14500 * MIB, dense, "int8-w8a16") == 500 * MIB
    with pytest.raises(QuantizationError, match=r"released 100.0 MiB .* less than 0.4 x the 16-bit linear weights "
                                                r"\(1000.0 MiB\): the 16-bit weights are still referenced"):
        check_memory_released(15000 * MIB, 14900 * MIB, dense, "int8-w8a16")


def test_an_int8_load_that_keeps_the_16bit_weights_on_the_device_fails(monkeypatch):
    # The device's allocator reading, injected: nothing was given back by quantization.
    require(require_int8, "cpu", "w8a8")
    readings = iter([3000 * MIB, 3000 * MIB])
    monkeypatch.setattr(quant, "allocated_bytes", lambda backend: next(readings))
    with pytest.raises(QuantizationError, match="quantization did not free the device memory: precision int8-w8a8"):
        load_model("tiny", get_precision("int8-w8a8"), "cpu")


def test_an_int8_load_that_frees_the_memory_records_it(monkeypatch):
    require(require_int8, "cpu", "w8a16")
    readings = iter([3000 * MIB, 2000 * MIB])
    monkeypatch.setattr(quant, "allocated_bytes", lambda backend: next(readings))
    loaded = load_model("tiny", get_precision("int8-w8a16"), "cpu")
    assert loaded.quant_released_bytes == 1000 * MIB


def test_int8_w8a16_graph_form_equals_the_eager_kernel(monkeypatch):
    from pytest_npuperf.model import quant

    require(compat.require_int8, "cpu", "w8a16")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32, bias=False, dtype=torch.bfloat16)
    layer = quant.int8_linear(linear, "w8a16", "cpu")
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    eager = quant._cpu_w8a16(x, layer)
    graph = quant._dequant_w8a16(x, layer)
    assert torch.allclose(eager.float(), graph.float(), rtol=2e-2, atol=2e-2)
    assert quant.kernel_name("cuda", "w8a16", graph=True).startswith("int8 weight dequantize + matmul")
    assert quant.kernel_name("cuda", "w8a16") == "aten._weight_int8pack_mm"
    assert quant.kernel_name("npu", "w8a16", graph=True) == "torch_npu.npu_weight_quant_batchmatmul"
