"""Model-step and operator benchmarks at the shapes of the loaded model's config.

A 'kernel' here is something timed as one call: a prefill forward, one decode step with its KV
cache, or one operator (projections, MLP, lm_head, int8 matmul, attention, RMSNorm, rotary,
SiLU-and-multiply). Each comes with its FLOP and byte counts, so a result reports achieved
TFLOP/s and GB/s and its fraction of the calibrated device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

from ..model.loader import LoadedModel, kv_bytes_per_token
from ..model.quant import int8_linear
from ..stack.compat import apply_rotary, cache_kwarg, crop_cache, dynamic_cache, output_cache, require_dtype, sdpa
from .graph.plan import GraphPlan

STEP_KINDS = ("prefill", "decode")
OPS = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head",
    "int8_w8a16", "int8_w8a8", "attn_prefill", "attn_decode", "rms_norm", "rotary", "silu_mul",
)


class KernelError(ValueError):
    pass


@dataclass
class Kernel:
    """A prepared call and what one call computes and moves."""

    fn: Callable[[], Any]
    flops: float
    bytes: float
    reset: Callable[[], None] = lambda: None  # undo side effects between calls (decode cache)


def _dims(config: Any) -> Dict[str, int]:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return dict(hidden=config.hidden_size, inter=config.intermediate_size, layers=config.num_hidden_layers,
                heads=heads, kv=config.num_key_value_heads, head_dim=head_dim, vocab=config.vocab_size)


def _token_ids(config: Any, batch: int, length: int, device: str) -> Any:
    import torch

    gen = torch.Generator().manual_seed(1234)
    # Ordinary vocabulary ids: skip the first 3 (unk, bos, eos).
    return torch.randint(3, config.vocab_size, (batch, length), generator=gen).to(device)


def step_kernel(loaded: LoadedModel, kind: str, batch: int, length: int, torch_device: str) -> Kernel:
    """A prefill forward over ``length`` tokens, or one decode step at context ``length``."""
    import torch

    if kind not in STEP_KINDS:
        raise KernelError(f"unknown step {kind!r}; accepted: {', '.join(STEP_KINDS)}")

    model, config = loaded.model, loaded.model.config
    d = _dims(config)
    kv_item = _itemsize(loaded)
    params = _matmul_params(d)
    # Weights read once per forward: the decoder's linear layers as stored (int8 or 16-bit) and
    # the 16-bit lm_head; the embedding reads one row per token and is left out.
    linear_bytes = loaded.linear_weight_bytes + d["vocab"] * d["hidden"] * kv_item
    if kind == "prefill":
        ids = _token_ids(config, batch, length, torch_device)

        def prefill() -> Any:
            with torch.inference_mode():
                return model(input_ids=ids, use_cache=True)

        attn = 4 * d["layers"] * batch * length * length * d["heads"] * d["head_dim"] / 2
        kv_written = kv_bytes_per_token(config, kv_item) * batch * length
        return Kernel(prefill, 2 * params * batch * length + attn, linear_bytes + kv_written)


    ids = _token_ids(config, batch, length + 1, torch_device)
    arg = cache_kwarg(model)
    with torch.inference_mode():
        cache = output_cache(model(input_ids=ids[:, :length], use_cache=True, **{arg: dynamic_cache()}))
    step_ids = ids[:, length:]
    position = torch.full((batch, 1), length, dtype=torch.long, device=torch_device)
    cache_arg = {arg: cache}

    def decode() -> Any:
        with torch.inference_mode():
            return model(input_ids=step_ids, position_ids=position, use_cache=True, **cache_arg)

    def reset() -> None:
        crop_cache(cache, length)  # back to the context, so every call decodes the same step

    return Kernel(decode, *decode_cost(loaded, batch, length), reset)


def decode_cost(loaded: LoadedModel, batch: int, attended: int) -> Tuple[float, float]:
    """FLOPs and bytes of one decode step of ``batch`` rows attending over ``attended`` positions:
    the weights (decoder linears as stored, the 16-bit lm_head) and the KV cache, read once."""

    config = loaded.model.config
    d = _dims(config)
    item = _itemsize(loaded)
    weights = loaded.linear_weight_bytes + d["vocab"] * d["hidden"] * item
    kv_read = kv_bytes_per_token(config, item) * batch * attended
    attn = 4 * d["layers"] * batch * attended * d["heads"] * d["head_dim"]
    return 2 * _matmul_params(d) * batch + attn, weights + kv_read


def graph_decode_kernel(loaded: LoadedModel, plan: GraphPlan, batch: int, length: int, torch_device: str) -> Tuple[Kernel, Any, Any]:
    """Graph mode's compiled decode step at context ``length``: (kernel, its shape, the same step
    in eager mode). The static cache's attention reads every position of the cache."""
    ids = _token_ids(loaded.model.config, batch, length + 1, torch_device)
    plan.use(batch, length + 1)
    call, rewind, eager, step = plan.runner.decode_kernel(ids)
    return Kernel(call, *decode_cost(loaded, step.batch, step.cache_len), rewind), step, eager


