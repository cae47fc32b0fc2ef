"""Text of the terminal summary and the results JSON document. Pure: returns data, prints nothing."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from .compare import NO_PROCESS_NOISE
from .metrics import METRICS, format_value
from .outcome import TestOutcome
from .stats import REGRESSED, UNCONFIRMED, median, robust_cv

SUMMARY_METRICS = (
    "e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes", "peak_rss_bytes",
    "fidelity_kl", "fidelity_top1", "fidelity_cosine", "fidelity_greedy_agreement", "time_s", "achieved_tflops", "achieved_gb_s",
    "serving_ttft_p50_s", "serving_tpot_p50_s", "serving_tokens_per_s", "goodput_rps",
)
_COLUMNS = ("test", "metric", "median", "spread", "baseline", "change", "tol", "p", "verdict")


def short_id(test_id: str) -> str:
    """'perf_tests/test_generation.py::test_generate[fp16-bs8-zh_qa]' -> 'fp16-bs8-zh_qa'."""
    if test_id.endswith("]") and "[" in test_id:
        return test_id[test_id.index("[") + 1 : -1]
    return test_id.rsplit("::", 1)[-1]


def _row(outcome: TestOutcome, name: str, first: bool) -> Optional[List[str]]:
    metric = METRICS[name]
    values = outcome.result.values(name) if outcome.result else []
    if not values:
        return None
    verdict = outcome.comparison.verdict(name) if outcome.comparison else None
    status = verdict.status if verdict else (outcome.comparison.status if outcome.comparison else "-")
    if verdict and status == REGRESSED and outcome.comparison.status == UNCONFIRMED:
        status = UNCONFIRMED  # the fresh process did not reproduce it
    if verdict and not verdict.gated:
        status = f"({status})"
    return [
        short_id(outcome.test_id) if first else "",
        name,
        format_value(metric, median(values)),
        f"±{robust_cv(values) * 100:.1f}%",
        format_value(metric, verdict.baseline_median) if verdict else "-",
        f"{verdict.change * 100:+.1f}%" if verdict and verdict.change is not None else "-",
        (f"{verdict.tolerance * 100:.0f}%" + (" (no process noise)" if NO_PROCESS_NOISE in verdict.note else ""))
        if verdict and verdict.tolerance is not None else "-",
        f"{verdict.p_value:.3f}" if verdict and verdict.p_value is not None else "-",
        status,
    ]


def summary_lines(outcomes: List[TestOutcome]) -> List[str]:
    """One row per test and metric; spread is 1.4826*MAD/median of the samples."""
    rows: List[List[str]] = []
    notes: List[str] = []
    for outcome in outcomes:
        if outcome.error:
            rows.append([short_id(outcome.test_id), "-", "-", "-", "-", "-", "-", "-", "ERROR"])
            notes.append(f"{short_id(outcome.test_id)}: {outcome.error}")
            continue
        first = True
        for name in SUMMARY_METRICS:
            row = _row(outcome, name, first)
            if row:
                rows.append(row)
                first = False
        if outcome.comparison and outcome.comparison.mismatch:
            notes.append(f"{short_id(outcome.test_id)}: MISMATCH " + "; ".join(outcome.comparison.mismatch))
        for failure in outcome.budget_failures:
            notes.append(f"{short_id(outcome.test_id)}: budget {failure}")
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows + [list(_COLUMNS)]) for i in range(len(_COLUMNS))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*_COLUMNS)] + [fmt.format(*r) for r in rows]
    counts: Dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    if counts:
        lines.append("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return lines + notes


def results_document(
    header: Dict[str, Any], outcomes: Iterable[TestOutcome]
) -> Dict[str, Any]:
    """Everything of the run, raw samples included, for later comparison and plots."""
    return {
        "schema_version": 1,
        "run": header,
        "tests": [o.to_dict() for o in outcomes],
    }
