"""Graph mode: the compiled decode step over a static KV cache (pytest_npuperf/flows/graph/).

Most tests compile with dynamo's ``eager`` backend: the same capture (fullgraph, static shapes,
guards and recompilations) without inductor's code generation, so they take seconds. One test
runs the real CPU backend (inductor) through the plugin, record then compare.
"""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from stack import require  # noqa: E402

from pytest_npuperf.devices.base import GraphBackend  # noqa: E402
from pytest_npuperf.devices.cpu import CpuDevice  # noqa: E402
from pytest_npuperf.devices.graph_backend import cpu_compiler, select_backend  # noqa: E402
from pytest_npuperf.errors import GraphError  # noqa: E402
from pytest_npuperf.flows.graph.plan import GraphPlan  # noqa: E402
from pytest_npuperf.flows.graph.runner import GraphRunner, batch_bucket, cache_len_for  # noqa: E402
from pytest_npuperf.flows.measure import generate_fixed, make_batch, measure_once  # noqa: E402
from pytest_npuperf.model.loader import load_model  # noqa: E402
from pytest_npuperf.model.workloads import batch_prompts  # noqa: E402
from pytest_npuperf.modes import get_mode  # noqa: E402
from pytest_npuperf.precision import get_precision  # noqa: E402
from pytest_npuperf.settings import SettingsError, build_settings  # noqa: E402
from pytest_npuperf.stack import compat  # noqa: E402

EAGER_CAPTURE = GraphBackend("dynamo-eager", {"backend": "eager", "fullgraph": True, "dynamic": False},
                             "torch.compile(backend=eager, fullgraph=True, dynamic=False)")


@pytest.fixture(scope="module")
def fp32_tiny():
    """The tiny model in float32 (eager and graph give the same greedy tokens, exactly), its
    query and key projections scaled up 10x: random weights attend almost uniformly, so their
    logits barely depend on positions; sharpened, a position or cache bug changes them (a one-step
    position shift drops the logits cosine from 0.9999996 to 0.51)."""
    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    loaded.model.float()
    with torch.no_grad():
        for layer in loaded.model.model.layers:
            layer.self_attn.q_proj.weight.mul_(10.0)
            layer.self_attn.k_proj.weight.mul_(10.0)
    require(compat.require_graph_mode, loaded.model)
    return loaded


@pytest.fixture(scope="module")
def runner(fp32_tiny):
    return GraphRunner(fp32_tiny, CpuDevice(), EAGER_CAPTURE)


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


def test_graph_mode_needs_a_static_cache_the_stack_has(monkeypatch, fp32_tiny):
    monkeypatch.setattr(compat, "transformers_version", lambda: (4, 40, 2))
    with pytest.raises(compat.Unsupported, match="static KV cache.*4.40.2.*--npuperf-mode eager"):
        compat.require_graph_mode(fp32_tiny.model)


def test_cpu_graph_mode_without_a_compiler_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(compat.Unsupported, match="no C.. compiler.*apt-get install g\\+\\+"):
        cpu_compiler()
    with pytest.raises(compat.Unsupported):
        select_backend("cpu", "AMD EPYC")


def test_cuda_backend_is_cuda_graphs_fullgraph_static():
    backend = select_backend("cuda", "NVIDIA H100 80GB HBM3")
    assert backend.name == "inductor-cudagraphs"
    assert backend.compile_kwargs == {"backend": "inductor", "mode": "reduce-overhead", "fullgraph": True,
                                      "dynamic": False}
    assert "reduce-overhead" in backend.description


def test_mode_option(tmp_path):
    assert build_settings({}, tmp_path).modes == ("eager", "graph")
    assert build_settings({"mode": ("graph", "--npuperf-mode")}, tmp_path).modes == ("graph",)
    assert build_settings({"mode": ("all", "--npuperf-mode")}, tmp_path).modes == ("eager", "graph")
    assert "--npuperf-mode=eager" in build_settings({"mode": ("eager", "--npuperf-mode")}, tmp_path).as_args()
    with pytest.raises(SettingsError, match="--npuperf-mode"):
        build_settings({"mode": ("compiled", "--npuperf-mode")}, tmp_path)
    with pytest.raises(ValueError, match="unknown execution mode 'compiled'"):
        get_mode("compiled")
    pinned = build_settings({"graph_backend": ("reduce-overhead", "--npuperf-graph-backend")}, tmp_path)
    assert pinned.graph_backend == "reduce-overhead" and "--npuperf-graph-backend=reduce-overhead" in pinned.as_args()
    with pytest.raises(SettingsError, match="--npuperf-graph-backend"):
        build_settings({"graph_backend": ("aclgraph", "--npuperf-graph-backend")}, tmp_path)


def test_pinned_backends_are_the_npu_modes():
    from pytest_npuperf.devices.npu_graph import GRAPH_MODES
    from pytest_npuperf.settings import GRAPH_BACKENDS

    assert GRAPH_BACKENDS == ("auto",) + GRAPH_MODES
    with pytest.raises(compat.Unsupported, match="leave the option at auto"):
        select_backend("cuda", "NVIDIA H100", "reduce-overhead")


