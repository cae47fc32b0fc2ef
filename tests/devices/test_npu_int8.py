"""Which int8 schemes each Ascend chip and torch_npu release supports (devices/npu_int8.py):
unsupported ones skip with the reason, and the fake torch_npu enforces the same limits."""

from __future__ import annotations

import textwrap

import pytest
from fakes import torch_npu as fake_torch_npu

from pytest_npuperf.devices.npu_int8 import unsupported


@pytest.mark.parametrize(
    "soc, version, scheme, dtype, expected",
    [
        ("Ascend910B3", "2.5.1", "w8a8", "bfloat16", None),
        ("Ascend910_9391", "2.14.0", "w8a16", "bfloat16", None),
        ("Ascend310P3", "2.5.1", "w8a8", "float16", "no npu_dynamic_quant"),
        ("Ascend310P3", "2.5.1", "w8a16", "bfloat16", "fp16 activations only"),
        ("Ascend310P3", "2.5.1", "w8a16", "float16", None),
        ("Ascend910_9391", "2.1.0.post8", "w8a8", "bfloat16", "Atlas A2 (Ascend910B*) only"),
        ("Ascend910B4", "2.1.0.post8", "w8a16", "bfloat16", None),
        ("Ascend910A", "2.5.1", "w8a16", "bfloat16", "not for Ascend910A"),
    ],
)
def test_int8_support_by_chip(soc, version, scheme, dtype, expected):
    why = unsupported(soc, version, scheme, dtype)
    assert why is None if expected is None else expected in why


@pytest.mark.parametrize("soc", ["Ascend310P3", "Ascend910B3"])
def test_fake_enforces_the_chip_limits_the_project_skips(soc):
    import torch

    fake = fake_torch_npu.build(soc=soc)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    if soc == "Ascend310P3":
        with pytest.raises(fake_torch_npu.ContractError, match="not supported on Ascend310P3"):
            fake.npu_dynamic_quant(x)
        assert unsupported(soc, "2.5.1", "w8a8", "bfloat16") is not None
    else:
        qx, scale = fake.npu_dynamic_quant(x)
        assert qx.dtype == torch.int8 and tuple(scale.shape) == (4,)
        assert unsupported(soc, "2.5.1", "w8a8", "bfloat16") is None


@pytest.mark.parametrize("precision, reason", [("int8-w8a8", "no npu_dynamic_quant"), ("int8-w8a16", "fp16 activations only")])
def test_unsupported_int8_on_310p_is_skipped_with_the_reason(npt, monkeypatch, precision, reason):
    from fakes import synthetic

    fake_torch_npu.install(monkeypatch, soc="Ascend310P3")
    # The fake NPU holds no tensors: the header's matmul calibration gets the fakes' numbers.
    monkeypatch.setattr("pytest_npuperf.devices.calibration.calibrate", lambda device, budget_s=1.0: dict(synthetic.CALIBRATION))
    npt.pytester.makepyfile(test_perf=textwrap.dedent(
        f"""
        def test_generate(npuperf):
            npuperf.generate(precision={precision!r}, batch_size=1, workload='zh_qa')
        """
    ))
    result = npt.run("--npuperf-device", "npu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*{precision}: *{reason}*"])


def test_int8_operators_on_a_310p_are_skipped_with_the_reason(npu_run, monkeypatch):
    from fakes import npu_session as fake_npu_session

    monkeypatch.setattr(fake_npu_session, "SOC", "Ascend310P3")
    npu_run.pytester.makepyfile(test_perf="""
import pytest

pytestmark = pytest.mark.npu

def test_op(npuperf):
    npuperf.op("int8_w8a8", "bf16", 8)
""")
    result = npu_run.run("--npuperf-device", "npu", "--npuperf-model", "tiny", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*bf16: Ascend310P3*no npu_dynamic_quant*"])
