"""Version differences of torch and transformers, in one place.

Ascend runners carry the torch their torch_npu pins (2.1 to 2.8) and whatever transformers the
model team chose (4.40 to 5.x). Every branch below is named by the release that introduced the
difference. A feature the installed stack lacks raises :class:`Unsupported`, which skips the
test with the reason; nothing here falls back to a different workload silently.

Nothing in this module imports torch or transformers at import time.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, Optional, Tuple

from .versions import Version, package_version, parse_version


class Unsupported(Exception):
    """This stack lacks what the test needs; the test is skipped with this reason."""


@functools.lru_cache(maxsize=None)
def torch_version() -> Version:
    return parse_version(package_version("torch"))


@functools.lru_cache(maxsize=None)
def transformers_version() -> Version:
    return parse_version(package_version("transformers"))


def _dotted(version: Version) -> str:
    return ".".join(str(n) for n in version)


# -- whether the stack can run at all ----------------------------------------------------------

# transformers declares its torch floor only in its '[torch]' extra, so pip does not enforce it:
# (first transformers release, torch it needs). 5.15 declares 2.5, but 5.18 already calls
# torch.accelerator APIs of torch 2.6, which 5.20 then declares.
TRANSFORMERS_TORCH_FLOOR = (((5, 18), (2, 6)), ((5, 15), (2, 5)), ((5, 1), (2, 4)), ((5, 0), (2, 2)))
# This package's own floors (pyproject.toml): torch 2.1, transformers 4.40.
MIN_TORCH, MIN_TRANSFORMERS = (2, 1), (4, 40)
# torch before 2.3 was built against numpy 1 and fails on numpy 2 ("_ARRAY_API not found").
NUMPY2_TORCH = (2, 3)
EXTRA_FOR_TORCH = (((2, 5), "torch25"), ((2, 1), "torch21"))


def install_extra(torch: Version) -> Optional[str]:
    """The pip extra of this package for a torch line older than 2.6 (see pyproject.toml)."""
    if torch[:2] >= (2, 6):
        return None
    return next((extra for floor, extra in EXTRA_FOR_TORCH if torch[:2] >= floor), None)


def stack_problems(torch: Version, transformers: Version, numpy: Version) -> list:
    """Why this torch / transformers / numpy combination cannot run the suite (empty: it can).

    Reads versions only; importing a mismatched transformers prints a warning and then fails
    with a NameError deep in the model code, which says nothing about the fix.
    """
    problems = []
    if not torch:
        return ["torch is not installed (see README.md, 'Two commands')"]
    extra = install_extra(torch)
    fix = (f"pip install -e '.[{extra}]' (pytest-npuperf[{extra}]) picks a transformers and numpy for it"
           if extra else "pip install -e . picks a transformers for it")
    if torch[:2] < MIN_TORCH:
        problems.append(f"torch {_dotted(torch)} is older than the supported {_dotted(MIN_TORCH)}")
    if not transformers:
        problems.append(f"transformers is not installed: {fix}")
    elif transformers[:2] < MIN_TRANSFORMERS:
        problems.append(f"transformers {_dotted(transformers)} is older than the supported "
                        f"{_dotted(MIN_TRANSFORMERS)}: {fix}")
    else:
        for first, needs in TRANSFORMERS_TORCH_FLOOR:
            if transformers[:2] >= first:
                if torch[:2] < needs:
                    problems.append(f"transformers {_dotted(transformers)} needs torch >= {_dotted(needs)}, "
                                    f"but torch {_dotted(torch)} is installed: {fix}")
                break
    if numpy and numpy[0] >= 2 and torch[:2] < NUMPY2_TORCH:
        problems.append(f"torch {_dotted(torch)} was built against numpy 1, numpy {_dotted(numpy)} is installed: {fix}")
    return problems


def installed_stack_problems() -> list:
    return stack_problems(torch_version(), transformers_version(), parse_version(package_version("numpy")))


# -- torch ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _cpu_kernel_works(what: str) -> bool:
    """Probe a CPU kernel once: whether torch has it is a property of the build, not only of
    the version number (and a probe cannot be fooled by a backport)."""
    import torch

    try:
        if what == "fp16_matmul":  # torch 2.2 added Half to the CPU addmm/mm kernels
            a = torch.ones(4, 4, dtype=torch.float16)
            torch.nn.functional.linear(a, a)
        elif what == "weight_int8pack_mm":  # aten._weight_int8pack_mm arrived in torch 2.3
            x = torch.ones(2, 32, dtype=torch.bfloat16)
            w = torch.ones(8, 32, dtype=torch.int8)
            torch.ops.aten._weight_int8pack_mm(x, w, torch.ones(8, dtype=torch.bfloat16))
        elif what == "int_mm":  # torch._int_mm had only a CUDA kernel before torch 2.4
            torch._int_mm(torch.ones(17, 32, dtype=torch.int8), torch.ones(32, 8, dtype=torch.int8))
        else:
            raise ValueError(f"unknown probe {what!r}")
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


# What each int8 kernel of model/quant.py needs: (backend, scheme) -> (probe on a CPU, torch release).
_INT8_NEEDS: Dict[Tuple[str, str], Tuple[str, str]] = {
    ("cpu", "w8a16"): ("weight_int8pack_mm", "2.3"),
    ("cuda", "w8a16"): ("weight_int8pack_mm", "2.3"),
    ("cpu", "w8a8"): ("int_mm", "2.4"),
}


def require_dtype(backend: str, dtype_name: str) -> None:
    """Raise Unsupported where the device has no matmul for the dtype (fp16 on CPUs, torch < 2.2)."""
    if backend == "cpu" and dtype_name == "float16" and not _cpu_kernel_works("fp16_matmul"):
        raise Unsupported(f"torch {_dotted(torch_version())} has no float16 matmul on the CPU (torch 2.2 added it)")


def require_int8(backend: str, scheme: str) -> None:
    """Raise Unsupported where torch lacks the int8 kernel that model/quant.py uses for the backend."""
    need = _INT8_NEEDS.get((backend, scheme))
    if need is None:
        return
    probe, release = need
    if backend == "cpu":
        ok = _cpu_kernel_works(probe)
    else:  # on CUDA the kernel's presence is the question; probing would need the device
        import torch

        ok = hasattr(torch.ops.aten, "_weight_int8pack_mm")
    if not ok:
        what = "aten._weight_int8pack_mm" if probe == "weight_int8pack_mm" else "a CPU kernel for torch._int_mm"
        raise Unsupported(f"int8 {scheme} on {backend} needs {what}, which torch {_dotted(torch_version())} "
                          f"lacks (torch {release} added it)")


def calibration_dtypes(backend: str) -> Tuple[str, ...]:
    """The matmul dtypes the calibration can time on this device."""
    try:
        require_dtype(backend, "float16")
    except Unsupported:
        return ("bfloat16",)
    return ("bfloat16", "float16")


def sdpa(q: Any, k: Any, v: Any, is_causal: bool) -> Any:
    """Scaled dot-product attention with fewer KV heads than query heads (GQA).

    torch 2.5 added ``enable_gqa``; before it, the KV heads are repeated, as transformers'
    own SDPA path does on those releases (more bytes moved, the same result).
    """
    import torch.nn.functional as F

    if torch_version()[:2] >= (2, 5):
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, enable_gqa=True)
    groups = q.shape[-3] // k.shape[-3]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=-3), v.repeat_interleave(groups, dim=-3)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


# -- transformers -----------------------------------------------------------------------------

def apply_rotary(q: Any, k: Any, cos: Any, sin: Any) -> Any:
    """transformers' Mistral rotary embedding over (batch, heads, seq, dim) with (batch, seq, dim)
    cos/sin. Up to 4.43 the function took (seq, dim) tables and a required ``position_ids`` to
    gather them; later releases take gathered tables (and ignore a ``position_ids`` if given)."""

    from transformers.models.mistral.modeling_mistral import apply_rotary_pos_emb

    param = inspect.signature(apply_rotary_pos_emb).parameters.get("position_ids")
    if param is not None and param.default is inspect.Parameter.empty:
        import torch

        positions = torch.arange(cos.shape[-2], device=cos.device)[None, :]
        return apply_rotary_pos_emb(q, k, cos[0], sin[0], positions)
    return apply_rotary_pos_emb(q, k, cos, sin)


def dynamic_cache() -> Any:
    """An empty DynamicCache. Passing one in keeps the forward from returning the legacy tuple of
    (key, value) pairs, which transformers before 4.47 returned when given none."""
    from transformers import DynamicCache

    return DynamicCache()


def cache_length(cache: Any) -> int:
    """Tokens held by a KV cache (a Cache object, or the legacy tuple of per-layer pairs)."""
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(cache[0][0].shape[-2])


def crop_cache(cache: Any, length: int) -> None:
    """Drop every cached token after the first ``length``, in place.

    ``DynamicCache.crop`` takes a negative count to remove in 4.x and 5.x alike (a positive one
    means different things); 4.40's cache has no crop and keeps per-layer tensor lists.
    """
    extra = cache_length(cache) - length
    if extra <= 0:
        return
    if hasattr(cache, "crop"):
        cache.crop(-extra)
        return
    for tensors in (cache.key_cache, cache.value_cache):
        for i, t in enumerate(tensors):
            tensors[i] = t[..., :length, :]
    if hasattr(cache, "_seen_tokens"):
        cache._seen_tokens = length


def require_continuous_batching() -> None:
    """transformers' continuous batching with a KV cache the suite can size: 5.4 and later."""
    version = transformers_version()
    if version[:2] < (5, 4):
        raise Unsupported(f"continuous batching with a sized KV cache needs transformers >= 5.4 "
                          f"(ContinuousBatchingConfig); {_dotted(version)} is installed")


