"""Serving under load: requests arriving by a Poisson process, static vs continuous batching.

The same requests (the study's prompts, cycled), the same arrival schedule (fixed seed) and the
same metrics for both engines, so the gain of continuous batching is measured, not claimed.
Rates are requests per second; 'inf' sends every request at once.
"""

import math

import pytest

pytestmark = pytest.mark.npu

REQUESTS = 16
NEW_TOKENS = 32
RATES = (20.0, 80.0, math.inf)


@pytest.mark.parametrize("rate", RATES, ids=lambda r: "all-at-once" if math.isinf(r) else f"rate{r:g}")
@pytest.mark.parametrize("engine", ("static", "continuous"))
def test_serving(npuperf, engine, rate):
    npuperf.serve(engine, "bf16", rate, requests=REQUESTS, max_new_tokens=NEW_TOKENS)
