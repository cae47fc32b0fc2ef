"""Operators at the shapes of the model's config (tiny on a CPU, Mistral-7B on an accelerator)."""

import pytest

pytestmark = pytest.mark.npu

ACTIVATIONS = ("fp16", "bf16")
ROWS = (1, 8, 512)  # decode batch 1, decode batch 8, a prefill chunk
MATMULS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head",
           "int8_w8a16", "int8_w8a8")
ELEMENTWISE = ("rms_norm", "rotary", "silu_mul")
CASES = (
    [(op, m) for op in MATMULS + ELEMENTWISE for m in ROWS]
    + [("attn_prefill", s) for s in (512, 2048)]
    + [("attn_decode", ctx) for ctx in (512, 2048)]
)


def _quick(case):
    """The quick preset keeps 8 rows, and attention at 512."""
    op, size = case
    return size == (512 if op.startswith("attn_") else 8)


def _case_id(case):
    op, size = case
    return f"{op}-{'ctx' if op == 'attn_decode' else 'seq' if op == 'attn_prefill' else 'm'}{size}"


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=() if _quick(c) else pytest.mark.full_only) for c in CASES], ids=_case_id
)
@pytest.mark.parametrize("precision", ACTIVATIONS)
def test_op(npuperf, precision, case):
    npuperf.op(case[0], precision, case[1])