def continuous_batching_config(num_blocks: int, page_size: int, max_batch_tokens: int) -> Dict[str, Any]:
    """Keyword arguments of ``init_continuous_batching`` that size the paged KV cache.

    transformers 5.4 introduced ``ContinuousBatchingConfig``; 5.18 renamed its ``block_size``
    to ``page_size``. Older releases have no continuous batching the suite can size: Unsupported.
    """
    require_continuous_batching()
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    version = transformers_version()
    size_key = "page_size" if version[:2] >= (5, 18) else "block_size"
    config = ContinuousBatchingConfig(num_blocks=num_blocks, max_batch_tokens=max_batch_tokens,
                                      **{size_key: page_size})
    return {"continuous_batching_config": config}


def cache_kwarg(model: Any) -> str:
    """The forward argument that takes a KV cache: 'cache' in newer transformers 5.x releases,
    'past_key_values' before (5.24 accepts both and warns on the old one)."""

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either name."""
    cache = getattr(output, "past_key_values", None)
    return cache if cache is not None else getattr(output, "cache", None)


def chat_template_ids(ids: Any) -> list:
    """``apply_chat_template(tokenize=True)``'s ids: a list in transformers 4.x, a BatchEncoding in 5.x."""
    if hasattr(ids, "keys") and "input_ids" in ids:
        ids = ids["input_ids"]
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return [int(i) for i in ids]


