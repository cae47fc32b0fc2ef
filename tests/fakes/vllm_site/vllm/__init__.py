"""A stand-in for vLLM's offline engine API, as pytest-npuperf calls it.

It keeps the calling contract of the real package: ``EngineArgs`` is a dataclass (an unknown
keyword is a TypeError), ``LLMEngine.from_engine_args`` builds from a model folder whose
config.json names its architecture, ``add_request(request_id, prompt, params)`` takes a
``{"prompt_token_ids": [...]}`` prompt and refuses one longer than ``max_model_len``, a
duplicate request id, or detokenization without a tokenizer; ``step()`` runs one scheduler
iteration and returns a ``RequestOutput`` (cumulative token ids) for every request that produced
a token. Scheduling is first come, first served, at most ``max_num_seqs`` running, one token per
running request per step. Each step sleeps ``FAKE_STEP_S``; no model is run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

__version__ = "0.0.0+fake"
FAKE_STEP_S = 0.002
ENGINES: List["LLMEngine"] = []  # every engine built, for the tests to inspect


@dataclass
class EngineArgs:
    model: str = "facebook/opt-125m"
    dtype: str = "auto"
    load_format: str = "auto"
    skip_tokenizer_init: bool = False
    seed: Optional[int] = 0
    max_model_len: Optional[int] = None
    gpu_memory_utilization: float = 0.9
    kv_cache_memory_bytes: Optional[int] = None  # when set, vLLM sizes its KV cache by it, not by the fraction
    enable_prefix_caching: Optional[bool] = None
    max_num_seqs: Optional[int] = None
    enforce_eager: bool = False


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    max_tokens: Optional[int] = 16
    ignore_eos: bool = False
    detokenize: bool = True


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: List[int]


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    finished: bool


@dataclass
class _Request:
    request_id: str
    prompt: List[int]
    params: SamplingParams
    tokens: List[int] = field(default_factory=list)


class LLMEngine:
    def __init__(self, args: EngineArgs, config: Dict[str, Any]) -> None:
        self.args = args
        self.config = config
        self.max_model_len = args.max_model_len or int(config.get("max_position_embeddings", 2048))
        self.max_num_seqs = args.max_num_seqs or 256
        self.waiting: List[_Request] = []
        self.running: List[_Request] = []
        self.seen: set = set()
        self.shut_down = False

    @classmethod
    def from_engine_args(cls, engine_args: EngineArgs) -> "LLMEngine":
        config_path = Path(engine_args.model) / "config.json"
        if not config_path.is_file():
            raise OSError(f"{engine_args.model} is not a local folder with a config.json (and no hub is reachable)")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not config.get("architectures"):
            raise ValueError("No model architectures are specified")
        if engine_args.dtype not in ("auto", "float16", "bfloat16", "float32", "half"):
            raise ValueError(f"Unknown dtype: {engine_args.dtype}")
        if engine_args.load_format == "auto" and not any(Path(engine_args.model).glob("*.safetensors")):
            raise RuntimeError(f"Cannot find any model weights with {engine_args.model!r}")
        engine = cls(engine_args, config)
        ENGINES.append(engine)
        return engine

    def add_request(self, request_id: str, prompt: Any, params: SamplingParams, arrival_time: Optional[float] = None) -> None:
        if self.shut_down:
            raise RuntimeError("the engine core has shut down")
        if not isinstance(prompt, dict) or "prompt_token_ids" not in prompt:
            if self.args.skip_tokenizer_init:
                raise ValueError("a text prompt needs a tokenizer, but skip_tokenizer_init is set")
            raise ValueError("unsupported prompt type")
        if params.detokenize and self.args.skip_tokenizer_init:
            raise ValueError("detokenize=True needs a tokenizer, but skip_tokenizer_init is set")
        if request_id in self.seen:
            raise ValueError(f"request id {request_id} already running")
        ids = list(prompt["prompt_token_ids"])
        if len(ids) > self.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of "
                             f"{self.max_model_len}.")
        self.seen.add(request_id)
        self.waiting.append(_Request(request_id, ids, params))

    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running)

    def get_num_unfinished_requests(self) -> int:
        return len(self.waiting) + len(self.running)

    def step(self) -> List[RequestOutput]:
        while self.waiting and len(self.running) < self.max_num_seqs:
            self.running.append(self.waiting.pop(0))
        time.sleep(FAKE_STEP_S)
        outputs = []
        for request in list(self.running):
            request.tokens.append(len(request.tokens) % 7)
            limit = min(request.params.max_tokens or 16, self.max_model_len - len(request.prompt))
            eos = not request.params.ignore_eos and len(request.tokens) == 3  # stops early unless told not to
            finished = len(request.tokens) >= limit or eos
            outputs.append(RequestOutput(request.request_id, request.prompt,
                                         [CompletionOutput(0, "", list(request.tokens))], finished))
            if finished:
                self.running.remove(request)
        return outputs

    def shutdown(self) -> None:
        self.shut_down = True
