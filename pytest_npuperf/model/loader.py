"""Models and tokenizers: 'tiny', 'mistral-7b' (real config, random weights) or a local checkpoint.

Random-weight models are built directly on the device, in the requested dtype, from a fixed
seed. The tokenizer of the built-in models is the real Mistral v1 SentencePiece tokenizer
shipped in ``mistral-common``, with the v1 chat format, so prompt token counts are the real
ones. Version differences of transformers are kept in this module.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ..precision import Precision
from ..stack.compat import checkpoint_dtype_kwarg, require_dtype, require_int8
from . import quant
from .tokenizers import HFChatTokenizer, MistralV1Tokenizer
from .workloads import BUILT_IN, Prompt

SEED = 1234

# Mistral-7B-Instruct-v0.2 (docs/measurement.md#physical-limits): 7.24 B parameters, untied lm_head, no sliding window.
MISTRAL_7B_CONFIG: Dict[str, Any] = dict(
    hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, vocab_size=32000, max_position_embeddings=32768,
    rope_theta=1e6, rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False,
    bos_token_id=1, eos_token_id=2, hidden_act="silu",
)
# Same architecture, small dims: 8.5 M parameters, almost all in the 32000-token embeddings.
TINY_CONFIG: Dict[str, Any] = dict(
    MISTRAL_7B_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=32,
)
# The fields that define the cost of a forward pass; 'transformers_version' and the like are
# deliberately left out, because an upgrade of transformers is what the suite tests.
_FINGERPRINT_FIELDS = (
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "vocab_size", "rope_theta", "sliding_window",
    "tie_word_embeddings", "hidden_act",
)
MISTRAL_LIKE = ("mistral", "llama")


class ModelError(Exception):
    """The model cannot be loaded; the message names the problem and the fix."""


@dataclass
class LoadedModel:
    model_id: str
    precision: Precision
    model: Any
    tokenizer: Any
    fingerprint: str
    weight_bytes: int
    linear_weight_bytes: int
    attn_implementation: str
    dense_linear_weight_bytes: int = 0
    real_weights: bool = False  # a checkpoint, not random weights
    quant_kernel: str = ""
    quant_released_bytes: Optional[int] = None  # device memory freed by quantization (None on a CPU)
    # prompt id -> fidelity metrics of the int8 model against its own 16-bit weights
    fidelity: Dict[str, Dict[str, float]] = field(default_factory=dict)


def tokenizer_identity(loaded: LoadedModel) -> str:
    """What turned the prompts into ids: the tokenizer's own description, else its class."""
    return str(getattr(loaded.tokenizer, "name", "") or type(loaded.tokenizer).__name__)


def _torch_dtype(precision: Precision) -> Any:
    import torch

    return getattr(torch, precision.dtype)


@contextlib.contextmanager
def _default_dtype(dtype: Any) -> Iterator[None]:
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def config_fingerprint(config: Any, precision: str, weights: str) -> str:
    data = {k: getattr(config, k, None) for k in _FINGERPRINT_FIELDS}
    if data.get("rope_theta") is None:  # transformers 5 keeps it in rope_parameters: the same model
        data["rope_theta"] = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    data.update(precision=precision, weights=weights)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kv_bytes_per_token(config: Any, item_bytes: int) -> int:
    """Bytes of KV cache one token of one sequence holds: keys and values of every layer."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * item_bytes


def _stored_bytes(module: Any) -> int:
    """Bytes of the tensors a checkpoint of ``module`` would hold: parameters and persistent
    buffers (quantized weights usually live in buffers), each shared tensor once. Derived
    caches such as the per-layer rotary cos/sin tables of transformers 4.40 (non-persistent
    buffers, about 0.5 GB on Mistral-7B) are not weights."""
    tensors = {id(t): t for t in module.state_dict(keep_vars=True).values()}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def module_bytes(model: Any) -> Dict[str, int]:
    """Bytes of all weights, and of the decoder's linear layers alone."""
    import torch

    linear = 0
    decoder = getattr(getattr(model, "model", model), "layers", None)
    for module in (decoder.modules() if decoder is not None else []):
        if isinstance(module, torch.nn.Linear) or getattr(module, "is_quantized_linear", False):
            linear += _stored_bytes(module)
    return {"weight_bytes": int(_stored_bytes(model)), "linear_weight_bytes": int(linear)}


