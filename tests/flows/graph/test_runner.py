"""Graph mode's runner (flows/graph/runner.py): the compiled decode step over a static KV cache.

The tests compile with dynamo's ``eager`` backend: the same capture (fullgraph, static shapes,
guards and recompilations) without inductor's code generation, so they take seconds. A run on
the real CPU backend (inductor) through the plugin is in tests/test_plugin.py.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_npuperf.devices.cpu import CpuDevice  # noqa: E402
from pytest_npuperf.errors import GraphError  # noqa: E402
from pytest_npuperf.flows.graph.runner import batch_bucket, cache_len_for  # noqa: E402
from pytest_npuperf.flows.measure import generate_fixed, make_batch, measure_once  # noqa: E402
from pytest_npuperf.model.workloads import batch_prompts  # noqa: E402


def test_shapes_are_bucketed_as_servers_do():
    assert [batch_bucket(n) for n in (1, 2, 3, 4, 5, 8)] == [1, 2, 4, 4, 8, 8]
    assert [cache_len_for(n) for n in (1, 1024, 1025, 2049)] == [1024, 1024, 2048, 4096]


def test_graph_generation_gives_eager_greedy_tokens(fp32_tiny, runner):
    batch = make_batch(fp32_tiny, batch_prompts("zh_qa", 3), "cpu")  # 3 rows: padded to 4, left-padded
    eager = generate_fixed(fp32_tiny, batch, 8)
    graph = runner.generate_fixed(fp32_tiny, batch, 8)
    assert graph.shape == eager.shape == (3, batch.input_ids.shape[1] + 8)
    assert torch.equal(graph, eager)
    step = runner.step(4, cache_len_for(batch.input_ids.shape[1] + 8))
    assert step.graphs >= 1 and step.compile_s >= 0.0


def test_graph_generation_is_measured_like_eager(fp32_tiny, runner):
    batch = make_batch(fp32_tiny, batch_prompts("en_qa", 2), "cpu")
    sample = measure_once(fp32_tiny, CpuDevice(), batch, 5, generate=runner.generate_fixed)
    assert sample.output_tokens == [5, 5] and len(sample.token_times_s) == 5
    assert 0 < sample.ttft_s < sample.e2e_s


def test_agreement_reports_logits_and_tokens(fp32_tiny, runner):
    batch = make_batch(fp32_tiny, batch_prompts("en_qa", 1), "cpu")
    eager = generate_fixed(fp32_tiny, batch, 6, output_logits=True, return_dict_in_generate=True)
    found = runner.agreement(batch, 6, eager.sequences, list(eager.logits))
    assert found["logits_cosine"] > 0.99999 and found["logits_max_abs_diff"] < 1e-3
    assert found["greedy_token_agreement"] == 1.0 and "all 6 steps (eager tokens fed)" in found["tolerance"]


def test_agreement_catches_a_loop_that_feeds_wrong_positions(fp32_tiny, runner, monkeypatch):
    """A bug after the first step (here: positions off by one from step 2 on) fails the check."""
    batch = make_batch(fp32_tiny, batch_prompts("zh_qa", 2), "cpu")
    eager = generate_fixed(fp32_tiny, batch, 6, output_logits=True, return_dict_in_generate=True)
    original = runner._call

    def shifted(fn, ids, mask, positions, slot):
        return original(fn, ids, mask, positions + (1 if int(slot) > batch.input_ids.shape[1] else 0), slot)

    monkeypatch.setattr(runner, "_call", shifted)
    with pytest.raises(GraphError, match="disagrees with eager.*all 6 steps"):
        runner.agreement(batch, 6, eager.sequences, list(eager.logits))


def test_logits_unlike_eager_fail_with_the_figures(runner):
    eager = torch.randn(2, 50)
    assert runner.logits_agreement(eager, eager + 1e-6)["logits_cosine"] > 0.9999
    with pytest.raises(GraphError, match="disagrees with eager.*cosine"):
        runner.logits_agreement(eager, eager + torch.randn(2, 50))


def test_decode_kernel_repeats_the_same_step(fp32_tiny, runner):
    ids = torch.randint(3, 32000, (2, 41))
    call, rewind, eager, step = runner.decode_kernel(ids)
    assert (step.batch, step.cache_len) == (2, 1024)
    rewind()
    first = call().clone()
    rewind()
    again = call().clone()
    rewind()
    reference = eager()
    assert torch.equal(first, again)  # the cache was not advanced between calls
    assert torch.allclose(first, reference, atol=1e-4)
    # and the step matches a plain forward over the whole sequence
    with torch.no_grad():
        full = fp32_tiny.model(input_ids=ids).logits[:, -1, :]
    assert torch.allclose(first, full, atol=1e-3)
