"""The vLLM engine (flows/serving/vllm.py): skipped with its reason when absent; driven against
the fake vllm package in tests/fakes/vllm_site."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from fakes import VLLM_SITE, synthetic

from pytest_npuperf.flows.serving.engines import CPU_KV_BUDGET_BYTES, Scenario, serving_prompts

FAKE_VLLM = VLLM_SITE  # a folder holding only the fake vllm package


def _vllm_modules():
    return [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_VLLM))
    for name in _vllm_modules():
        monkeypatch.delitem(sys.modules, name)
    import vllm

    vllm.ENGINES.clear()
    yield vllm
    # Importable while the test runs only: a later test of this process (its pytester runs
    # included) would find the fake in sys.modules and take vLLM for installed.
    for name in _vllm_modules():
        del sys.modules[name]


@pytest.mark.parametrize("precision, reason", [
    ("bf16", "vLLM is not installed (pip install vllm to measure this engine)"),
    ("int8-w8a16", "the vllm engine serves 16-bit weights (fp16, bf16); int8-w8a16 would need a checkpoint*"),
])
def test_vllm_engine_is_skipped_with_the_reason(npt, precision, reason):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed in this environment")
    npt.fake(f"def test_serve(npuperf):\n    npuperf.serve('vllm', '{precision}', 10)\n")
    synthetic.LOADS.clear()
    result = npt.run("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*test_perf.py::test_serve: {reason}"])
    assert synthetic.LOADS == []  # decided before any model is loaded


def test_vllm_needs_vllm_ascend_on_npu_and_the_build_for_the_device(fake_vllm, monkeypatch):
    from pytest_npuperf.flows.serving.vllm import unavailable

    assert unavailable("cpu", "bf16") is None
    assert "vllm-ascend is not" in unavailable("npu", "bf16")
    monkeypatch.setenv("NPUPERF_FAKE_VLLM_PLATFORM", "cuda")
    assert unavailable("cpu", "fp16") == "this vLLM build runs on 'cuda' but the suite measures 'cpu': install vLLM for cpu"


def test_vllm_engine_serves_the_tiny_model_by_its_config(fake_vllm):
    pytest.importorskip("torch")
    from pytest_npuperf.devices.cpu import CpuDevice
    from pytest_npuperf.flows.serving.vllm import VllmServer
    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision

    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    ids = [loaded.tokenizer.chat_ids(p.text) for p in serving_prompts(6)]
    server = VllmServer(loaded, CpuDevice(), "bf16", max(map(len, ids)) + 4)
    (engine,) = fake_vllm.ENGINES
    args = engine.args
    assert (args.dtype, args.load_format, args.skip_tokenizer_init, args.enable_prefix_caching) == ("bfloat16", "dummy", True, False)
    # on a CPU the KV cache gets the other engines' budget, not a share of the host's whole memory
    assert (args.kv_cache_memory_bytes, args.gpu_memory_utilization) == (CPU_KV_BUDGET_BYTES, 0.9)
    assert engine.config["architectures"] == ["MistralForCausalLM"]
    assert engine.config["hidden_size"] == loaded.model.config.hidden_size
    assert engine.max_model_len == max(map(len, ids)) + 4

    scenario = Scenario(6, rate=200.0, max_new_tokens=4, seed=2)
    records, wall = server.run(ids, scenario.arrivals(), 4)
    assert [r.output_tokens for r in records] == [4] * 6
    for record in records:
        assert record.arrival_s <= record.start_s <= record.token_times_s[0]
        assert record.token_times_s == sorted(record.token_times_s) and record.tpot_s > 0
    arrivals = [r.arrival_s for r in records]
    assert [b - a for a, b in zip(arrivals, arrivals[1:])] == pytest.approx(
        [b - a for a, b in zip(scenario.arrivals(), scenario.arrivals()[1:])])
    assert wall >= records[-1].token_times_s[-1] - records[-1].arrival_s
    again, _ = server.run(ids, [0.0] * 6, 4)  # a second run: fresh request ids on the same engine
    assert len(again) == 6 and not {r.request_id for r in again} & {r.request_id for r in records}
    folder = Path(args.model)
    server.close()
    assert engine.shut_down and not folder.exists()


class _Accelerator:
    kind = "npu"

    def __init__(self, total_gib, used_gib):
        self.total, self.used = total_gib * 2**30, used_gib * 2**30

    def info(self):
        return {"device_total_memory_bytes": self.total}

    def memory(self):
        return {"device_used_bytes": self.used}


def test_vllm_memory_arguments_follow_the_device_and_the_vllm_version(fake_vllm):
    from pytest_npuperf.devices.cpu import CpuDevice
    from pytest_npuperf.errors import MeasurementError
    from pytest_npuperf.flows.serving.vllm import memory_args

    assert memory_args(CpuDevice(), fake_vllm.EngineArgs) == {"kv_cache_memory_bytes": CPU_KV_BUDGET_BYTES}

    class OlderEngineArgs:  # a vLLM before kv_cache_memory_bytes: its own CPU default stays
        gpu_memory_utilization = 0.9

    assert memory_args(CpuDevice(), OlderEngineArgs) == {}
    assert memory_args(_Accelerator(64, 16), fake_vllm.EngineArgs) == {"gpu_memory_utilization": 0.675}
    with pytest.raises(MeasurementError, match="too little for vLLM"):
        memory_args(_Accelerator(64, 62), fake_vllm.EngineArgs)


def test_vllm_engine_refuses_short_outputs(fake_vllm, monkeypatch):
    pytest.importorskip("torch")
    from pytest_npuperf.devices.cpu import CpuDevice
    from pytest_npuperf.errors import MeasurementError
    from pytest_npuperf.flows.serving.vllm import VllmServer
    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision

    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    server = VllmServer(loaded, CpuDevice(), "bf16", 64)
    honours_eos = fake_vllm.SamplingParams
    monkeypatch.setattr(fake_vllm, "SamplingParams", lambda **kw: honours_eos(**{**kw, "ignore_eos": False}))
    with pytest.raises(MeasurementError, match="did not produce 8 tokens"):
        server.run([[1, 2, 3]] * 2, [0.0, 0.0], 8)  # the fake stops at 3 tokens when EOS is honoured
    server.close()


def test_vllm_engine_through_the_plugin(npt, fake_vllm):
    pytest.importorskip("mistral_common")
    npt.monkeypatch.setenv("PYTHONPATH", str(FAKE_VLLM))
    npt.pytester.makepyfile(test_serve=(
        "import math\n\n"
        "def test_serve(npuperf):\n"
        "    npuperf.serve('vllm', 'bf16', math.inf, requests=4, max_new_tokens=4)\n"))
    result = npt.run("--npuperf-device=cpu", "--npuperf-model=tiny", "--npuperf-runs=2", "--npuperf-warmup=0",
                     "--npuperf-summary=full")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_serve*serving_ttft_p50_s*NO_BASELINE*"])
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert test["result"]["workload"]["mode"].startswith("serving-vllm-rateinf")
    assert test["result"]["extra"]["vllm_engine_args"]["load_format"] == "dummy"
    assert [r["output_tokens"] for r in test["result"]["extra"]["serving_runs"]] == [16, 16]
    assert fake_vllm.ENGINES[-1].shut_down
