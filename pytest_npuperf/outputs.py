"""What a run leaves behind: the results JSON and its exports, and the baselines it records.

Called once, at the end of the run, by the hook object; each function returns the lines it
wants the summary to show, and raises nothing a run could not report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from . import __version__
from .devices import DeviceShared, DeviceUnavailable
from .flows.confirm import in_confirmation_child
from .flows.recording import record_processes
from .flows.session import PerfSession, utc_now
from .judge import own_noise
from .judge.result import Result
from .judge.stats import DRIFT, IMPROVED, NO_BASELINE, OK, REGRESSED
from .report.export import benchmark_json, markdown_summary
from .report.html import render_html
from .report.modes import wall_time_by_mode
from .report.terminal import results_document, short_id
from .store.files import atomic_write_json


def run_header(session: PerfSession, call_s: Mapping[str, Sequence[float]]) -> Dict[str, Any]:
    """The results document's 'run': when, with which settings, on which stack and device."""
    s = session.settings
    header: Dict[str, Any] = {
        "pytest_npuperf": __version__,
        "started_at": session.started_at,
        "finished_at": utc_now(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()},
        "stack": session.stack,
        "model": session.model_name,
        "wall_time": wall_time_by_mode(call_s),
    }
    try:
        device = session.device()
        header.update(device=device.kind, device_name=device.name(), profile=device.profile(),
                      timing=device.timing_source)
    except (DeviceUnavailable, DeviceShared) as exc:
        header["device_unavailable"] = str(exc)
    return header


def results_of(session: PerfSession, call_s: Mapping[str, Sequence[float]]) -> Dict[str, Any]:
    """The run's results document: header and every test's outcome, raw samples included."""
    doc = results_document(run_header(session, call_s), list(session.outcomes.values()))
    own = own_noise_of(session)
    if own is not None:
        doc["run"]["own_noise"] = own
    return doc


def write_outputs(session: PerfSession, doc: Mapping[str, Any]) -> List[str]:
    """Write the results JSON, the pytest-benchmark export, the Markdown summary and the HTML
    report that the settings ask for; one line per file written. OSError propagates."""
    s = session.settings
    lines: List[str] = []
    if s.results_path is not None:
        s.results_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(s.results_path, doc)
        lines.append(f"npuperf: results written to {s.results_path}")
    if s.export_benchmark_json is not None:
        atomic_write_json(s.export_benchmark_json, benchmark_json(doc))
        lines.append(f"npuperf: pytest-benchmark JSON written to {s.export_benchmark_json}")
    markdown = s.markdown_path
    if markdown is None and os.environ.get("GITHUB_STEP_SUMMARY"):
        markdown = Path(os.environ["GITHUB_STEP_SUMMARY"])
    if markdown is not None:
        with open(markdown, "a", encoding="utf-8") as fh:
            fh.write(markdown_summary(doc))
        lines.append(f"npuperf: Markdown summary written to {markdown}")
    if s.html_path is not None:
        s.html_path.write_text(render_html(doc, session.store), encoding="utf-8")
        lines.append(f"npuperf: HTML report written to {s.html_path}")
    return lines


def record_more_processes(session: PerfSession, command: List[str], rootdir: Path,
                          say: Callable[[str], None]) -> Tuple[Set[str], List[str]]:
    """With --npuperf-processes N > 1: run the recorded tests in N - 1 more fresh processes and
    replace each result by the pooled one, with its noise. Returns the tests that could not be
    recorded in every process (never saved, even with --force) and the summary lines."""
    s = session.settings
    first: Dict[str, Result] = {tid: o.result for tid, o in session.outcomes.items()
                                if o.result is not None and (o.passed or s.force)}
    kinds = {str(r.extra.get("device_kind", "")) for r in first.values()}
    processes = max((s.processes_for(kind) for kind in kinds), default=1)
    if processes < 2 or not first or in_confirmation_child():
        return set(), []
    session.release_device()  # the children need the device's memory
    pooled, problems = record_processes(command, first, rootdir, s.worker_index, processes, say)
    for tid, result in pooled.items():
        session.outcomes[tid].result = result
    lines = []
    if pooled:
        lines.append(f"npuperf: {len(pooled)} test(s) recorded in {processes} fresh processes, "
                     "with their between-process noise")
    lines += [f"npuperf: NOT recorded in every process, so not saved: {line}" for line in problems]
    return set(first) - set(pooled), lines


def save_baselines(session: PerfSession, not_recorded: Set[str]) -> List[str]:
    """Save the passing tests' results (all with results, with --force) as the baselines of their
    profile; BaselineError when a file cannot be written (nothing of it is lost)."""
    groups: Dict[Tuple[str, str], List[Result]] = {}
    skipped = []
    force = session.settings.force
    for outcome in session.outcomes.values():
        if outcome.result is None or not (outcome.passed or force) or outcome.test_id in not_recorded:
            skipped.append(outcome.test_id)
            continue
        groups.setdefault((outcome.result.profile, outcome.result.extra["model"]), []).append(outcome.result)
    lines = []
    for (profile, model), results in groups.items():
        noise = {r.test_id: r.extra["noise_cv"] for r in results if r.extra.get("noise_cv")}
        path = session.store.save(profile, model, results, reason=session.settings.reason, noise_cv=noise, force=force,
                                  reset_drift=session.settings.reset_drift)
        lines.append(f"npuperf: saved {len(results)} baseline entries to {path}")
    if skipped:
        lines.append(f"npuperf: {len(skipped)} failing test(s) not saved as baseline (--npuperf-force saves the "
                     "ones that have results): " + ", ".join(skipped))
    return lines


def own_noise_of(session: PerfSession) -> Optional[Dict[str, Any]]:
    """A compare pass with fresh processes on: its own between-process noise held against the
    baseline's (judge/own_noise.py), as the results JSON keeps it (``run.own_noise``: the metrics,
    the tests decided in their first process, the summary's lines); None where there is none to
    take (a recording, a confirmation child, fresh processes off, nothing compared)."""
    if session.settings.save_baseline or in_confirmation_child():
        return None  # a child: one test, one process, the parent's pass speaks for it
    try:
        kind = session.device().kind
    except (DeviceUnavailable, DeviceShared):
        return None
    if not session.settings.confirms(kind):
        return None
    compared = {tid: o.result for tid, o in session.outcomes.items()
                if o.comparison is not None and o.result is not None and o.status != NO_BASELINE}
    if not compared:
        return None
    first = [short_id(tid) for tid, result in compared.items()
             if session.outcomes[tid].status in (OK, DRIFT, IMPROVED, REGRESSED) and result.processes() == 1]
    checks = own_noise.check(compared.values(), session.run_noise())
    return {"metrics": [c.as_dict() for c in checks], "decided_in_first_process": first,
            "lines": own_noise.summary_lines(checks, first)}
