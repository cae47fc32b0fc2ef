"""A test's graph plan (flows/graph/plan.py): the shapes it holds, recompilations counted in
warm-up and refused while timed."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_npuperf.errors import GraphError  # noqa: E402
from pytest_npuperf.flows.graph.plan import GraphPlan  # noqa: E402


def test_a_recompilation_in_warm_up_counts_in_graph_compiles(fp32_tiny, runner):
    plan = GraphPlan(runner, fp32_tiny)
    step = plan.use(1, 100)
    own = step.graphs
    torch.compile(lambda x: x * 5 - 1, backend="eager")(torch.ones(2))  # e.g. a guard failing on the first real call
    plan.start_timing()

    class Sample:
        compile_s = graph_compiles = None

    sample = Sample()
    plan.stamp(sample)
    assert sample.graph_compiles == own + 1 and step.graphs == own + 1  # later users of the shape report it too
    assert plan.summary()["warm_up_recompiles"] == 1


def test_a_test_holds_only_the_shapes_it_uses(fp32_tiny, runner):
    first = GraphPlan(runner, fp32_tiny)
    first.use(2, 100)
    second = GraphPlan(runner, fp32_tiny)
    second.use(1, 100)
    assert [(s.batch, s.cache_len) for s in runner.steps()] == [(1, 1024)]  # batch 2's cache and graph let go
    serving = GraphPlan(runner, fp32_tiny)
    serving.plan([(1, 1024), (2, 1024)])
    serving.use(1, 100)
    kept = runner.step(1, 1024)
    serving.use(2, 100)
    assert runner.step(1, 1024) is kept  # declared shapes are kept while the others compile


def test_a_recompilation_while_timed_fails_the_sample(fp32_tiny, runner):
    plan = GraphPlan(runner, fp32_tiny)
    plan.use(1, 100)
    plan.start_timing()

    class Sample:
        compile_s = graph_compiles = None

    sample = Sample()
    plan.stamp(sample)
    assert sample.graph_compiles >= 1 and sample.compile_s >= 0
    torch.compile(lambda x: x * 3 + 1, backend="eager")(torch.ones(3))  # a graph compiled while "timed"
    with pytest.raises(GraphError, match="compiled while timed"):
        plan.stamp(sample)