def _random_model(name: str, overrides: Dict[str, Any], precision: Precision, torch_device: str) -> LoadedModel:
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(**overrides)
    config._attn_implementation = "sdpa"
    dtype = _torch_dtype(precision)
    torch.manual_seed(SEED)
    with _default_dtype(dtype), torch.device(torch_device):
        model = MistralForCausalLM(config)
    model.eval()
    sizes = module_bytes(model)
    return LoadedModel(
        model_id=name, precision=precision, model=model, tokenizer=MistralV1Tokenizer(),
        fingerprint=config_fingerprint(config, precision.name, f"random-seed{SEED}"),
        attn_implementation="sdpa", **sizes,
    )


def check_checkpoint(path: str) -> Dict[str, Any]:
    """Refuse folders that are not a Mistral-like checkpoint or that need remote code."""
    config_path = Path(path) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path} cannot be read as JSON: {exc}") from None
    if "auto_map" in config:
        raise ModelError(
            f"{path} needs remote code (config.json has 'auto_map'); pytest-npuperf never enables "
            "trust_remote_code: use a checkpoint of the standard Mistral architecture"
        )
    model_type = config.get("model_type")
    if model_type not in MISTRAL_LIKE:
        raise ModelError(
            f"{path} is a {model_type!r} checkpoint; this suite measures Mistral-architecture models "
            f"(model_type one of {', '.join(MISTRAL_LIKE)})"
        )
    return config


def _checkpoint_model(path: str, precision: Precision, torch_device: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM


    check_checkpoint(path)
    dtype_kw = checkpoint_dtype_kwarg(_torch_dtype(precision))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, trust_remote_code=False, attn_implementation="sdpa",
            device_map=torch_device, **dtype_kw,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the checkpoint at {path}: {exc}") from None
    model.eval()
    sizes = module_bytes(model)
    return LoadedModel(
        model_id=Path(path).name, precision=precision, model=model,
        tokenizer=HFChatTokenizer(path),
        fingerprint=config_fingerprint(model.config, precision.name, "checkpoint"),
        attn_implementation="sdpa", real_weights=True, **sizes,
    )


def load_model(model: str, precision: Precision, torch_device: str,
               prompts: Optional[Sequence[Prompt]] = None) -> LoadedModel:
    """Build or load ``model`` ('tiny', 'mistral-7b' or a folder) in ``precision`` on the device.

    An int8 precision loads the 16-bit model, records its logits on ``prompts`` (the suite's own by
    default; the run's, with those hooks gave),
    quantizes the decoder's linear layers in place (the 16-bit weights are freed), proves the
    weights are int8 and measures the fidelity against the recorded logits.
    A precision this stack cannot run on the device raises ``compat.Unsupported`` first.
    """
    backend = torch_device.split(":")[0]
    require_dtype(backend, precision.dtype)
    if precision.quant is not None:
        require_int8(backend, precision.quant)
    if model == "tiny":
        loaded = _random_model("tiny", TINY_CONFIG, precision, torch_device)
    elif model == "mistral-7b":
        loaded = _random_model("mistral-7b", MISTRAL_7B_CONFIG, precision, torch_device)
    else:
        loaded = _checkpoint_model(model, precision, torch_device)
    if precision.quant is not None:
        _quantize(loaded, precision, torch_device, list(BUILT_IN.prompts() if prompts is None else prompts))
    return loaded


def _prompt_logits(loaded: LoadedModel, torch_device: str, prompts: Sequence[Prompt]) -> Dict[str, Any]:
    """Logits of one forward pass over each prompt, kept on the host."""
    import torch


    out = {}
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([loaded.tokenizer.chat_ids(prompt.text)], device=torch_device)
            out[prompt.prompt_id] = loaded.model(input_ids=ids).logits[0].float().cpu()
    return out


GREEDY_TOKENS = 32


def greedy_outputs(loaded: LoadedModel, torch_device: str, prompts: Sequence[Prompt],
                   max_new_tokens: int = GREEDY_TOKENS) -> Dict[str, List[int]]:
    """Greedy continuations of the prompts, EOS allowed (so the length can change)."""
    import torch


    eos = loaded.tokenizer.eos_id
    out = {}
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([loaded.tokenizer.chat_ids(prompt.text)], device=torch_device)
            generated = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                              max_new_tokens=max_new_tokens, pad_token_id=eos, eos_token_id=eos)
            tokens = generated[0, ids.shape[1]:].tolist()
            out[prompt.prompt_id] = tokens[: tokens.index(eos)] if eos in tokens else tokens
    return out


