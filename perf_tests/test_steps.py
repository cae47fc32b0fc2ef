"""Model steps at Mistral-7B shapes: a prefill forward and one decode step with its KV cache.

They localize a regression: 'fp16-bs8-zh_qa got 12% slower' next to 'decode bs8 ctx2048 +20%'.
"""

import pytest

from pytest_npuperf.precision import PRECISIONS

pytestmark = pytest.mark.npu

PREFILL = [(batch, length) for batch in (1, 8) for length in (128, 512, 2048)]
DECODE = [(batch, context) for batch in (1, 2, 4, 8) for context in (512, 2048)]


def _cases(shapes):
    """The quick preset keeps batch 1 and 8 at length or context 512."""
    return [pytest.param(s, marks=() if s[0] in (1, 8) and s[1] == 512 else pytest.mark.full_only) for s in shapes]


@pytest.mark.parametrize("shape", _cases(PREFILL), ids=lambda s: f"prefill-bs{s[0]}-len{s[1]}")
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_prefill(npuperf, precision, shape):
    npuperf.step("prefill", precision, *shape)


@pytest.mark.parametrize("shape", _cases(DECODE), ids=lambda s: f"decode-bs{s[0]}-ctx{s[1]}")
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_decode(npuperf, precision, shape):
    npuperf.step("decode", precision, *shape)