def checkpoint_dtype_kwarg(dtype: Any) -> Dict[str, Any]:
    """``from_pretrained``'s dtype argument: ``dtype`` from transformers 5.0, ``torch_dtype`` before."""
    return {"dtype": dtype} if transformers_version()[:1] >= (5,) else {"torch_dtype": dtype}


# -- graph mode: a static KV cache and torch.compile -------------------------------------------

def require_graph_mode(model: Any) -> None:
    """Graph mode decodes over transformers' StaticCache, addressed by ``cache_position``.

    transformers 4.40's Mistral takes no ``cache_position`` (its StaticCache served Llama and
    Gemma only), so a static cache cannot be filled position by position: Unsupported there.
    """
    version = transformers_version()
    decoder = getattr(model, "model", model)
    params = inspect.signature(decoder.forward).parameters
    takes_position = "cache_position" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    if version[:2] < (4, 42) or not takes_position:
        raise Unsupported(f"graph mode needs a static KV cache for {type(model).__name__}, which transformers "
                          f"{_dotted(version)} does not offer (its forward takes no cache_position); "
                          "install the extra of a newer torch line, or run --npuperf-mode eager")
    torch = torch_version()
    if version[:1] >= (5,) and torch[:2] < GRAPH_TORCH_FOR_TRANSFORMERS_5:
        raise Unsupported(
            f"graph mode: torch {_dotted(torch)} cannot capture transformers {_dotted(version)}'s {type(model).__name__} "
            "forward as one graph (its dynamo does not trace the wrapper transformers 5 puts around forward, "
            "which reads func.__code__.co_varnames; seen with torch 2.6.0 and transformers 5.20.2, while torch 2.7 "
            "captures it): on this torch use transformers 4.57 (pip install -e '.[torch25]'), or run "
            "--npuperf-mode eager")


