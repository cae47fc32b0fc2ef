"""One test's use of graph mode: the compiled shapes it runs, their agreement with eager, the
watch on recompilations while it is timed, and what it records.

PerfSession builds one per graph-mode test; the GraphRunner (the compiled steps) outlives it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...errors import GraphError
from ...model.loader import LoadedModel
from ...model.quant import kernel_name
from ...stack import compat
from ..measure import generate_fixed
from .runner import CompiledStep, GraphRunner, batch_bucket, cache_len_for, graph_summary


class GraphPlan:
    def __init__(self, runner: GraphRunner, loaded: LoadedModel) -> None:
        self.runner, self.loaded = runner, loaded
        self._shapes: List[Tuple[int, int]] = []
        self._agreement: Optional[Dict[str, Any]] = None
        self._graphs_before_timing: Optional[int] = None
        self._graphs_after_use: Optional[int] = None
        self._warm_recompiles = 0  # graphs compiled for this test after its shapes were ready
        self._skips_after_use = 0
        self._planned: List[Tuple[int, int]] = []  # shapes this test will use (kept when one is compiled)

    def plan(self, shapes: Sequence[Tuple[int, int]]) -> None:
        """Declare every shape the test will use before the first is compiled (serving: one per
        batch bucket), so that compiling one does not let go of another the test needs."""
        self._planned = list(shapes)

    # -- shapes -------------------------------------------------------------------------------
    @staticmethod
    def shape_for(rows: int, tokens: int) -> Tuple[int, int]:
        """(rows, cache length) of the compiled step that serves ``rows`` rows of ``tokens``."""
        return batch_bucket(rows), cache_len_for(tokens)

    def use(self, rows: int, tokens: int) -> CompiledStep:
        """The compiled step for ``rows`` rows and ``tokens`` positions, compiled if new.

        The runner first lets go of every shape this test does not use (their static caches and
        captured graphs), so what a test measures, memory included, does not depend on which tests
        ran before it; the suite orders graph tests so that neighbours share shapes."""
        key = self.shape_for(rows, tokens)
        if key not in self._shapes:
            self._shapes.append(key)
        self.runner.release_except(self._shapes + self._planned)
        step = self.runner.step(*key)
        self._graphs_after_use = compat.compiled_graph_count()
        self._skips_after_use = compat.cudagraph_skip_count()
        return step

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
        scheme = self.loaded.precision.quant
        return kernel_name(self.runner.device.kind, scheme, graph=True) if scheme else ""

    # -- trust --------------------------------------------------------------------------------
    def check_agreement(self, batch: Any, new_tokens: int, cache_len: Optional[int] = None) -> Dict[str, Any]:
        """Eager vs graph on this batch (logits of the first decode step, greedy tokens)."""
        eager = generate_fixed(self.loaded, batch, new_tokens, output_logits=True, return_dict_in_generate=True)
        self._agreement = self.runner.agreement(batch, new_tokens, eager.sequences, list(eager.logits),
                                                cache_len)  # GraphError when unlike
        return self._agreement

    def set_agreement(self, agreement: Dict[str, Any]) -> None:
        """An agreement measured by the caller (a decode step's logits, eager vs compiled)."""
        self._agreement = agreement

    def start_timing(self) -> None:
        """Every shape is compiled: from here on, a new graph is a recompilation while timed.
        Graphs compiled during warm-up beyond the shapes' own (a guard that failed on the first
        real call) count in this test's graph_compiles."""
        self._graphs_before_timing = compat.compiled_graph_count()
        if self._graphs_after_use is not None and self._shapes:
            extra = self._graphs_before_timing - self._graphs_after_use
            self.runner.step(*self._shapes[0]).graphs += extra  # every later user of the shape reports it
            self._warm_recompiles += extra
            self._graphs_after_use = self._graphs_before_timing
        self.runner.check_captured(self._skips_after_use, "warm-up")

    def stamp(self, sample: Any) -> None:
        """Check for recompilations, then put the test's compile figures on the sample."""
        if self._graphs_before_timing is not None:
            new = compat.compiled_graph_count() - self._graphs_before_timing
            if new:
                raise GraphError(
                    f"{new} graph(s) compiled while timed, after warm-up: a guard failed and the step recompiled, so "
                    "the timing includes compilation (a shape, dtype or Python value changed between calls)"
                )
            self.runner.check_captured(self._skips_after_use, "the timed runs")
        steps = self.steps()
        sample.compile_s = sum(s.compile_s for s in steps)
        sample.graph_compiles = sum(s.graphs for s in steps)

    def summary(self) -> Dict[str, Any]:
        found = graph_summary(self.runner, self.steps(), self._agreement)
        found["warm_up_recompiles"] = self._warm_recompiles  # in this test; already in "graphs"
        return found
