"""--npuperf-attribute on a run whose test regressed: the run's own stack is the bad one."""

import json
import sys
from pathlib import Path

import pytest_npuperf

REPO = Path(pytest_npuperf.__file__).resolve().parent.parent
ONE = "fp16-bs1-zh_qa"


def test_a_failing_run_attributes_its_regression_to_the_variable_that_slows_it(npt, tmp_path):
    """Synthetic measurements (tests/fakes/synthetic.py): NPUPERF_FAKE_SLOWDOWN set in this run and
    unset in the good stack is the one change; the run fails, and names it."""
    npt.fake()
    npt.monkeypatch.setenv("PYTHONPATH", str(REPO))  # the mixes import this checkout's package
    npt.run("--npuperf-save-baseline", "-k", ONE).assert_outcomes(passed=1, deselected=7)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"python": sys.executable, "env": {"NPUPERF_FAKE_SLOWDOWN": None}}))
    result = npt.run("-k", ONE, f"--npuperf-attribute={good}", NPUPERF_FAKE_SLOWDOWN=f"{ONE}=1.3")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([
        "*npuperf attribute: bad stack: regressed (1 of 1 test(s) regressed*",
        "*npuperf attribute: good stack: clean (1 test(s) within their budgets*",
        f"attribution: CULPRIT: env NPUPERF_FAKE_SLOWDOWN unset -> {ONE}=1.3: it alone regresses the good stack*",
        f"reproduce: env NPUPERF_FAKE_SLOWDOWN={ONE}=1.3 {sys.executable} -m pytest *",
    ])
    found = json.loads((npt.path / "results.json").read_text())["attribution"]
    assert found["conclusion"]["members"] == [["env:NPUPERF_FAKE_SLOWDOWN"]]
    assert [m["state"] for m in found["mixes"]] == ["regressed", "clean"]
    # A passing run attributes nothing.
    passing = npt.run("-k", ONE, f"--npuperf-attribute={good}")
    passing.assert_outcomes(passed=1, deselected=7)
    assert "attribution" not in json.loads((npt.path / "results.json").read_text())
