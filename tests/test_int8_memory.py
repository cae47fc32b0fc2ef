"""INT8 memory is what the device holds (issue 13, section 5)."""

import weakref

import pytest

torch = pytest.importorskip("torch")

from support.skips import require  # noqa: E402
from test_baseline import make_result  # noqa: E402

from pytest_npuperf.judge.compare import compare, floors_for  # noqa: E402
from pytest_npuperf.judge.metrics import METRICS  # noqa: E402
from pytest_npuperf.judge.result import Sample  # noqa: E402
from pytest_npuperf.judge.stats import REGRESSED  # noqa: E402
from pytest_npuperf.model import quant  # noqa: E402
from pytest_npuperf.model.loader import load_model  # noqa: E402
from pytest_npuperf.model.quant import QuantizationError, check_memory_released, quantize_model  # noqa: E402
from pytest_npuperf.precision import get_precision  # noqa: E402
from pytest_npuperf.stack.compat import require_int8  # noqa: E402
from pytest_npuperf.store.baselines import BaselineEntry  # noqa: E402

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


def test_peak_reserved_memory_is_gated():
    assert METRICS["peak_reserved_bytes"].gated
    base, now = make_result(e2e=(1.0,) * 5), make_result(e2e=(1.0,) * 5)
    base.samples = [Sample(e2e_s=1.0, peak_reserved_bytes=8000 * MIB) for _ in range(5)]
    now.samples = [Sample(e2e_s=1.0, peak_reserved_bytes=12000 * MIB) for _ in range(5)]  # kept reserved
    comparison = compare(now, BaselineEntry(base.test_id, base.to_dict(), "x.json"), floors_for(None, {}), 0.05)
    assert comparison.status == REGRESSED
