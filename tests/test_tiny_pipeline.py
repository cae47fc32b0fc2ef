"""One real run of the tiny model through the whole pipeline (CPU, real tokenizer, real generate).

Nothing here asserts on timing values beyond their physical sanity: real timing noise
belongs in the perf suite, not in the plugin's tests.
"""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mistral_common")

from pytest_npuperf.devices.cpu import CpuDevice  # noqa: E402
from pytest_npuperf.errors import MeasurementError  # noqa: E402
from pytest_npuperf.flows.measure import make_batch, measure_once, real_token_counts  # noqa: E402
from pytest_npuperf.model.loader import MISTRAL_7B_CONFIG, MistralV1Tokenizer, load_model  # noqa: E402
from pytest_npuperf.model.workloads import batch_prompts  # noqa: E402
from pytest_npuperf.precision import get_precision  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", get_precision("bf16"), "cpu")


def test_tokenizer_applies_the_v1_chat_format():
    tok = MistralV1Tokenizer()
    ids = tok.chat_ids("Hello")
    assert ids[0] == tok.bos_id == 1
    assert tok.decode(ids).strip().startswith("[INST] Hello [/INST]")


def test_tiny_model_shape_and_size(tiny):
    cfg = tiny.model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.vocab_size) == (128, 2, 2, 32000)
    assert next(tiny.model.parameters()).dtype == torch.bfloat16
    params = sum(p.numel() for p in tiny.model.parameters())
    assert params * 2 <= tiny.weight_bytes < params * 2 + 4096  # + the rotary buffer
    assert 0 < tiny.linear_weight_bytes < tiny.weight_bytes


def test_mistral_7b_config_is_the_real_one():
    assert MISTRAL_7B_CONFIG["num_key_value_heads"] == 8 and MISTRAL_7B_CONFIG["intermediate_size"] == 14336
    from transformers import MistralConfig

    with torch.device("meta"):
        from transformers import MistralForCausalLM

        model = MistralForCausalLM(MistralConfig(**MISTRAL_7B_CONFIG))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(7.2417e9, rel=1e-4)


def test_one_measured_generation(tiny):
    device = CpuDevice()
    batch = make_batch(tiny, batch_prompts("zh_qa", 2), "cpu")
    assert batch.attention_mask.sum(dim=1).tolist() == batch.prompt_tokens
    sample = measure_once(tiny, device, batch, max_new_tokens=6)
    assert sample.output_tokens == [6, 6]
    assert 0 < sample.ttft_s < sample.e2e_s
    assert sample.tokens_per_s == pytest.approx(12 / sample.e2e_s)
    assert sample.request_e2e_s == [sample.e2e_s] * 2  # each request waited the whole batch
    assert len(sample.token_times_s) == 6 and sample.token_times_s == sorted(sample.token_times_s)
    assert sample.peak_rss_bytes > 50 * 2**20


def test_early_eos_would_be_caught():
    generated = torch.tensor([[5, 6, 7, 8], [5, 2, 2, 2]])
    assert real_token_counts(generated, eos_id=2) == [4, 1]


def test_wrong_length_is_a_measurement_error(tiny, monkeypatch):
    original = tiny.model.generate

    def short_generate(**kwargs):
        kwargs["max_new_tokens"] = kwargs["min_new_tokens"] = 3
        return original(**kwargs)

    monkeypatch.setattr(tiny.model, "generate", short_generate)
    batch = make_batch(tiny, batch_prompts("en_qa", 1), "cpu")
    with pytest.raises(MeasurementError, match="3 new positions, 6 were requested"):
        measure_once(tiny, CpuDevice(), batch, max_new_tokens=6)


def test_suite_end_to_end_on_the_tiny_model(npt):
    npt.pytester.makepyfile(
        test_perf="""
        import pytest

        @pytest.mark.npu
        @pytest.mark.parametrize("batch_size", [1, 2], ids=lambda b: f"bs{b}")
        def test_generate(npuperf, batch_size):
            npuperf.generate(precision="bf16", batch_size=batch_size, workload="zh_qa")
        """
    )
    args = ("--npuperf-device", "cpu", "--npuperf-max-new-tokens", "4", "--npuperf-runs", "5")
    first = npt.run(*args, "--npuperf-save-baseline", "--npuperf-summary=full")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["npuperf device: cpu (*), profile 'cpu-*', model tiny, *",
                                "bs1*e2e_s*NO_BASELINE", "*saved 2 baseline entries*"])
    # The comparison machinery on real numbers. The verdict itself depends on real noise (and a
    # second session inside one process runs slower than a fresh process), so only the
    # machinery is checked here: every test compared, metric by metric, against its baseline.
    second = npt.run(*args)
    assert second.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    outcomes = second.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2 and "error" not in outcomes
    data = json.loads((npt.path / "results.json").read_text())
    assert len(data["tests"]) == 2
    for test in data["tests"]:
        verdicts = {v["metric"]: v for v in test["comparison"]["verdicts"]}
        assert {"e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_rss_bytes"} <= set(verdicts)
        assert all(v["baseline_median"] > 0 and v["status"] in ("OK", "DRIFT", "IMPROVED", "REGRESSED", "INCONCLUSIVE")
                   for v in verdicts.values())
    sample = data["tests"][0]["result"]["samples"][0]
    assert sample["output_tokens"] == [4]
    assert data["run"]["stack"]["torch"].startswith(torch.__version__.split("+")[0])