def test_int8_w8a16_graph_form_equals_the_eager_kernel(monkeypatch):
    from pytest_npuperf.model import quant

    require(compat.require_int8, "cpu", "w8a16")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32, bias=False, dtype=torch.bfloat16)
    layer = quant.int8_linear(linear, "w8a16", "cpu")
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    eager = quant._cpu_w8a16(x, layer)
    graph = quant._dequant_w8a16(x, layer)
    assert torch.allclose(eager.float(), graph.float(), rtol=2e-2, atol=2e-2)
    assert quant.kernel_name("cuda", "w8a16", graph=True).startswith("int8 weight dequantize + matmul")
    assert quant.kernel_name("cuda", "w8a16") == "aten._weight_int8pack_mm"
    assert quant.kernel_name("npu", "w8a16", graph=True) == "torch_npu.npu_weight_quant_batchmatmul"


def test_suite_ids_keep_eager_and_add_graph(npt):
    """The perf suite's ids: eager ones as before (baseline keys), graph ones end in '-graph'."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "pytest", "perf_tests", "-m", "npu", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "--npuperf-preset", "full", "--npuperf-device", "cpu"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    ids = [line.split("::")[-1] for line in out.stdout.splitlines() if "::" in line]
    assert "test_generate[fp16-bs8-zh_qa]" in ids and "test_generate[fp16-bs8-zh_qa-graph]" in ids
    assert "test_decode[bf16-decode-bs1-ctx512]" in ids and "test_decode[bf16-decode-bs1-ctx512-graph]" in ids
    assert "test_serving[bf16-static-rate20]" in ids and "test_serving[bf16-static-graph-rate20]" in ids
    assert not [i for i in ids if "-]" in i or "--" in i]
    graph = [i for i in ids if "graph" in i]
    assert len(graph) == 4 * 4 * 5 + 4 * 8 + 2 * 3  # generation, decode steps, static serving (bf16, fp16)


def test_graph_mode_through_the_plugin(npt):
    """Generation in both modes and a decode step in graph mode, recorded through the plugin on
    the CPU's real backend (inductor)."""
    require(cpu_compiler)
    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    require(compat.require_graph_mode, loaded.model)
    npt.pytester.makepyfile(
        test_perf="""
        import pytest

        @pytest.mark.npu
        @pytest.mark.parametrize("mode", ["eager", "graph"])
        def test_generate(npuperf, mode):
            npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa", mode=mode)

        @pytest.mark.npu
        @pytest.mark.parametrize("mode", ["graph"])
        def test_decode(npuperf, mode):
            npuperf.step("decode", "bf16", 1, 64, mode=mode)
        """
    )
    # Fresh processes, as the suite runs: a second session inside one process would import
    # inductor's modules again, which they do not allow.
    args = ("-p", "no:cacheprovider", "--npuperf-device", "cpu", "--npuperf-max-new-tokens", "4",
            "--npuperf-runs", "3")
    first = npt.pytester.runpytest_subprocess(*args, "--npuperf-save-baseline")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["*wall time: eager * s (1 tests), graph * s (2 tests)*", "graph mode: 2 tests:*", "*inductor*"])
    data = json.loads((npt.path / "results.json").read_text())
    tests = {t["test_id"].split("::")[-1]: t for t in data["tests"]}
    graph = tests["test_generate[graph]"]["result"]
    eager = tests["test_generate[eager]"]["result"]
    assert graph["extra"]["execution_mode"] == "graph" and eager["extra"]["execution_mode"] == "eager"
    assert graph["workload"]["mode"] == "graph-greedy-fixed-length" and eager["workload"]["graph"] == ""
    assert "inductor" in graph["workload"]["graph"] and "cache=static(1024)" in graph["workload"]["generation"]
    info = graph["extra"]["graph"]
    assert info["backend"] == "inductor" and info["graphs"] == 1 and info["compile_s"] > 0
    assert info["agreement"]["logits_cosine"] >= 0.999
    assert all(s["compile_s"] == info["compile_s"] and s["graph_compiles"] == 1 for s in graph["samples"])
    assert all(s["output_tokens"] == [4] for s in graph["samples"])
    assert graph["extra"]["decode_fraction_of_copy"] > 0 and graph["extra"]["decode_fraction_of_peak"] is None
    # the decode step at context 64 shares the generation's compiled shape (batch 1, cache 1024)
    step = tests["test_decode[graph]"]["result"]
    assert step["workload"]["mode"] == "step-decode-graph"
    assert step["extra"]["graph"]["compile_s"] == info["compile_s"]
    # The comparison of graph results against this baseline (no MISMATCH, compile_s and
    # graph_compiles judged) is the perf suite's record-then-compare in .ci/run.


def test_a_test_with_a_stored_baseline_that_the_stack_can_no_longer_run_fails(npt):
    """Skipping is for what this device never ran; losing a measured test is a regression."""
    npt.fake("""
import os
import pytest

@pytest.mark.npu
def test_case(npuperf):
    if os.environ.get("NPUPERF_TEST_GONE"):
        npuperf.serve("vllm", "bf16", 20.0)  # vLLM absent here: EngineUnavailable
    else:
        npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa")
""")
    npt.run("--npuperf-save-baseline").assert_outcomes(passed=1)
    gone = npt.run(NPUPERF_TEST_GONE="1")
    gone.assert_outcomes(failed=1)
    gone.stdout.fnmatch_lines(["*a baseline of this test is stored for this device, but the stack cannot run it now*"])
    npt.run("--npuperf-save-baseline", NPUPERF_TEST_GONE="1").assert_outcomes(skipped=1)
