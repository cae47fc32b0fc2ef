"""Graph-mode generation: an eager prefill into transformers' static KV cache, then every decode
step through the model's forward compiled by the device's graph backend.

This is how production inference runs on a device (torchair's aclgraph / GE modes on Ascend,
CUDA graphs elsewhere): the decode step, launched once per token, is one captured graph of
fixed shapes. Shapes are bucketed as servers do: batch rows padded up to 1, 2, 4 or 8, the static
cache sized to a power of two of at least 1024 tokens; each (batch, cache length) is compiled
once per loaded model, in a cold compiler cache, and its compile time and number of compiled
graphs are kept with it. Every test that uses the shape reports those figures, so they do not
depend on which test happened to compile it first.

Output agreement with eager mode is checked on the same weights: the logits of the first decode
step, eager vs compiled, on the same static-cache state (cosine and largest difference), and the
greedy tokens of a whole generation, eager vs graph.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...devices.base import Device, GraphBackend
from ...errors import GraphError, first_line
from ...model.loader import LoadedModel
from ...stack import compat
from ..measure import Batch

BATCH_BUCKETS = (1, 2, 4, 8)
MIN_CACHE_LEN = 1024
# Calls that make a graph ready (compile, warm-up, CUDA graph capture) and steady calls timed
# after them; compile_s is the first group's time less the steady time of as many calls.
READY_CALLS = 3
# The compiled decode step must give the eager step's logits: cosine at least this, and no
# logit further off than this fraction of the largest eager logit (16-bit accumulation order
# differs between a fused kernel and eager's separate ones).
MIN_LOGITS_COSINE = 0.999
MAX_LOGITS_REL_DIFF = 0.05


def cache_len_for(tokens: int) -> int:
    """The static cache length for ``tokens`` positions: a power of two, at least 1024."""
    length = MIN_CACHE_LEN
    while length < tokens:
        length *= 2
    return length


def batch_bucket(rows: int) -> int:
    """The compiled batch size that serves ``rows`` rows (padding rows fill the rest)."""
    for bucket in BATCH_BUCKETS:
        if rows <= bucket:
            return bucket
    return rows


@dataclass
class CompiledStep:
    """One compiled decode step of fixed shape, with its static cache and what compiling cost."""

    batch: int
    cache_len: int
    cache: Any
    mask: Any  # (batch, cache_len) attention mask, an input of the graph
    eager: Callable[..., Any]
    compiled: Callable[..., Any]
    compile_s: float
    graphs: int


def next_tokens(logits: Any, eos_id: int) -> Any:
    """Greedy choice with EOS suppressed, as eager generate does with min_new_tokens."""
    scores = logits.float().clone()
    scores[:, eos_id] = -float("inf")
    return scores.argmax(dim=-1, keepdim=True)


def warm_compiler(backend: GraphBackend, device: Device) -> None:
    """Compile a small function (once per process and backend: the caller keeps count), so that
    the one-time start-up of the compiler (its imports, worker processes, device toolchain) is not
    charged to whichever shape a run happens to compile first: compile_s must not depend on test
    selection."""
    import torch

    def tiny(x: Any, w: Any) -> Any:
        return torch.nn.functional.silu(x @ w) * 2.0 + 1.0

    x = torch.randn(4, 16, device=device.torch_device)
    w = torch.randn(16, 16, device=device.torch_device)
    with torch.no_grad(), compat.fresh_compile_cache():
        compiled = torch.compile(tiny, **backend.compile_kwargs)
        for _ in range(READY_CALLS):
            compiled(x, w)
        device.synchronize()
    compat.reset_compiled()


class GraphRunner:
    """The compiled decode steps of one loaded model on one device."""

    def __init__(self, loaded: LoadedModel, device: Device, backend: GraphBackend, warm: bool = True) -> None:
        compat.require_graph_mode(loaded.model)
        compat.allow_recompiles(64)
        self.loaded, self.device, self.backend = loaded, device, backend
        if warm:
            warm_compiler(backend, device)
        self._steps: Dict[Tuple[int, int], CompiledStep] = {}
        self._cache_arg = compat.cache_kwarg(loaded.model)
        self._mark_step = None
        if backend.name == "inductor-cudagraphs":
            import torch

            self._mark_step = getattr(torch.compiler, "cudagraph_mark_step_begin", None)

    # -- compiling ----------------------------------------------------------------------------
    def step(self, batch: int, cache_len: int) -> CompiledStep:
        """The compiled step of this shape, compiled on first use."""
        key = (batch, cache_len)
        if key not in self._steps:
            self._steps[key] = self._compile(batch, cache_len)
        return self._steps[key]

    def release_except(self, keep: List[Tuple[int, int]]) -> None:
        """Drop every compiled shape when one is held that ``keep`` does not list (compiled graphs
        can only be forgotten all together; the kept ones compile again when next used)."""
        if any(key not in keep for key in self._steps):
            self._steps.clear()
            compat.reset_compiled()
            self.device.empty_cache()

    def check_captured(self, skips_before: int, when: str) -> None:
        """With CUDA graphs asked for, fail when inductor declined them (it says so in a warning only)."""
        if self.backend.name == "inductor-cudagraphs" and compat.cudagraph_skip_count() > skips_before:
            raise GraphError(f"inductor skipped CUDA graphs for the decode step during {when} (see its warning): the "
                             "step ran kernel by kernel, not as the captured graph this mode measures")

    def _compile(self, batch: int, cache_len: int) -> CompiledStep:
        import torch

        model, device = self.loaded.model, self.device
        dtype = model.get_input_embeddings().weight.dtype
        cache = compat.static_cache(model, batch, cache_len, device.torch_device, dtype)
        cache_arg = self._cache_arg

        def forward(ids: Any, mask: Any, positions: Any, cache_position: Any, kv: Any) -> Any:
            # The cache is an argument, not a closure: dynamo writes a graph's in-place cache
            # updates back to an argument's tensors.
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache_position=cache_position,
                        use_cache=True, **{cache_arg: kv})
            return out.logits[:, -1, :]

        compiled_forward = torch.compile(forward, **self.backend.compile_kwargs)

        def decode(ids: Any, mask: Any, positions: Any, cache_position: Any) -> Any:
            return forward(ids, mask, positions, cache_position, cache)

        def compiled(ids: Any, mask: Any, positions: Any, cache_position: Any) -> Any:
            return compiled_forward(ids, mask, positions, cache_position, cache)

        on = device.torch_device
        ids = torch.zeros(batch, 1, dtype=torch.long, device=on)
        mask = torch.ones(batch, cache_len, dtype=torch.long, device=on)
        positions = torch.zeros(batch, 1, dtype=torch.long, device=on)
        slot = torch.zeros(1, dtype=torch.long, device=on)
        with torch.no_grad():
            decode(ids, mask, positions, slot)  # eager: allocates a lazily built cache outside the graph
            device.synchronize()
            before = compat.compiled_graph_count()
            skips = compat.cudagraph_skip_count()
            with compat.fresh_compile_cache():
                start = time.perf_counter()
                try:
                    for _ in range(READY_CALLS):
                        self._call(compiled, ids, mask, positions, slot)
                        device.synchronize()
                except torch._dynamo.exc.Unsupported as exc:  # a graph break under fullgraph=True
                    first = first_line(exc)
                    raise GraphError(
                        f"the decode step (batch {batch}, cache {cache_len}) cannot be captured as one graph by "
                        f"{self.backend.description}: {first}"
                    ) from None
                ready = time.perf_counter() - start
            steady = []
            for _ in range(READY_CALLS):
                start = time.perf_counter()
                self._call(compiled, ids, mask, positions, slot)
                device.synchronize()
                steady.append(time.perf_counter() - start)
            graphs = compat.compiled_graph_count() - before
            self.check_captured(skips, f"the compilation of batch {batch} x cache {cache_len}")
            cache.reset()
        compile_s = max(0.0, ready - READY_CALLS * statistics.median(steady))
        return CompiledStep(batch, cache_len, cache, mask, decode, compiled, compile_s, graphs)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._mark_step is not None:
            self._mark_step()  # outputs of the previous replay are consumed: a new step begins
        return fn(*args)

    # -- running ------------------------------------------------------------------------------
    def prefill(self, step: CompiledStep, input_ids: Any, attention_mask: Any) -> Tuple[Any, Any]:
        """An eager forward of the prompt into the static cache: its last logits and positions."""
        import torch

        width = input_ids.shape[1]
        # Back to position 0: no memset of the whole cache inside a timed region; stale slots are
        # masked (padding) or rewritten before they are read (causal).
        compat.rewind_static_cache(step.cache, 0)
        step.mask.fill_(1)
        step.mask[:, :width].copy_(attention_mask)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = self.loaded.model(input_ids=input_ids, attention_mask=step.mask[:, :width], position_ids=positions,
                                cache_position=torch.arange(width, device=input_ids.device), use_cache=True,
                                **{self._cache_arg: step.cache})
        return out.logits[:, -1, :], positions[:, -1:]

    def generate_fixed(self, loaded: LoadedModel, batch: Batch, max_new_tokens: int, streamer: Any = None,
                       cache_len: Optional[int] = None) -> Any:
        """Greedy generation of exactly ``max_new_tokens`` per row in graph mode; the same
        contract as ``measure.generate_fixed`` (prompt and new ids; the streamer sees the prompt,
        then each step's tokens once they are on the host). ``cache_len``: a fixed static cache
        length (serving: one length for every batch), else the smallest bucket that fits."""
        import torch

        tokens, _ = self._decode(batch, max_new_tokens, cache_len, streamer)
        return torch.cat([batch.input_ids, tokens], dim=1)

    def _decode(self, batch: Any, max_new_tokens: int, cache_len: Optional[int], streamer: Any = None,
                forced: Any = None) -> Tuple[Any, List[Any]]:
        """The graph-mode loop: (new tokens of the batch's rows, per-step logits when ``forced``).

        ``forced`` (rows, max_new_tokens): feed these tokens instead of the loop's own choices
        (teacher forcing), and keep every step's logits, to compare step by step with eager."""
        import torch

        rows, width = batch.input_ids.shape
        step = self.step(batch_bucket(rows), cache_len or cache_len_for(width + max_new_tokens))
        ids, mask = _pad_rows(batch.input_ids, step.batch), _pad_rows(batch.attention_mask, step.batch)
        feed = _pad_rows(forced, step.batch) if forced is not None else None
        eos = self.loaded.tokenizer.eos_id
        kept: List[Any] = []
        with torch.no_grad():
            logits, positions = self.prefill(step, ids, mask)
            if streamer is not None:
                streamer.put(batch.input_ids.cpu())
            out: List[Any] = []
            token: Any = None
            for i in range(max_new_tokens):
                if i:
                    slot = torch.tensor([width + i - 1], dtype=torch.long, device=ids.device)
                    logits = self._call(step.compiled, token, step.mask, positions + i, slot)
                if feed is not None:
                    kept.append(logits[:rows].float().cpu())
                    # a column of feed is a strided view: the graph was compiled for a dense (rows, 1)
                    token = feed[:, i:i + 1].clone(memory_format=torch.contiguous_format)
                else:
                    token = next_tokens(logits, eos)
                out.append(token)
                if streamer is not None:
                    streamer.put(token[:rows].cpu())
        return torch.cat(out, dim=1)[:rows], kept

    def decode_kernel(self, input_ids: Any) -> Tuple[Callable[[], Any], Callable[[], None], Callable[[], Any],
                                                      CompiledStep]:
        """One compiled decode step after an eager prefill of ``input_ids`` (batch, context + 1):
        the step reads the context's cache and writes the next position, the same slot each call.
        Returns (compiled call, rewind before each call, the same step in eager mode, the shape)."""
        import torch

        rows, total = input_ids.shape
        context = total - 1
        step = self.step(batch_bucket(rows), cache_len_for(total))
        if step.batch != rows:
            raise GraphError(f"decode steps run at a compiled batch size ({', '.join(map(str, BATCH_BUCKETS))}), "
                             f"not {rows}")
        with torch.no_grad():
            _, positions = self.prefill(step, input_ids[:, :context], torch.ones_like(input_ids[:, :context]))
        # A copy with the strides of the tokens the step was compiled with: a column of input_ids
        # keeps its row stride (and counts as contiguous, so .contiguous() keeps it too), and dynamo
        # guards strides, so the view recompiled the step in the warm-up, unreported.
        token = input_ids[:, context:].clone(memory_format=torch.contiguous_format)
        slot = torch.tensor([context], dtype=torch.long, device=input_ids.device)

        def call() -> Any:
            with torch.no_grad():
                return self._call(step.compiled, token, step.mask, positions + 1, slot)

        def rewind() -> None:
            compat.rewind_static_cache(step.cache, context)  # every call decodes the same step

        def eager() -> Any:
            with torch.no_grad():
                return step.eager(token, step.mask, positions + 1, slot)

        return call, rewind, eager, step

    # -- trust --------------------------------------------------------------------------------
    def agreement(self, batch: Any, max_new_tokens: int, eager_output: Any, eager_logits: List[Any],
                  cache_len: Optional[int] = None) -> Dict[str, Any]:
        """Graph vs eager on the same weights; raises GraphError when the logits disagree.

        ``eager_output`` and ``eager_logits``: eager generate's ids (prompt and new tokens) and
        each step's logits for the same batch. The graph loop is fed eager's tokens (teacher
        forcing) and every step's logits, of every row, must agree: a wrong position, cache slot,
        mask or padding anywhere in the loop shows. The free-running greedy tokens are compared
        too and reported (with random weights a near-tie can flip a row's continuation)."""
        import torch

        width = batch.input_ids.shape[1]
        eager_new = eager_output[:, width:]
        _, forced = self._decode(batch, max_new_tokens, cache_len, forced=eager_new.to(batch.input_ids.device))
        eager_steps = torch.stack([x.float().cpu() for x in eager_logits])
        graph_steps = torch.stack(forced)
        result = self.logits_agreement(eager_steps.flatten(0, 1), graph_steps.flatten(0, 1),
                                       f"all {max_new_tokens} steps (eager tokens fed), every row")
        graph_output = self.generate_fixed(self.loaded, batch, max_new_tokens, cache_len=cache_len)
        same = (graph_output[:, width:].cpu() == eager_new.cpu()).float().mean()
        result["greedy_token_agreement"] = float(same)
        return result

    def logits_agreement(self, eager: Any, graph: Any, what: str = "a decode step, every row") -> Dict[str, Any]:
        """Logits, eager vs compiled, row by row (rows: (n, vocab)); GraphError beyond tolerance."""
        import torch

        eager, graph = eager.float().cpu(), graph.float().cpu()
        cosine = float(torch.nn.functional.cosine_similarity(eager, graph, dim=-1).min())
        scale = float(eager.abs().max())
        max_diff = float((eager - graph).abs().max())
        if not (cosine >= MIN_LOGITS_COSINE and max_diff <= MAX_LOGITS_REL_DIFF * scale):
            raise GraphError(
                f"graph mode disagrees with eager on the same weights ({what}): logits cosine {cosine:.6f} "
                f"(>= {MIN_LOGITS_COSINE} needed), max |diff| {max_diff:.4g} vs max |logit| {scale:.4g} "
                f"(<= {MAX_LOGITS_REL_DIFF:g}x needed); backend {self.backend.description}"
            )
        return {
            "logits_cosine": cosine,
            "logits_max_abs_diff": max_diff,
            "logits_scale": scale,
            "greedy_token_agreement": None,
            "tolerance": f"{what}: cosine >= {MIN_LOGITS_COSINE}, "
                         f"max |diff| <= {MAX_LOGITS_REL_DIFF} x max |eager logit|",
        }

    def steps(self) -> List[CompiledStep]:
        return list(self._steps.values())


def _pad_rows(tensor: Any, rows: int) -> Any:
    """Fill a batch up to ``rows`` rows with copies of its first row (their outputs are dropped)."""
    import torch

    missing = rows - tensor.shape[0]
    if missing <= 0:
        return tensor
    return torch.cat([tensor, tensor[:1].expand(missing, -1)], dim=0)


def graph_summary(runner: GraphRunner, steps: List[CompiledStep], agreement: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """What a graph test reports: backend, compile time and graphs of the shapes it ran."""
    return {
        "backend": runner.backend.name,
        "description": runner.backend.description,
        "compile_s": sum(s.compile_s for s in steps),
        "graphs": sum(s.graphs for s in steps),
        "shapes": [f"batch {s.batch} x cache {s.cache_len}" for s in steps],
        "cache_len": max(s.cache_len for s in steps),
        "agreement": agreement,
        "versions": dict(runner.backend.versions),
    }
