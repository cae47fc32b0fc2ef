"""Serving under load: requests arriving by a Poisson process, static vs continuous batching.

The same requests (the study's prompts, cycled), the same arrival schedule (fixed seed) and the
same metrics for every engine, so the gain of continuous batching is measured, not claimed.
Rates are requests per second; 'inf' sends every request at once. bf16 is the quick preset's
precision; fp16 (the study's serving precision on accelerators) runs in the full preset.
"""

import math

import pytest

pytestmark = pytest.mark.npu

REQUESTS = 16
NEW_TOKENS = 32
RATES = (20.0, 80.0, math.inf)


def _engines():
    """Eager engines (vllm: skipped, with the reason, when absent), then the static engine in
    graph mode (decode graphs for batch 1, 2, 4 and 8, captured before the requests arrive)."""
    for engine in ("static", "continuous", "vllm"):
        yield pytest.param(engine, "eager", id=engine)
    yield pytest.param("static", "graph", id="static-graph")


@pytest.mark.parametrize("rate", RATES, ids=lambda r: "all-at-once" if math.isinf(r) else f"rate{r:g}")
@pytest.mark.parametrize("engine,mode", list(_engines()))
@pytest.mark.parametrize("precision", ("bf16", pytest.param("fp16", marks=pytest.mark.full_only)))
def test_serving(npuperf, precision, engine, mode, rate):
    npuperf.serve(engine, precision, rate, requests=REQUESTS, max_new_tokens=NEW_TOKENS, mode=mode)
