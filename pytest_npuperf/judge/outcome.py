"""What one test produced: its result, the comparison with its baseline, and what went wrong.

No pytest here; the flows fill these, the fixture, the hooks and the reports read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

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
        return {
            "test_id": self.test_id,
            "status": self.status,
            "passed": self.passed,
            "error": self.error,
            "budget_failures": self.budget_failures,
            "result": self.result.to_dict() if self.result else None,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TestOutcome":
        """The inverse of to_dict (outcomes travel from xdist workers to the controller)."""
        return cls(
            test_id=data["test_id"],
            result=Result.from_dict(data["result"]) if data.get("result") else None,
            comparison=Comparison.from_dict(data["comparison"]) if data.get("comparison") else None,
            budget_failures=list(data.get("budget_failures", [])),
            error=data.get("error", ""),
            passed=data.get("passed"),
        )


def related_regressions(outcomes: Mapping[str, TestOutcome], limit: int = 8) -> List[str]:
    """Step and operator results of this run that got worse: where a generation slowdown comes from."""
    rows = []
    for o in outcomes.values():
        if not o.result or not o.comparison or o.result.workload.mode in (GENERATION_MODE, GRAPH_GENERATION_MODE):
            continue
        verdict = o.comparison.verdict("time_s")
        if verdict and verdict.status in (REGRESSED, INCONCLUSIVE) and verdict.change is not None:
            name = o.test_id.rsplit("[", 1)[-1].rstrip("]")
            rows.append((verdict.change, f"{name} time {verdict.change * 100:+.1f}% ({verdict.status})"))
    return [text for _, text in sorted(rows, reverse=True)[:limit]]


