"""Confirmation of a regression in a fresh process (flows/confirm.py, fixture.py): it fails closed."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from fakes import synthetic
from support.results import make_result

from pytest_npuperf import fixture as fixture_mod
from pytest_npuperf.fixture import NpuPerf
from pytest_npuperf.flows.confirm import DEVICE_INDEX_ENV, ChildRun, child_device_index, read_child, run_child
from pytest_npuperf.judge.compare import compare, floors_for
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import Sample
from pytest_npuperf.judge.stats import DRIFT, REGRESSED, UNCONFIRMED
from pytest_npuperf.settings import Settings
from pytest_npuperf.store.baselines import BaselineEntry

SAVE = "--npuperf-save-baseline"
ONE = "fp16-bs1-zh_qa"


def test_confirm_passes_a_regression_that_a_fresh_process_does_not_repeat(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", "fp16-bs1-zh_qa", seed=1, NPUPERF_FAKE_SLOWDOWN_ONCE="fp16-bs1-zh_qa=1.3")
    result.assert_outcomes(passed=1, deselected=7)
    result.stdout.fnmatch_lines(["*regression not confirmed; confirmation run in a fresh process: OK*"])
    # Shown as its own verdict, not as a REGRESSED test that passed.
    result.stdout.fnmatch_lines(["UNCONFIRMED fp16-bs1-zh_qa (generation): *", "verdicts: UNCONFIRMED 1"])
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert test["status"] == "UNCONFIRMED" and test["passed"]
    assert test["comparison"]["confirmation"] == (
        "confirmation run in a fresh process: OK; the pooled samples of both processes (5 + 5) against "
        "the baseline: INCONCLUSIVE")


def test_confirm_fails_a_regression_that_repeats(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", "fp16-bs1-zh_qa", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.3")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["  confirmation run in a fresh process: REGRESSED; the regression stands"])


@pytest.mark.parametrize("mode, outcome, line", [
    ("crash", "CRASHED", "*Segmentation fault (fake, at start)*"),
    ("usage", "NO_RESULTS", "*fake usage error in the confirmation process*"),
    ("oom", "ERROR", "*out of memory on cpu*"),
    ("mismatch", "MISMATCH", "*model_fingerprint: fake-fp16-other (confirmation) vs fake-fp16 (now)*"),
])
def test_a_confirmation_that_measured_nothing_valid_confirms_the_regression(npt, mode, outcome, line):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", ONE, seed=1, NPUPERF_FAKE_SLOWDOWN_ONCE=f"{ONE}=1.3",
                     NPUPERF_FAKE_CHILD=mode)
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([
        "*performance regressed",
        f"  confirmation run in a fresh process: {outcome}*the regression stands",
    ])
    result.stdout.fnmatch_lines([line])
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert test["status"] == REGRESSED and test["passed"] is False
    assert test["result"]["extra"]["confirmation"]["outcome"] == outcome


def test_the_parent_frees_its_model_before_the_child_and_reloads_it_after(npt, monkeypatch):
    npt.fake()
    npt.run(SAVE)
    real_run_child = fixture_mod.run_child

    def spy(*args, **kwargs):
        synthetic.EVENTS.append("child")
        return real_run_child(*args, **kwargs)

    monkeypatch.setattr(fixture_mod, "run_child", spy)
    synthetic.EVENTS.clear()
    result = npt.run("--npuperf-confirm", "-k", "fp16-bs1", seed=1, NPUPERF_FAKE_SLOWDOWN_ONCE=f"{ONE}=1.3")
    result.assert_outcomes(passed=2, deselected=6)
    events = list(synthetic.EVENTS)
    child = events.index("child")
    assert events[child - 1] == "empty_cache" and "load:fp16" in events[:child]
    assert events[child + 1:].count("load:fp16") == 1  # the next fp16 test loads the model again


def test_a_regression_that_the_child_does_not_repeat_is_judged_on_both_processes(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", ONE, seed=1, NPUPERF_FAKE_SLOWDOWN_ONCE=f"{ONE}=1.3")
    result.assert_outcomes(passed=1, deselected=7)
    result.stdout.fnmatch_lines([
        "*regression not confirmed; confirmation run in a fresh process: OK; the pooled samples of both "
        "processes (5 + 5) against the baseline: INCONCLUSIVE*",
    ])
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert test["status"] == UNCONFIRMED and test["passed"]


class _StubSession:
    """Just what NpuPerf._confirm needs: settings, the device, the baseline entry."""

    def __init__(self, entry):
        self.settings = Settings(confirm=True, worker_index=3)
        self.outcomes = {}
        self.entry = entry
        self.events = []

    def device(self):
        return synthetic.FakeDevice()

    def release_device(self):
        self.events.append("release")

    def baseline_entry(self, test_id):
        return self.entry


def _judge_with_child(monkeypatch, parent, child_run, baseline):
    entry = BaselineEntry(baseline.test_id, baseline.to_dict(), "x.json")
    session = _StubSession(entry)
    seen = {}

    def fake_run_child(command, nodeid, cwd, device_index, workload, timeout_s=0):
        seen.update(device_index=device_index, events=list(session.events))
        return child_run

    monkeypatch.setattr(fixture_mod, "run_child", fake_run_child)
    perf = NpuPerf(session, parent.test_id, {}, {}, [], ["pytest"])
    outcome = TestOutcome(parent.test_id, parent, compare(parent, entry, floors_for(None, {}), 0.05))
    assert outcome.comparison.status == REGRESSED
    return perf, outcome, seen


def _e2e(values):
    return make_result(e2e=tuple(values))


def test_pooled_samples_confirm_a_regression_that_the_child_alone_calls_drift(monkeypatch):
    baseline = _e2e([1.000, 1.002, 0.998, 1.001, 0.999])
    parent = _e2e([1.060, 1.062, 1.058, 1.061, 1.059])  # +6%: REGRESSED
    child_result = _e2e([1.025, 1.027, 1.023, 1.026, 1.024])  # +2.5%: below the 3% floor, DRIFT alone
    alone = compare(child_result, BaselineEntry("t", baseline.to_dict(), "x"), floors_for(None, {}), 0.05)
    assert alone.status == DRIFT
    perf, outcome, seen = _judge_with_child(monkeypatch, parent, ChildRun(DRIFT, samples=child_result.samples),
                                            baseline)
    with pytest.raises(pytest.fail.Exception) as failure:
        perf._judge(outcome)
    text = str(failure.value)
    assert "the pooled samples of both processes (5 + 5) against the baseline: REGRESSED" in text
    assert "n=10 vs 5" in text
    assert seen == {"device_index": 3, "events": ["release"]}  # freed first, same device index


def test_a_clean_child_and_pooled_samples_unconfirm(monkeypatch):
    baseline = _e2e([1.000, 1.002, 0.998, 1.001, 0.999])
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    child_result = _e2e([1.001, 0.999, 1.0, 1.002, 0.998])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, ChildRun("OK", samples=child_result.samples), baseline)
    with pytest.warns(fixture_mod.NpuPerfWarning, match="regression not confirmed"):
        perf._judge(outcome)
    assert outcome.comparison.status == UNCONFIRMED


@pytest.mark.parametrize("status", ["INCONCLUSIVE", "NO_BASELINE", "REGRESSED", "MISMATCH"])
def test_only_ok_drift_or_improved_may_unconfirm(monkeypatch, status):
    baseline = _e2e([1.000, 1.002, 0.998, 1.001, 0.999])
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    child = ChildRun(status, samples=[Sample(e2e_s=1.0)], tail=["last line"])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, child, baseline)
    with pytest.raises(pytest.fail.Exception, match=f"confirmation run in a fresh process: {status}"):
        perf._judge(outcome)


def _results_file(tmp_path, test, **extra):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"tests": [dict(test, **extra)]}))
    return path


def test_read_child_names_every_way_of_measuring_nothing(tmp_path):
    parent = make_result()
    good = {"test_id": parent.test_id, "status": "OK", "passed": True, "error": "", "result": parent.to_dict()}
    assert read_child(tmp_path / "absent.json", parent.test_id, parent.workload, -9, ["boom"]).outcome == "CRASHED"
    assert read_child(tmp_path / "absent.json", parent.test_id, parent.workload, 4, []).outcome == "NO_RESULTS"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert read_child(broken, parent.test_id, parent.workload, 1, []).outcome == "UNREADABLE_RESULTS"
    other = _results_file(tmp_path, good, test_id="other")
    assert read_child(other, parent.test_id, parent.workload, 0, []).outcome == "NOT_RUN"
    oom = _results_file(tmp_path, good, error="out of memory on npu", status="ERROR")
    assert read_child(oom, parent.test_id, parent.workload, 1, []).outcome == "ERROR"
    failed = _results_file(tmp_path, good, passed=False)
    assert not read_child(failed, parent.test_id, parent.workload, 1, []).may_unconfirm
    no_samples = _results_file(tmp_path, good, result=dict(parent.to_dict(), samples=[]))
    assert not read_child(no_samples, parent.test_id, parent.workload, 0, []).may_unconfirm
    ok = read_child(_results_file(tmp_path, good), parent.test_id, parent.workload, 0, [])
    assert ok.may_unconfirm and len(ok.samples) == len(parent.samples)


def test_run_child_passes_the_device_index_and_reports_a_timeout(tmp_path):
    parent = make_result()
    script = textwrap.dedent(f"""
        import json, os, sys
        out = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--npuperf-results=')][0]
        result = {json.dumps(parent.to_dict())!r}
        ok = os.environ.get('{DEVICE_INDEX_ENV}') == '2' and os.environ.get('NPUPERF_CONFIRMING') == '1'
        nodeid = [a for a in sys.argv[1:] if not a.startswith('--')][0]
        test = dict(test_id=nodeid, status='OK' if ok else 'ERROR', passed=ok, error='' if ok else 'bad index',
                    result=json.loads(result))
        json.dump(dict(tests=[test]), open(out, 'w'))
    """)
    child = run_child([sys.executable, "-c", script], parent.test_id, tmp_path, 2, parent.workload)
    assert child.outcome == "OK", child.account()
    slow = run_child([sys.executable, "-c", "import time; print('still loading'); time.sleep(30)"], parent.test_id,
                     tmp_path, 0, parent.workload, timeout_s=1)
    assert slow.outcome == "TIMEOUT" and not slow.may_unconfirm


def test_the_child_process_takes_the_device_index_it_is_given(npt):
    npt.fake()
    result = npt.run("-k", ONE, NPUPERF_CONFIRMING="1", NPUPERF_DEVICE_INDEX="1", NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=1, deselected=7)
    doc = json.loads((npt.path / "results.json").read_text())
    assert doc["run"]["settings"]["worker_index"] == 1
    bad = npt.run("-k", ONE, NPUPERF_CONFIRMING="1", NPUPERF_DEVICE_INDEX="gpu")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert child_device_index({DEVICE_INDEX_ENV: "1"}) is None  # only inside a confirmation child


def test_under_xdist_the_child_measures_on_its_workers_device(npt):
    pytest.importorskip("xdist")
    npt.fake()
    npt.run("-n", "2", SAVE, NPUPERF_FAKE_DEVICES="2")
    log = npt.path / "index.log"
    slow = ",".join(f"{name}=1.3" for name in ("fp16-bs1-zh_qa", "fp16-bs8-en_qa", "bf16-bs1-en_qa", "bf16-bs8-zh_qa"))
    result = npt.run("-n", "2", "--npuperf-confirm", seed=1, NPUPERF_FAKE_DEVICES="2", NPUPERF_FAKE_SLOWDOWN=slow,
                     NPUPERF_FAKE_INDEX_LOG=str(log))
    result.assert_outcomes(passed=4, failed=4)  # four confirmations, spread over both workers
    seen = {tuple(line.split()) for line in log.read_text().splitlines()}
    assert seen and all(worker == f"gw{index}" for worker, index in seen), seen


def test_a_crashed_confirmation_child_leaves_the_regression_standing(npu_run):
    common = ("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-max-new-tokens", "4")
    npu_run.run(*common, "--npuperf-save-baseline", "--npuperf-processes", "1").assert_outcomes(passed=1)
    crashed = npu_run.run(*common, NPUPERF_FAKE_NPU_DECODE_S="0.4", NPUPERF_FAKE_NPU_CHILD_CRASH="1")
    crashed.assert_outcomes(failed=1)


def test_junit_gets_the_verdict_after_confirmation(npt):
    """The JUnit property says what the test finally is: UNCONFIRMED, not the REGRESSED that the
    fresh process took back."""
    import re

    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", ONE, "--junitxml=junit.xml", seed=1,
                     NPUPERF_FAKE_SLOWDOWN_ONCE=f"{ONE}=1.3")
    result.assert_outcomes(passed=1, deselected=7)
    properties = dict(re.findall(r'<property name="([^"]+)" value="([^"]*)"', (npt.path / "junit.xml").read_text()))
    assert properties["npuperf_verdict"] == UNCONFIRMED
