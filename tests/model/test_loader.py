"""Models (model/loader.py): the tokenizer's chat format, the tiny and Mistral-7B shapes, weight
bytes, greedy fidelity for real checkpoints."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mistral_common")

from support.skips import require  # noqa: E402

from pytest_npuperf.model.loader import (  # noqa: E402
    MISTRAL_7B_CONFIG,
    MistralV1Tokenizer,
    load_model,
)
from pytest_npuperf.precision import get_precision  # noqa: E402
from pytest_npuperf.stack.compat import require_int8  # noqa: E402


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


def test_weight_bytes_leave_out_derived_buffers():
    """4.40 keeps per-layer rotary cos/sin tables as non-persistent buffers: not weights."""
    from pytest_npuperf.model.loader import module_bytes

    layer = torch.nn.Linear(4, 4, bias=False)
    layer.register_buffer("cos_cached", torch.zeros(1000), persistent=False)
    layer.register_buffer("qscale", torch.zeros(4))  # persistent, like int8 scales
    model = torch.nn.Sequential(layer)
    assert module_bytes(model)["weight_bytes"] == 16 * 4 + 4 * 4


def test_greedy_agreement_path_for_real_weights(monkeypatch):
    """Checkpoints get greedy-token agreement and length; forced here on the tiny model."""
    from pytest_npuperf.model import loader as model_mod

    require(require_int8, "cpu", "w8a16")
    original = model_mod._random_model

    def as_checkpoint(*args, **kwargs):
        loaded = original(*args, **kwargs)
        loaded.real_weights = True
        return loaded

    monkeypatch.setattr(model_mod, "_random_model", as_checkpoint)
    loaded = load_model("tiny", get_precision("int8-w8a16"), "cpu")
    f = loaded.fidelity["en_qa"]
    assert 0 <= f["fidelity_greedy_agreement"] <= 1 and f["fidelity_length_ratio"] > 0


def test_greedy_fidelity_formula():
    from pytest_npuperf.model.loader import greedy_fidelity

    assert greedy_fidelity([1, 2, 3, 4], [1, 2, 9, 4, 5]) == {"fidelity_greedy_agreement": 0.75,
                                                           "fidelity_length_ratio": 1.25}
    assert greedy_fidelity([1, 2, 3, 4], [1, 2]) == {"fidelity_greedy_agreement": 0.5, "fidelity_length_ratio": 0.5}


def test_int8_fidelity_is_measured_on_the_prompts_given(monkeypatch):
    """The run's prompts, with those a hook added or replaced: a replaced text is measured as it is now."""
    from pytest_npuperf import Prompt
    from pytest_npuperf.model import loader as model_mod
    from pytest_npuperf.model.workloads import BUILT_IN, with_hook_workloads

    require(require_int8, "cpu", "w8a16")
    seen = []
    original = model_mod._prompt_logits
    monkeypatch.setattr(model_mod, "_prompt_logits", lambda loaded, dev, prompts: seen.append(list(prompts))
                        or original(loaded, dev, prompts))
    run = with_hook_workloads([("p", [Prompt("team_rag", "Which quay was built in 1847?"),
                                      Prompt("zh_qa", "请用两句话解释什么是机器学习。", replace=True)])])
    loaded = load_model("tiny", get_precision("int8-w8a16"), "cpu", run.prompts())
    assert sorted(loaded.fidelity) == sorted(p.prompt_id for p in run.prompts())
    assert seen == [run.prompts()] * 2  # before and after quantizing
    assert [p.text for p in seen[0] if p.prompt_id == "zh_qa"] == ["请用两句话解释什么是机器学习。"]
    assert sorted(load_model("tiny", get_precision("int8-w8a16"), "cpu").fidelity) == sorted(
        p.prompt_id for p in BUILT_IN.prompts())


def test_the_fingerprint_reads_rope_theta_where_either_transformers_line_keeps_it():
    from types import SimpleNamespace

    from pytest_npuperf.model.loader import config_fingerprint

    common = dict(model_type="mistral", hidden_size=128, num_hidden_layers=2)
    v4 = SimpleNamespace(rope_theta=1e6, **common)  # transformers 4: an attribute
    v5 = SimpleNamespace(rope_theta=None, rope_parameters={"rope_type": "default", "rope_theta": 1e6}, **common)
    other = SimpleNamespace(rope_parameters={"rope_theta": 1e4}, **common)  # Mistral-7B v0.1's base
    assert config_fingerprint(v4, "bf16", "checkpoint") == config_fingerprint(v5, "bf16", "checkpoint")
    assert config_fingerprint(other, "bf16", "checkpoint") != config_fingerprint(v5, "bf16", "checkpoint")
