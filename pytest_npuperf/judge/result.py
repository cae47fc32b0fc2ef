"""The data model: Workload, Sample, Result. Plain dataclasses that round-trip through JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import codec

# Version of what a Workload records. 1: names and lengths only; 2: also the exact input token
# ids, tokenizer, generation settings, int8 kernel and serving schedule. Workloads of different
# versions never compare: an old baseline must be recorded again.
IDENTITY_VERSION = 2


def token_ids_hash(rows: Sequence[Sequence[int]]) -> str:
    """A short hash of the exact input token ids of every row, in order (padding excluded)."""
    text = json.dumps([[int(t) for t in row] for row in rows], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Workload:
    """Everything that must be equal for two results to be comparable: what was run, not its name."""

    model_id: str
    model_fingerprint: str
    precision: str
    batch_size: int
    prompt_ids: Tuple[str, ...]
    prompt_tokens: Tuple[int, ...]
    max_new_tokens: int
    # The kind of work (generation, a step, an operator, a serving scenario), stored as 'mode'.
    kind: str = field(default="eager-greedy-fixed-length", metadata={"key": "mode"})  # GENERATION_MODE
    input_ids_hash: str = ""  # token_ids_hash of the rows fed to the model ('' for synthetic inputs)
    tokenizer: str = ""
    generation: str = ""  # settings that change the work: decoding, cache kind, attention implementation
    quant_kernel: str = ""  # the int8 kernel that ran ('' for 16-bit precisions)
    serving: str = ""  # arrival schedule, SLOs and engine settings of a serving test
    graph: str = ""  # graph mode: backend, its settings and the static cache ('' in eager mode)
    # A hash of the prompt texts that hooks gave ('' where every prompt is the suite's own): a
    # changed text is another workload, even where a tokenizer gives the same ids.
    prompt_texts: str = ""
    # Absent from workloads written before version 2.
    identity_version: int = field(default=IDENTITY_VERSION, metadata={"absent": 1})

    def differences(self, other: "Workload") -> List[str]:
        """Human lines, one per field that differs: 'max_new_tokens: 80 (baseline) vs 120 (now)'."""
        if other.identity_version != self.identity_version:
            older = other.identity_version < self.identity_version
            return [
                f"the baseline's workload was recorded by {'an older' if older else 'a newer'} pytest-npuperf "
                f"(workload identity version {other.identity_version}, this one records version "
                f"{self.identity_version}: exact input token ids, tokenizer, generation settings, int8 kernel, "
                "serving schedule), so it cannot be shown to be the same work; record it again with "
                "--npuperf-save-baseline"
            ]
        lines = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                lines.append(f"{codec.key_of(f)}: {_short(theirs)} (baseline) vs {_short(mine)} (now)")
        return lines

    def to_dict(self) -> Dict[str, Any]:
        return codec.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Workload":
        return codec.from_dict(cls, data)


# The workload kinds of generation tests (eager transformers generate, and graph mode).
GENERATION_MODE = "eager-greedy-fixed-length"
GRAPH_GENERATION_MODE = "graph-greedy-fixed-length"


def _short(value: Any) -> str:
    if value == "":
        return "none"
    text = str(list(value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Sample:
    """One measured run: a whole batched generation, or one model step / operator call.

    Per-request lists are in batch order. In a static batch every request starts with the
    batch and ends with it, so each request waited the whole e2e time: that, not e2e divided
    by the batch size, is its latency.
    """

    # generation tests
    e2e_s: Optional[float] = None
    ttft_s: Optional[float] = None
    tpot_s: Optional[float] = None
    tokens_per_s: Optional[float] = None
    output_tokens: List[int] = field(default_factory=list)
    request_e2e_s: List[float] = field(default_factory=list)
    request_ttft_s: List[float] = field(default_factory=list)
    request_tpot_s: List[float] = field(default_factory=list)
    token_times_s: List[float] = field(default_factory=list)  # host-ready time of each step
    # model-step and operator tests: one timed call, and what it achieved
    time_s: Optional[float] = None
    achieved_tflops: Optional[float] = None
    achieved_gb_s: Optional[float] = None
    peak_allocated_bytes: Optional[int] = None
    peak_reserved_bytes: Optional[int] = None
    device_used_bytes: Optional[int] = None
    peak_rss_bytes: Optional[int] = None
    output_checksum: str = ""
    # serving: one run of N arriving requests
    serving_ttft_p50_s: Optional[float] = None
    serving_tpot_p50_s: Optional[float] = None
    serving_tokens_per_s: Optional[float] = None
    goodput_rps: Optional[float] = None
    # graph mode: the compile time and graph count of the shapes the test ran (one figure per test)
    compile_s: Optional[float] = None
    graph_compiles: Optional[int] = None
    # int8 precisions: one forward pass against the model's own 16-bit weights (deterministic)
    fidelity_kl: Optional[float] = None
    fidelity_top1: Optional[float] = None
    fidelity_cosine: Optional[float] = None
    fidelity_greedy_agreement: Optional[float] = None  # real weights only
    fidelity_length_ratio: Optional[float] = None
    # Which fresh process took this sample (0, 1, ...): the samples of one process share its shift
    # (clocks, placement, neighbours), so the process, not the sample, is the unit of noise.
    process: int = 0

    @property
    def itl_s(self) -> List[float]:
        t = self.token_times_s
        return [b - a for a, b in zip(t, t[1:])]

    def metric(self, name: str) -> Optional[float]:
        value = getattr(self, name, None)
        return None if value is None else float(value)

    def to_dict(self) -> Dict[str, Any]:
        return codec.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Sample":
        return codec.from_dict(cls, data)


@dataclass
class Result:
    """All samples of one test, with what ran and where."""

    test_id: str
    profile: str
    workload: Workload
    samples: List[Sample]
    stack: Dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def values(self, metric: str) -> List[float]:
        out = [s.metric(metric) for s in self.samples]
        return [v for v in out if v is not None]

    def values_by_process(self, metric: str) -> List[List[float]]:
        return values_by_process(self.samples, metric)

    def processes(self) -> int:
        return len({s.process for s in self.samples})

    def to_dict(self) -> Dict[str, Any]:
        return codec.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        return codec.from_dict(cls, data)


def values_by_process(samples: Sequence[Sample], metric: str) -> List[List[float]]:
    """The values of ``metric``, one list per process tag, in tag order (processes without a value
    left out)."""
    groups = values_by_tag(samples, metric)
    return [groups[k] for k in sorted(groups)]


def values_by_tag(samples: Sequence[Sample], metric: str) -> Dict[int, List[float]]:
    """The values of ``metric`` by process tag (0: the test's own process, then its fresh ones)."""
    groups: Dict[int, List[float]] = {}
    for sample in samples:
        value = sample.metric(metric)
        if value is not None:
            groups.setdefault(sample.process, []).append(value)
    return groups


def tag_process(samples: Sequence[Sample], process: int) -> List[Sample]:
    """Copies of ``samples`` taken by process ``process``."""
    return [replace(s, process=process) for s in samples]
