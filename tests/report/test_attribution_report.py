"""The attribution in the terminal and the HTML report, from a synthetic report."""

from pytest_npuperf.report.attribution import attribution_document, attribution_lines, key_metrics
from pytest_npuperf.report.html import render_html

VERDICT = {"metric": "tpot_s", "status": "REGRESSED", "worse_change": 0.98, "low": 0.9, "high": 1.06, "level": 0.95}
CLEAN = {"metric": "tpot_s", "status": "OK", "worse_change": 0.01, "low": -0.02, "high": 0.04, "level": 0.95}
TID = "perf_tests/test_generation.py::test_generate[bf16-bs1-zh_qa]"


def _report(kind="culprit", explained=True):
    mix = lambda label, state, verdict: {"label": label, "applied": [], "state": state, "why": "why", "command": "cmd",  # noqa: E731
                                        "seconds": 10.0, "tests": {TID: {"status": verdict["status"], "verdicts": [verdict]}}}
    return {
        "good": {"python": "/envs/a/bin/python", "cann": "/a/set_env.sh", "env": {"TASK_QUEUE_ENABLE": None},
                 "versions": {"cann_toolkit": "8.3.RC1", "torch_npu": "2.5.1"}, "problems": []},
        "bad": {"python": "/envs/b/bin/python", "cann": "/b/set_env.sh", "env": {}, "versions": {"cann_toolkit": "8.5.0"},
                "problems": []},
        "fixed": {"driver": {"good": "24.1.rc3", "bad": "24.1.rc3", "note": "read, not separable"}},
        "factors": [{"key": "c", "name": "CANN toolkit 8.3.RC1 -> 8.5.0", "alone": 2, "reverted": 3},
                    {"key": "t", "name": "torch_npu 2.5.1 -> 2.6.0", "alone": None, "reverted": None}],
        "inseparable": ["CANN toolkit alone: not tried: impossible"],
        "mixes": [mix("bad stack", "regressed", VERDICT), mix("good stack", "clean", CLEAN),
                  mix("good stack + the new CANN toolkit", "regressed", VERDICT),
                  dict(mix("bad stack with the old CANN toolkit", "clean", CLEAN), state="broken", why="child died")],
        "conclusion": {"kind": kind, "text": "CANN toolkit 8.3.RC1 -> 8.5.0: it alone ...", "members": [["c"]],
                       "explained": explained},
        "reproduce": "source /b/set_env.sh && /envs/a/bin/python -m pytest x" if explained else "",
        "baseline_dir": "baselines", "budget_s": 3600.0, "spent_s": 40.0, "stopped": "",
    }


def test_terminal_lines_name_each_change_with_its_bounds_and_the_culprit():
    report = _report()
    assert key_metrics(report) == [(TID, "tpot_s")]
    lines = attribution_lines(report)
    text = "\n".join(lines)
    assert ("applied alone to the good stack: regressed: bf16-bs1-zh_qa tpot_s +98.0% worse, at least "
            "+90.0%, at most +106.0% (95%) REGRESSED") in text
    assert "reverted alone in the bad stack: broken: child died" in text  # a broken mix shows why, no verdicts
    assert "torch_npu 2.5.1 -> 2.6.0\n      applied alone to the good stack: not run (not needed: the regression was " \
           "explained)" in text
    assert "  driver 24.1.rc3: read, not separable" in text
    assert "  bad stack with the old CANN toolkit: broken, never blamed: child died" in text
    assert "attribution: CULPRIT: CANN toolkit 8.3.RC1 -> 8.5.0: it alone ..." in lines
    assert "reproduce: source /b/set_env.sh && /envs/a/bin/python -m pytest x" in lines
    assert "env TASK_QUEUE_ENABLE=unset" in lines[0]


def test_html_section_and_document():
    doc = attribution_document(_report(), {"command": "attribute"})
    page = render_html(doc)
    assert "<h2>Which change caused it</h2>" in page and "CANN toolkit 8.3.RC1 -&gt; 8.5.0" in page
    assert "source /b/set_env.sh" in page
    unexplained = render_html(attribution_document(_report("unattributed", False), {}))
    assert "<b>unattributed</b>" in unexplained and "reproduce:" not in unexplained
    assert "Which change caused it" not in render_html({"run": {}, "tests": []})