def _itemsize(loaded: LoadedModel) -> int:
    return next(loaded.model.parameters()).element_size()


def _matmul_params(d: Dict[str, int]) -> int:
    """Weights that take part in a matmul per token: decoder linears and lm_head."""
    attn = d["hidden"] * d["head_dim"] * (2 * d["heads"] + 2 * d["kv"])
    mlp = 3 * d["hidden"] * d["inter"]
    return d["layers"] * (attn + mlp) + d["hidden"] * d["vocab"]


def op_kernel(config: Any, name: str, tokens: int, dtype_name: str, backend: str, torch_device: str) -> Kernel:
    """One operator at the config's shapes with ``tokens`` rows (batch x sequence, flattened)."""
    import torch

    if name not in OPS:
        raise KernelError(f"unknown operator {name!r}; accepted: {', '.join(OPS)}")

    d = _dims(config)
    require_dtype(backend, dtype_name)
    dtype = getattr(torch, dtype_name)
    item = torch.tensor([], dtype=dtype).element_size()
    gen = torch.Generator().manual_seed(99)

    def rand(*shape: int) -> Any:
        return torch.randn(*shape, generator=gen).to(device=torch_device, dtype=dtype)

    linears: Dict[str, Tuple[int, int]] = {
        "q_proj": (d["hidden"], d["heads"] * d["head_dim"]), "k_proj": (d["hidden"], d["kv"] * d["head_dim"]),
        "v_proj": (d["hidden"], d["kv"] * d["head_dim"]), "o_proj": (d["heads"] * d["head_dim"], d["hidden"]),
        "gate_proj": (d["hidden"], d["inter"]), "up_proj": (d["hidden"], d["inter"]),
        "down_proj": (d["inter"], d["hidden"]), "lm_head": (d["hidden"], d["vocab"]),
        "int8_w8a16": (d["hidden"], d["inter"]), "int8_w8a8": (d["hidden"], d["inter"]),
    }
    if name in linears:
        k, n = linears[name]
        x = rand(tokens, k)
        with torch.device(torch_device):
            layer = torch.nn.Linear(k, n, bias=False, dtype=dtype)
        if name.startswith("int8_"):
            layer = int8_linear(layer, name.split("_")[1], backend)
            w_bytes = k * n + 4 * n
        else:
            w_bytes = k * n * item

        def linear() -> Any:
            with torch.inference_mode():
                return layer(x)

        return Kernel(linear, 2 * tokens * k * n, w_bytes + tokens * (k + n) * item)
    if name in ("attn_prefill", "attn_decode"):
        q_len, kv_len = (tokens, tokens) if name == "attn_prefill" else (1, tokens)
        q = rand(1, d["heads"], q_len, d["head_dim"])
        k = rand(1, d["kv"], kv_len, d["head_dim"])
        v = rand(1, d["kv"], kv_len, d["head_dim"])
        causal = name == "attn_prefill"

        def attention() -> Any:
            with torch.inference_mode():
                return sdpa(q, k, v, causal)

        flops = 4 * d["heads"] * q_len * kv_len * d["head_dim"] / (2 if causal else 1)
        moved = (2 * d["heads"] * q_len + 2 * d["kv"] * kv_len) * d["head_dim"] * item
        return Kernel(attention, flops, moved)
    if name == "rms_norm":
        from transformers.models.mistral.modeling_mistral import MistralRMSNorm

        norm = MistralRMSNorm(d["hidden"], eps=getattr(config, "rms_norm_eps", 1e-5)).to(torch_device, dtype)
        x = rand(tokens, d["hidden"])

        def rms() -> Any:
            with torch.inference_mode():
                return norm(x)

        return Kernel(rms, 4 * tokens * d["hidden"], 2 * tokens * d["hidden"] * item)
    if name == "rotary":
        q = rand(1, d["heads"], tokens, d["head_dim"])
        k = rand(1, d["kv"], tokens, d["head_dim"])
        cos, sin = rand(1, tokens, d["head_dim"]), rand(1, tokens, d["head_dim"])

        def rotary() -> Any:
            with torch.inference_mode():
                return apply_rotary(q, k, cos, sin)

        elems = (d["heads"] + d["kv"]) * tokens * d["head_dim"]
        return Kernel(rotary, 3 * elems, 2 * elems * item + 2 * tokens * d["head_dim"] * item)
    gate, up = rand(tokens, d["inter"]), rand(tokens, d["inter"])

    def silu_mul() -> Any:
        with torch.inference_mode():
            return torch.nn.functional.silu(gate) * up

    return Kernel(silu_mul, 5 * tokens * d["inter"], 3 * tokens * d["inter"] * item)
