"""Execution modes (eager, graph) as the reports show them. Pure: reads results-document tests.

Which mode a test ran in, the suite's wall time per mode, the graph section's rows (backend,
compile time, graphs, static cache length, agreement with eager) and the decode step's fraction
of the bandwidth roofline. A value a result does not carry is shown as '-', never estimated.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..modes import EAGER, GRAPH
from ..modes import EXECUTION_MODES as MODES

Test = Mapping[str, Any]

GRAPH_COLUMNS = ("test", "backend", "compile", "graphs", "cache_len", "cosine", "max|diff|", "greedy")


def _extra(test: Test) -> Mapping[str, Any]:
    return (test.get("result") or {}).get("extra") or {}


def execution_mode(test: Test) -> str:
    """'eager' or 'graph': the result's own record, else the test id's '-graph' suffix (a test that
    errored before its result), else eager (results written before graph mode existed)."""
    mode = _extra(test).get("execution_mode")
    if mode:
        return str(mode)
    return GRAPH if re.search(r"-graph(\]|-)", str(test.get("test_id", ""))) else EAGER


def mode_order(modes: Sequence[str]) -> List[str]:
    """The given modes, eager then graph, then any other in name order."""
    present = set(modes)
    return [m for m in MODES if m in present] + sorted(present - set(MODES))


def mode_label(kind: str, mode: str) -> str:
    """'generation' for eager tests, 'generation (graph)' for the others."""
    return kind if mode == EAGER else f"{kind} ({mode})"


def row_label(precision: str, mode: str) -> str:
    """A generation-matrix row: 'bf16' for eager, 'bf16 graph' for graph."""
    return precision if mode == EAGER else f"{precision} {mode}"


# -- wall time -------------------------------------------------------------------------------------

def wall_time_by_mode(call_s: Mapping[str, Sequence[float]]) -> Dict[str, Dict[str, Any]]:
    """{mode: {'wall_s': total call seconds, 'tests': count}} for the results document's header."""
    return {m: {"wall_s": round(sum(call_s[m]), 3), "tests": len(call_s[m])} for m in mode_order(list(call_s))}


def wall_time_text(run: Mapping[str, Any]) -> str:
    """'wall time: eager 95.2 s (87 tests), graph 301.4 s (30 tests)'; '' when the run did not record it."""
    by_mode = run.get("wall_time") or {}
    parts = [f"{m} {by_mode[m]['wall_s']:.1f} s ({by_mode[m]['tests']} tests)" for m in mode_order(list(by_mode))]
    return "wall time: " + ", ".join(parts) if parts else ""


# -- decode roofline -------------------------------------------------------------------------------

DECODE_KEYS = ("decode_fraction_of_copy", "decode_fraction_of_peak")


def percent(fraction: Optional[float]) -> str:
    """'38%', '0.4%' (small fractions keep a decimal), '-' when unknown."""
    if fraction is None:
        return "-"
    return f"{fraction:.0%}" if fraction >= 0.1 else f"{fraction:.1%}"


def has_decode_fraction(test: Test) -> bool:
    return any(k in _extra(test) for k in DECODE_KEYS)


def decode_text(test: Optional[Test]) -> str:
    """'38% copy, 30% peak': decode bytes per step / TPOT over the calibrated copy bandwidth and over
    the device's published HBM peak; '-' for a part the result does not carry."""
    extra = _extra(test) if test else {}
    if not any(extra.get(k) is not None for k in DECODE_KEYS):
        return "-"
    return f"{percent(extra.get('decode_fraction_of_copy'))} copy, {percent(extra.get('decode_fraction_of_peak'))} peak"


# -- graph section ---------------------------------------------------------------------------------

def graph_tests(tests: Sequence[Test]) -> List[Test]:
    return [t for t in tests if execution_mode(t) == GRAPH]


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _count(value: Any) -> str:
    return "-" if value is None else str(int(value))


def graph_row(test: Test, short: str, compile_change: str = "") -> List[str]:
    """[test, backend, compile, graphs, cache_len, cosine, max|diff|, greedy] of one graph test;
    ``compile_change`` ('+5.0%') is the change of compile_s vs the baseline, if judged."""
    graph = _extra(test).get("graph") or {}
    agreement = graph.get("agreement") or {}
    compile_s = _number(graph.get("compile_s"), ".2f")
    if compile_s != "-":
        compile_s += "s" + (f" ({compile_change})" if compile_change else "")
    return [
        short,
        str(graph.get("backend") or "-"),
        compile_s,
        _count(graph.get("graphs")),
        _count(graph.get("cache_len")),
        _number(agreement.get("logits_cosine"), ".6f"),
        _number(agreement.get("logits_max_abs_diff"), ".3g"),
        _number(agreement.get("greedy_token_agreement"), ".4f"),
    ]


def graph_tolerance(test: Test) -> str:
    """The agreement tolerance the graph test was held to ('' when not recorded)."""
    return str(((_extra(test).get("graph") or {}).get("agreement") or {}).get("tolerance") or "")