def greedy_fidelity(reference: List[int], current: List[int]) -> Dict[str, float]:
    """Position-wise agreement of two greedy outputs, and the ratio of their lengths."""
    agree = sum(1 for a, b in zip(reference, current) if a == b)
    return {
        "fidelity_greedy_agreement": agree / max(len(reference), 1),
        "fidelity_length_ratio": len(current) / max(len(reference), 1),
    }


def _quantize(loaded: LoadedModel, precision: Precision, torch_device: str, prompts: Sequence[Prompt]) -> None:
    backend = torch_device.split(":")[0]
    reference = _prompt_logits(loaded, torch_device, prompts)
    # Generated text only means something with real weights: greedy agreement for checkpoints.
    greedy_reference = greedy_outputs(loaded, torch_device, prompts) if loaded.real_weights else {}
    loaded.dense_linear_weight_bytes = loaded.linear_weight_bytes
    before = quant.allocated_bytes(backend)
    quant.quantize_model(loaded.model, precision.quant, backend)
    after = quant.allocated_bytes(backend)
    sizes = module_bytes(loaded.model)
    loaded.weight_bytes, loaded.linear_weight_bytes = sizes["weight_bytes"], sizes["linear_weight_bytes"]
    quant.check_quantized(loaded.model, loaded.dense_linear_weight_bytes, loaded.linear_weight_bytes, precision.name)
    loaded.quant_released_bytes = quant.check_memory_released(before, after, loaded.dense_linear_weight_bytes,
                                                        precision.name)
    loaded.quant_kernel = quant.KERNELS[(backend, precision.quant)][0]
    current = _prompt_logits(loaded, torch_device, prompts)
    loaded.fidelity = {pid: quant.fidelity(reference[pid], current[pid]) for pid in reference}
    if greedy_reference:
        greedy_now = greedy_outputs(loaded, torch_device, prompts)
        for pid, tokens in greedy_reference.items():
            loaded.fidelity[pid].update(greedy_fidelity(tokens, greedy_now[pid]))


def model_config(model: str) -> Any:
    """The config of a model, without building it (operator benchmarks need only shapes)."""
    from transformers import AutoConfig, MistralConfig

    if model == "tiny":
        return MistralConfig(**TINY_CONFIG)
    if model == "mistral-7b":
        return MistralConfig(**MISTRAL_7B_CONFIG)
    check_checkpoint(model)
    return AutoConfig.from_pretrained(model, local_files_only=True, trust_remote_code=False)


def default_model(device_kind: str, requested: str) -> str:
    """'auto' means the tiny model on a CPU and the real Mistral-7B shapes on an accelerator."""
    if requested != "auto":
        return requested
    return "tiny" if device_kind == "cpu" else "mistral-7b"


def free_model(loaded: Optional[LoadedModel]) -> None:
    """Drop the module's tensors so that the next model can take the memory."""
    if loaded is None:
        return

    loaded.model = None
    gc.collect()
