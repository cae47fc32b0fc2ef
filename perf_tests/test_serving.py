"""Serving under load: requests arriving by a Poisson process, static vs continuous batching.

The same requests (the study's prompts, cycled), the same metrics for every engine, so the gain
of continuous batching is measured, not claimed. The offered load is a fraction of the engine's
capacity on this device (its requests/s when every request arrives at once), measured when the
test's first baseline is recorded and frozen into it: 40% and 80%, neither idle nor saturated;
'all-at-once' sends every request at once (the capacity test itself). Requests per run: the
preset's (64 in the full preset, 16 in the quick one). bf16 is the quick preset's precision;
fp16 (the study's serving precision on accelerators) runs in the full preset.
"""

import math

import pytest

pytestmark = pytest.mark.npu

NEW_TOKENS = 32
LOADS = (0.4, 0.8, math.inf)  # fractions of the capacity; inf: every request at once


def _engines():
    """Eager engines (vllm: skipped, with the reason, when absent), then the static engine in
    graph mode (decode graphs for batch 1, 2, 4 and 8, captured before the requests arrive)."""
    for engine in ("static", "continuous", "vllm"):
        yield pytest.param(engine, "eager", id=engine)
    yield pytest.param("static", "graph", id="static-graph")


@pytest.mark.parametrize("load", LOADS, ids=lambda x: "all-at-once" if math.isinf(x) else f"load{x * 100:.0f}")
@pytest.mark.parametrize("engine,mode", list(_engines()))
@pytest.mark.parametrize("precision", ("bf16", pytest.param("fp16", marks=pytest.mark.full_only)))
def test_serving(npuperf, precision, engine, mode, load):
    if math.isinf(load):
        npuperf.serve(engine, precision, rate=math.inf, max_new_tokens=NEW_TOKENS, mode=mode)
    else:
        npuperf.serve(engine, precision, load=load, max_new_tokens=NEW_TOKENS, mode=mode)
