"""What one test produced: its result, the comparison with its baseline, and what went wrong.

No pytest here; the flows fill these, the fixture, the hooks and the reports read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from . import codec
from .compare import Comparison
from .result import GENERATION_MODE, GRAPH_GENERATION_MODE, Result
from .stats import INCONCLUSIVE, REGRESSED


@dataclass
class TestOutcome:
    __test__ = False  # not a test class, despite the name
    test_id: str
    result: Optional[Result] = None
    comparison: Optional[Comparison] = None
    budget_failures: List[str] = field(default_factory=list)
    error: str = ""
    passed: Optional[bool] = None  # filled from the test report

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        return self.comparison.status if self.comparison else "-"

    def to_dict(self) -> Dict[str, Any]:
        """The results document's test: the fields and the status that speaks for the test."""
        return dict(codec.to_dict(self), status=self.status)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TestOutcome":
        """The inverse of to_dict (outcomes travel from xdist workers to the controller)."""
        return codec.from_dict(cls, data)


def related_regressions(outcomes: Mapping[str, TestOutcome], limit: int = 8) -> List[str]:
    """Step and operator results of this run that got worse: where a generation slowdown comes from."""
    rows = []
    for o in outcomes.values():
        if not o.result or not o.comparison or o.result.workload.kind in (GENERATION_MODE, GRAPH_GENERATION_MODE):
            continue
        verdict = o.comparison.verdict("time_s")
        if verdict and verdict.status in (REGRESSED, INCONCLUSIVE) and verdict.change is not None:
            name = o.test_id.rsplit("[", 1)[-1].rstrip("]")
            rows.append((verdict.change, f"{name} time {verdict.change * 100:+.1f}% ({verdict.status})"))
    return [text for _, text in sorted(rows, reverse=True)[:limit]]


