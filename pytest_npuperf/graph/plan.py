"""One test's use of graph mode: the compiled shapes it runs, their agreement with eager, the
watch on recompilations while it is timed, and what it records.

PerfSession builds one per graph-mode test; the GraphRunner (the compiled steps) outlives it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import compat
from .runner import CompiledStep, GraphError, GraphRunner, batch_bucket, cache_len_for, graph_summary

MODES = ("eager", "graph")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown execution mode {mode!r}; accepted: {', '.join(MODES)}")


class GraphPlan:
    def __init__(self, runner: GraphRunner, loaded: Any) -> None:
        self.runner, self.loaded = runner, loaded
        self._shapes: List[Tuple[int, int]] = []
        self._agreement: Optional[Dict[str, Any]] = None
        self._graphs_before_timing: Optional[int] = None
        self._graphs_after_use: Optional[int] = None
        self._warm_recompiles = 0  # graphs compiled for this test after its shapes were ready

    # -- shapes -------------------------------------------------------------------------------
    def use(self, rows: int, length: int) -> CompiledStep:
        """The compiled step for ``rows`` rows and a ``length``-token cache (compiled if new)."""
        key = (batch_bucket(rows), cache_len_for(length))
        if key not in self._shapes:
            self._shapes.append(key)
        step = self.runner.step(*key)
        self._graphs_after_use = compat.compiled_graph_count()
        return step

    def static_cache(self, batch: Any, new_tokens: int) -> Tuple[int, int]:
        """(rows, length) of the static cache a generation of ``batch`` runs on."""
        rows, width = batch.input_ids.shape
        step = self.use(rows, width + new_tokens)
        return step.batch, step.cache_len

    def steps(self) -> List[CompiledStep]:
        return [self.runner.step(*key) for key in self._shapes]

    # -- identity -----------------------------------------------------------------------------
    def generation(self, cache_len: int) -> str:
        return (f"greedy, num_beams=1, fixed length (EOS suppressed), eager prefill, decode step compiled, "
                f"cache=static({cache_len})")

    def identity(self, shapes: Sequence[Tuple[int, int]]) -> str:
        """The workload's ``graph`` field: backend settings and the compiled shapes."""
        listed = ", ".join(f"{rows}x{length}" for rows, length in shapes)
        return f"{self.runner.backend.description}; decode shapes (rows x cache) {listed}"

    def quant_kernel(self) -> str:
        """The int8 kernel that runs inside the graph ('' for 16-bit precisions)."""
        from ..precision import get_precision
        from ..quant import kernel_name

        scheme = get_precision(self.loaded.precision).quant
        return kernel_name(self.runner.device.kind, scheme, graph=True) if scheme else ""

    # -- trust --------------------------------------------------------------------------------
    def check_agreement(self, batch: Any, new_tokens: int, cache_len: Optional[int] = None) -> Dict[str, Any]:
        """Eager vs graph on this batch (logits of the first decode step, greedy tokens)."""
        from ..measure import generate_fixed

        eager = generate_fixed(self.loaded, batch, new_tokens)
        self._agreement = self.runner.agreement(batch, new_tokens, eager, cache_len)  # GraphError when unlike
        return self._agreement

    def set_agreement(self, agreement: Dict[str, Any]) -> None:
        """An agreement measured by the caller (a decode step's logits, eager vs compiled)."""
        self._agreement = agreement

    def start_timing(self) -> None:
        """Every shape is compiled: from here on, a new graph is a recompilation while timed.
        Graphs compiled during warm-up beyond the shapes' own (a guard that failed on the first
        real call) count in this test's graph_compiles."""
        self._graphs_before_timing = compat.compiled_graph_count()
        if self._graphs_after_use is not None:
            self._warm_recompiles = self._graphs_before_timing - self._graphs_after_use

    def stamp(self, sample: Any) -> None:
        """Check for recompilations, then put the test's compile figures on the sample."""
        if self._graphs_before_timing is not None:
            new = compat.compiled_graph_count() - self._graphs_before_timing
            if new:
                raise GraphError(
                    f"{new} graph(s) compiled while timed, after warm-up: a guard failed and the step recompiled, so "
                    "the timing includes compilation (a shape, dtype or Python value changed between calls)"
                )
        steps = self.steps()
        sample.compile_s = sum(s.compile_s for s in steps)
        sample.graph_compiles = sum(s.graphs for s in steps) + self._warm_recompiles

    def summary(self) -> Dict[str, Any]:
        found = graph_summary(self.runner, self.steps(), self._agreement)
        found["graphs"] += self._warm_recompiles
        found["warm_up_recompiles"] = self._warm_recompiles
        return found
