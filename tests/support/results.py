"""Small synthetic results for the tests: a Result with a few samples (``make_result``), and a
results document shaped like a run with graph mode and the decode roofline (``graph_doc``).

The document's results carry the keys graph mode adds (execution_mode, the decode fractions,
extra['graph'], the run's wall time per mode); one old result lacks them all. No timing.
"""

from pytest_npuperf.judge.compare import Comparison
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.report.terminal import results_document


def make_result(test_id="t::a[fp16-bs1-zh_qa]", e2e=(1.0, 1.1), tokens=16):
    """A tiny fp16 result of one test, a sample per e2e time."""
    workload = Workload("tiny", "abc", "fp16", 1, ("zh_qa",), (31,), tokens)
    samples = [
        Sample(e2e_s=e, ttft_s=e / 10, tpot_s=e / 20, tokens_per_s=tokens / e, output_tokens=[tokens],
               request_e2e_s=[e], request_ttft_s=[e / 10], request_tpot_s=[e / 20], peak_rss_bytes=123)
        for e in e2e
    ]
    return Result(test_id, "cpu-X", workload, samples, {"torch": "2.13"}, "2026-11-26T00:00:00+00:00")


GRAPH = {"backend": "inductor", "description": "torch.compile(backend=inductor, fullgraph=True, dynamic=False)",
         "compile_s": 12.5, "graphs": 2, "cache_len": 160,
         "agreement": {"logits_max_abs_diff": 0.00123, "logits_cosine": 0.9999871, "greedy_token_agreement": None,
                       "tolerance": "cosine >= 0.999"}}
WALL = {"eager": {"wall_s": 95.24, "tests": 3}, "graph": {"wall_s": 301.4, "tests": 2}}


def graph_outcome(test_id, batch_size, tokens_per_s, extra, mode="eager-greedy-fixed-length"):
    """One test of graph_doc: five identical samples, no baseline."""
    workload = Workload("tiny", "f", "bf16", batch_size, ("zh_qa",) * batch_size, (30,) * batch_size, 32, kind=mode)
    sample = Sample(e2e_s=32 * batch_size / tokens_per_s, ttft_s=0.01, tpot_s=0.005, tokens_per_s=tokens_per_s)
    return TestOutcome(test_id, Result(test_id, "cpu-X", workload, [sample] * 5, {}, "", extra),
                       Comparison("NO_BASELINE"))


def graph_doc(wall=WALL):
    """Generation at bs1 eager and graph and at bs8 (an old result), a decode step in both modes."""
    gen = "perf_tests/test_generation.py::test_generate"
    outcomes = [
        graph_outcome(f"{gen}[bf16-bs1-zh_qa]", 1, 40.0, {"execution_mode": "eager", "decode_gb_s": 11.0,
                                                          "decode_fraction_of_copy": 0.38, "decode_fraction_of_peak": 0.3}),
        graph_outcome(f"{gen}[bf16-bs1-zh_qa-graph]", 1, 80.0,
                      {"execution_mode": "graph", "decode_fraction_of_copy": 0.76, "decode_fraction_of_peak": None,
                       "graph": GRAPH}),
        graph_outcome(f"{gen}[bf16-bs8-zh_qa]", 8, 200.0, {}),  # written before graph mode: no new keys
        graph_outcome("perf_tests/test_steps.py::test_decode[bf16-decode-bs1-ctx512-graph]", 1, 1.0,
                      {"execution_mode": "graph", "graph": dict(GRAPH, compile_s=3.0, graphs=1, cache_len=512,
                                                                agreement=dict(GRAPH["agreement"], greedy_token_agreement=1.0))},
                      mode="step-decode"),
        graph_outcome("perf_tests/test_steps.py::test_decode[bf16-decode-bs1-ctx512]", 1, 1.0, {}, mode="step-decode"),
    ]
    header = {"profile": "cpu-X", "model": "tiny", "device": "cpu", "device_name": "x86", "stack": {}}
    if wall is not None:
        header["wall_time"] = wall
    return results_document(header, outcomes)
