"""Model steps at Mistral-7B shapes: a prefill forward and one decode step with its KV cache.

They localize a regression: 'fp16-bs8-zh_qa got 12% slower' next to 'decode bs8 ctx2048 +20%'.
The decode step also runs in graph mode (ids ending in ``-graph``): the compiled step of the
generation tests, over a static cache.
"""

import pytest

from pytest_npuperf.modes import EXECUTION_MODES
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


def _decode_cases():
    """Eager ids stay as they were; graph mode adds '-graph' (same quick/full split)."""
    for mode in EXECUTION_MODES:
        for case in _cases(DECODE):
            batch, context = case.values[0]
            suffix = "-graph" if mode == "graph" else ""
            yield pytest.param(case.values[0], mode, marks=case.marks, id=f"decode-bs{batch}-ctx{context}{suffix}")


@pytest.mark.parametrize("shape,mode", list(_decode_cases()))
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_decode(npuperf, precision, shape, mode):
    npuperf.step("decode", precision, *shape, mode=mode)
