"""The attribution report (``attribute/runner.py``'s dict) in the terminal and in HTML.

Pure: the report dict in, lines or an HTML fragment out.
"""

from __future__ import annotations

import html
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..judge.stats import Verdict
from .terminal import short_id

Report = Mapping[str, Any]
MAX_KEYS = 3  # (test, metric) pairs shown per mix


def key_metrics(report: Report) -> List[Tuple[str, str]]:
    """The (test, metric) pairs that regressed on the bad stack: what each mix is shown by."""
    mixes = report.get("mixes") or []
    bad = next((m for m in mixes if m.get("label") == "bad stack"), None)
    pairs = []
    for tid, test in ((bad or {}).get("tests") or {}).items():
        pairs += [(tid, v["metric"]) for v in test.get("verdicts", []) if v.get("status") == "REGRESSED"]
    return pairs[:MAX_KEYS]


def evidence(report: Report, index: Optional[int]) -> str:
    """'REGRESSED: test_generate[..] tpot_s +98.0% worse, at least ..., at most ... (95%)' for a mix."""
    if index is None:
        return "not run" + (" (not needed: the regression was explained)" if report["conclusion"]["explained"] else "")
    mix = report["mixes"][index]
    if mix["state"] in ("broken", "not tried"):
        return f"{mix['state']}: {mix.get('why', '')}"
    parts = []
    for tid, metric in key_metrics(report):
        verdict = next((v for v in (mix.get("tests", {}).get(tid) or {}).get("verdicts", []) if v["metric"] == metric),
                       None)
        if verdict is not None:
            parts.append(f"{short_id(tid)} {metric} {Verdict(**verdict).bounds_text()} {verdict['status']}")
    detail = "; ".join(parts) if parts else mix.get("why", "")
    return f"{mix['state']}: {detail}"


def stack_text(stack: Mapping[str, Any]) -> str:
    versions = stack.get("versions") or {}
    names = [f"{k.replace('cann_', 'CANN ')} {v}" for k, v in versions.items() if not k.startswith("env:") and v]
    env = [f"{k}={'unset' if v is None else v}" for k, v in (stack.get("env") or {}).items()]
    text = f"python {stack.get('python')}, CANN {stack.get('cann')} ({', '.join(names) or 'no versions read'})"
    return text + (f", env {' '.join(env)}" if env else "")


def attribution_lines(report: Report) -> List[str]:
    """The terminal's attribution section."""
    lines = [f"attribute: good stack: {stack_text(report['good'])}",
             f"attribute: bad stack: {stack_text(report['bad'])}"]
    for side in ("good", "bad"):
        lines += [f"attribute: the {side} stack cannot run: {p}" for p in report[side].get("problems", [])]
    lines.append("changes, each swapped alone (against the baseline in " + str(report.get("baseline_dir")) + "):")
    for factor in report.get("factors", []):
        lines.append(f"  {factor['name']}")
        lines.append(f"      applied alone to the good stack: {evidence(report, factor['alone'])}")
        lines.append(f"      reverted alone in the bad stack: {evidence(report, factor['reverted'])}")
    for name, fixed in (report.get("fixed") or {}).items():
        if fixed.get("good") or fixed.get("bad"):
            lines.append(f"  {name} {fixed['good']}: {fixed['note']}")
    lines += [f"  {note}" for note in report.get("inseparable", [])]
    broken = [m for m in report.get("mixes", []) if m["state"] in ("broken", "not tried")]
    lines += [f"  {m['label']}: {m['state']}, never blamed: {m['why']}" for m in broken]
    conclusion = report["conclusion"]
    lines.append(f"attribution: {conclusion['kind'].upper()}: {conclusion['text']}")
    if report.get("reproduce"):
        lines.append(f"reproduce: {report['reproduce']}")
    if report.get("stopped"):
        lines.append(f"attribution stopped: {report['stopped']}")
    lines.append(f"attribution: {len(report.get('mixes', []))} mix(es) in {report.get('spent_s')} s "
                 f"(budget {report.get('budget_s'):.0f} s)")
    return lines


def _esc(value: Any) -> str:
    return html.escape(str(value))


def attribution_html(report: Report) -> str:
    """The HTML report's section: conclusion, each change's evidence, the mixes run."""
    conclusion = report["conclusion"]
    rows = "".join(
        f"<tr><td class='l'>{_esc(f['name'])}</td><td class='l'>{_esc(evidence(report, f['alone']))}</td>"
        f"<td class='l'>{_esc(evidence(report, f['reverted']))}</td></tr>" for f in report.get("factors", []))
    mixes = "".join(
        f"<tr><td class='l'>{_esc(m['label'])}</td><td class='l'>{_esc(m['state'])}</td><td class='l'>{_esc(m['why'])}"
        f"</td><td>{m['seconds']}</td><td class='l'>{_esc(m['command'])}</td></tr>" for m in report.get("mixes", []))
    notes = [f"{k} {v['good']}: {v['note']}" for k, v in (report.get("fixed") or {}).items() if v.get("good")]
    notes += list(report.get("inseparable", []))
    parts = [f"<p><b>{_esc(conclusion['kind'])}</b>: {_esc(conclusion['text'])}</p>",
             f"<p>good stack: {_esc(stack_text(report['good']))}<br>bad stack: {_esc(stack_text(report['bad']))}</p>"]
    if report.get("reproduce"):
        parts.append(f"<p>reproduce:</p><pre>{_esc(report['reproduce'])}</pre>")
    parts.append("<table><tr><th>change</th><th>applied alone to the good stack</th>"
                 f"<th>reverted alone in the bad stack</th></tr>{rows}</table>")
    if notes:
        parts.append("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    parts.append(f"<details><summary>{len(report.get('mixes', []))} mix(es) run in {report.get('spent_s')} s"
                 f"{_esc('; ' + report['stopped']) if report.get('stopped') else ''}</summary><table><tr><th>mix</th>"
                 f"<th>state</th><th>why</th><th>s</th><th>command</th></tr>{mixes}</table></details>")
    return "".join(parts)


def attribution_document(report: Report, run: Dict[str, Any], tests: Sequence[Any] = ()) -> Dict[str, Any]:
    """A results document that holds an attribution (the command's --results file)."""
    return {"schema_version": 1, "run": run, "tests": list(tests), "attribution": dict(report)}