# The oldest torch whose dynamo captures transformers 5's Mistral forward in one graph: 2.6.0
# fails with transformers 5.20.2 (the compatibility job's stack); 2.7.1 and 2.8.0 with 5.20.2
# (checked by hand: graph tokens equal to eager ones) and 2.13.0 with 5.24.0 (CI) capture it.
GRAPH_TORCH_FOR_TRANSFORMERS_5 = (2, 7)


def static_cache(model: Any, batch: int, length: int, device: Any, dtype: Any) -> Any:
    """A StaticCache of ``length`` tokens for ``batch`` rows.

    transformers 4.56 made the cache lazy (sized by its first update) and dropped
    ``max_batch_size``/``device``/``dtype``; before, they are required.
    """
    from transformers import StaticCache

    params = inspect.signature(StaticCache.__init__).parameters
    if "max_batch_size" in params:
        return StaticCache(config=model.config, max_batch_size=batch, max_cache_len=length, device=device,
                           dtype=dtype)
    return StaticCache(config=model.config, max_cache_len=length)


def fresh_compile_cache() -> Any:
    """A context in which the compiler starts cold: a new on-disk cache folder and emptied
    in-memory caches, so that compile time measures compilation, not a cache from earlier work.
    torch 2.8 renamed ``fresh_inductor_cache`` to ``fresh_cache``."""
    import torch._inductor.utils as inductor_utils

    fresh = getattr(inductor_utils, "fresh_cache", None) or inductor_utils.fresh_inductor_cache
    return fresh()


def compiled_graph_count() -> int:
    """Graphs dynamo has compiled in this process (each recompilation adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def allow_recompiles(limit: int) -> None:
    """Room for one compiled entry per shape the suite uses (``recompile_limit``, called
    ``cache_size_limit`` before torch 2.7). Shapes are compiled on purpose; an unplanned
    recompilation is counted and fails the test (see flows/graph/runner.py)."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < limit:
            setattr(dynamo_config, name, limit)


def reset_compiled() -> None:
    """Forget every compiled graph (they hold the freed model's weights and CUDA graph pools)."""
    import torch

    torch._dynamo.reset()


def is_compiling() -> bool:
    """True while dynamo traces (torch.compiler.is_compiling from torch 2.3, torch._dynamo's before)."""
    import torch

    check = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if check is None:
        check = torch._dynamo.is_compiling
    return bool(check())


def rewind_static_cache(cache: Any, length: int) -> None:
    """Make the next write of a static cache land at position ``length`` again.

    Since transformers 5.x a StaticLayer writes where its own counter (``cumulative_length``, a
    tensor with a fixed address) points and ignores ``cache_position``; earlier releases write at
    ``cache_position`` and keep no counter, so there is nothing to rewind.
    """
    for layer in getattr(cache, "layers", ()):
        counter = getattr(layer, "cumulative_length", None)
        if counter is not None and hasattr(counter, "fill_"):
            counter.fill_(length)


def cudagraph_skip_count() -> int:
    """Times inductor declined to use CUDA graphs for a compiled graph in this process (it then
    runs the graph's kernels one launch at a time, with only a warning)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["cudagraph_skips"])
