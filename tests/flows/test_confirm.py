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
from pytest_npuperf.judge.compare import budgets_for, compare
from pytest_npuperf.judge.gate import Caps
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import tag_process
from pytest_npuperf.judge.sampling import DECIDED, NEW_PROCESS, Step
from pytest_npuperf.judge.stats import INCONCLUSIVE, OK, REGRESSED, UNDECIDED
from pytest_npuperf.settings import Settings
from pytest_npuperf.store.baselines import BaselineEntry

SAVE = "--npuperf-save-baseline"
ONE = "fp16-bs1-zh_qa"


@pytest.mark.orchestration
def test_a_regression_a_fresh_process_does_not_repeat_is_undecided_not_passed(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", "fp16-bs1-zh_qa", seed=1, NPUPERF_FAKE_SLOWDOWN_ONCE="fp16-bs1-zh_qa=1.3")
    result.assert_outcomes(passed=1, deselected=7)
    result.stdout.fnmatch_lines(["INCONCLUSIVE fp16-bs1-zh_qa (generation): *", "verdicts: INCONCLUSIVE 1"])
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert test["status"] == "INCONCLUSIVE" and test["passed"]
    # Futility is judged from 4 processes on: three fresh processes, then the power calculation stops it.
    assert test["comparison"]["confirmation"] == (
        "3 fresh process(es) (OK, OK, OK); the samples of 4 processes against the baseline: INCONCLUSIVE; stopped: "
        "at the noise measured even 10 processes would not decide it (--npuperf-max-processes)")
    assert [p["outcome"] for p in test["result"]["extra"]["fresh_processes"]] == ["OK", "OK", "OK"]
    strict = npt.run("--npuperf-confirm", "--npuperf-strict", "-k", "fp16-bs1-zh_qa", seed=1,
                     NPUPERF_FAKE_SLOWDOWN_ONCE="fp16-bs1-zh_qa=1.3")
    strict.assert_outcomes(failed=1, deselected=7)


@pytest.mark.orchestration
def test_confirm_fails_a_regression_that_repeats(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", "fp16-bs1-zh_qa", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.3")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["  1 fresh process(es) (REGRESSED); the samples of 2 processes against the baseline: REGRESSED"])


@pytest.mark.parametrize("mode, outcome, line", [
    ("crash", "CRASHED", "*Segmentation fault (fake, at start)*"),
    ("usage", "NO_RESULTS", "*fake usage error in the confirmation process*"),
    ("oom", "ERROR", "*out of memory on cpu*"),
    ("mismatch", "MISMATCH", "*model_fingerprint: fake-fp16-other (confirmation) vs fake-fp16 (now)*"),
])
@pytest.mark.orchestration
def test_a_confirmation_that_measured_nothing_valid_confirms_the_regression(npt, mode, outcome, line):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", ONE, seed=1, NPUPERF_FAKE_SLOWDOWN_ONCE=f"{ONE}=1.3",
                     NPUPERF_FAKE_CHILD=mode)
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines([
        "*performance regressed",
        f"  1 fresh process(es) ({outcome}); the samples of 1 processes against the baseline: REGRESSED; "
        f"stopped: fresh process: {outcome}*",
    ])
    result.stdout.fnmatch_lines([line])
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert test["status"] == REGRESSED and test["passed"] is False
    assert test["result"]["extra"]["fresh_processes"][0]["outcome"] == outcome


@pytest.mark.orchestration
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


class _StubSession:
    """Just what NpuPerf._settle needs: settings, the device, the baseline entry and its noise."""

    def __init__(self, entry, **settings):
        self.settings = Settings(confirm=True, worker_index=3, **settings)
        self.outcomes = {}
        self.entry = entry
        self.events = []

    def device(self):
        return synthetic.FakeDevice()

    def release_device(self):
        self.events.append("release")

    def baseline_entry(self, test_id):
        return self.entry

    def run_noise(self):
        return {}


def _judge_with_child(monkeypatch, parent, child_run, baseline, **settings):
    entry = BaselineEntry(baseline.test_id, baseline.to_dict(), "x.json")
    session = _StubSession(entry, **settings)
    seen = {"calls": 0}

    def fake_run_child(command, nodeid, cwd, device_index, workload, timeout_s=0):
        seen.update(device_index=device_index, events=list(session.events), calls=seen["calls"] + 1)
        return child_run

    monkeypatch.setattr(fixture_mod, "run_child", fake_run_child)
    perf = NpuPerf(session, parent.test_id, {}, {}, [], ["pytest"])
    outcome = TestOutcome(parent.test_id, parent, compare(parent, entry, budgets_for(None, {}), 0.05, caps=Caps(10, 6)))
    assert outcome.comparison.status == REGRESSED
    return perf, outcome, seen


def _e2e(values):
    return make_result(e2e=tuple(values))


BASELINE = [1.000, 1.002, 0.998, 1.001, 0.999]


def test_a_regression_the_fresh_process_repeats_fails_on_the_samples_of_both(monkeypatch):
    parent = _e2e([1.060, 1.062, 1.058, 1.061, 1.059])  # +6%: REGRESSED in one process
    child = _e2e([1.061, 1.060, 1.059, 1.062, 1.058])
    perf, outcome, seen = _judge_with_child(monkeypatch, parent, ChildRun(REGRESSED, samples=child.samples),
                                            _e2e(BASELINE))
    with pytest.raises(pytest.fail.Exception) as failure:
        perf._judge(outcome)
    text = str(failure.value)
    assert "1 fresh process(es) (REGRESSED); the samples of 2 processes against the baseline: REGRESSED" in text
    assert "1 + 2 processes (5 + 10 samples)" in text
    assert seen == {"device_index": 3, "events": ["release"], "calls": 1}  # freed first, same device index
    assert {s.process for s in outcome.result.samples} == {0, 1}


def test_a_regression_the_fresh_process_does_not_repeat_is_not_passed_on_its_word(monkeypatch):
    # One process at +30%, one at 0%: the pair cannot tell a regression from a process shift.
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    child = _e2e([1.001, 0.999, 1.0, 1.002, 0.998])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, ChildRun(OK, samples=child.samples), _e2e(BASELINE))
    with pytest.warns(fixture_mod.NpuPerfWarning, match="INCONCLUSIVE"):
        perf._judge(outcome)
    assert outcome.comparison.status == INCONCLUSIVE
    assert "stopped: at the noise measured even 10 processes would not decide it" in outcome.comparison.confirmation


def test_inconclusive_fails_under_strict(monkeypatch):
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    child = _e2e([1.001, 0.999, 1.0, 1.002, 0.998])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, ChildRun(OK, samples=child.samples), _e2e(BASELINE),
                                         strict=True)
    with pytest.raises(pytest.fail.Exception, match="INCONCLUSIVE: no regression beyond the budget could be ruled out"):
        perf._judge(outcome)


def test_an_undecided_test_takes_fresh_processes_until_it_is_decided(monkeypatch):
    # A baseline of 4 processes that scatter by about 1%; this process reads +1.5%: inside the
    # 3% budget, but not clearly. Processes like it settle it.
    shifts = (1.0, 1.01, 0.99, 1.005)
    baseline = make_result(e2e=tuple(BASELINE))
    baseline.samples = [s for i, f in enumerate(shifts) for s in tag_process(_e2e([x * f for x in BASELINE]).samples, i)]
    parent = _e2e([x * 1.015 for x in BASELINE])
    entry = BaselineEntry(baseline.test_id, baseline.to_dict(), "x.json")
    session = _StubSession(entry)
    first = compare(parent, entry, budgets_for(None, {}), 0.05, caps=Caps(10, 6))
    assert first.status == UNDECIDED
    children = iter([1.004, 0.996, 1.002, 0.998, 1.0])
    calls = []

    def fake_run_child(command, nodeid, cwd, device_index, workload, timeout_s=0):
        calls.append(timeout_s)
        return ChildRun(OK, samples=_e2e([x * next(children) for x in BASELINE]).samples)

    monkeypatch.setattr(fixture_mod, "run_child", fake_run_child)
    perf = NpuPerf(session, parent.test_id, {}, {}, [], ["pytest"])
    outcome = TestOutcome(parent.test_id, parent, first)
    perf._judge(outcome)
    assert outcome.comparison.status == OK
    assert len(calls) == outcome.result.processes() - 1 >= 1
    assert all(0 < t <= session.settings.time_cap_s for t in calls)


@pytest.mark.parametrize("status", ["ERROR", "NO_RESULTS", "CRASHED", "MISMATCH"])
def test_a_fresh_process_without_valid_samples_leaves_the_regression_standing(monkeypatch, status):
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    child = ChildRun(status, samples=[], tail=["last line"])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, child, _e2e(BASELINE))
    with pytest.raises(pytest.fail.Exception, match=f"stopped: fresh process: {status}.*last line"):
        perf._judge(outcome)
    assert outcome.comparison.status == REGRESSED


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
    failed = _results_file(tmp_path, good, passed=False, status="REGRESSED")
    assert read_child(failed, parent.test_id, parent.workload, 1, []).usable  # its samples count
    no_samples = _results_file(tmp_path, good, result=dict(parent.to_dict(), samples=[]))
    assert not read_child(no_samples, parent.test_id, parent.workload, 0, []).usable
    ok = read_child(_results_file(tmp_path, good), parent.test_id, parent.workload, 0, [])
    assert ok.usable and len(ok.samples) == len(parent.samples)


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
    assert slow.outcome == "TIMEOUT" and not slow.usable


@pytest.mark.orchestration
def test_the_child_process_takes_the_device_index_it_is_given(npt):
    npt.fake()
    result = npt.run("-k", ONE, NPUPERF_CONFIRMING="1", NPUPERF_DEVICE_INDEX="1", NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=1, deselected=7)
    doc = json.loads((npt.path / "results.json").read_text())
    assert doc["run"]["settings"]["worker_index"] == 1
    bad = npt.run("-k", ONE, NPUPERF_CONFIRMING="1", NPUPERF_DEVICE_INDEX="gpu")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert child_device_index({DEVICE_INDEX_ENV: "1"}) is None  # only inside a confirmation child


@pytest.mark.orchestration
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


@pytest.mark.orchestration
def test_a_crashed_confirmation_child_leaves_the_regression_standing(npu_run):
    common = ("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-max-new-tokens", "4")
    npu_run.run(*common, "--npuperf-save-baseline", "--npuperf-processes", "1").assert_outcomes(passed=1)
    crashed = npu_run.run(*common, NPUPERF_FAKE_NPU_DECODE_S="0.4", NPUPERF_FAKE_NPU_CHILD_CRASH="1")
    crashed.assert_outcomes(failed=1)


@pytest.mark.orchestration
def test_junit_gets_the_verdict_after_confirmation(npt):
    """The JUnit property says what the test finally is after its fresh process (undecided at the
    cap), not the REGRESSED of its first process."""
    import re

    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-confirm", "-k", ONE, "--junitxml=junit.xml", seed=1,
                     NPUPERF_FAKE_SLOWDOWN_ONCE=f"{ONE}=1.3")
    result.assert_outcomes(passed=1, deselected=7)
    properties = dict(re.findall(r'<property name="([^"]+)" value="([^"]*)"', (npt.path / "junit.xml").read_text()))
    assert properties["npuperf_verdict"] == INCONCLUSIVE


def test_a_regression_stands_when_a_later_fresh_process_fails(monkeypatch):
    # Process 1 regressed, process 2 made it undecided, process 3 crashed: the check could not
    # finish, so the regression is not taken back (it would otherwise end INCONCLUSIVE, a pass).
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    runs = iter([ChildRun(OK, samples=_e2e([1.001, 0.999, 1.0, 1.002, 0.998]).samples),
                 ChildRun("CRASHED", detail="exit -11", tail=["Segmentation fault"])])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, None, _e2e(BASELINE))
    monkeypatch.setattr(fixture_mod, "run_child", lambda *a, **k: next(runs))
    monkeypatch.setattr(fixture_mod, "next_step", lambda c, first, n, *a: Step(NEW_PROCESS) if n < 3 else Step(DECIDED))
    with pytest.raises(pytest.fail.Exception, match="the first process's regression stands"):
        perf._judge(outcome)
    assert outcome.comparison.status == REGRESSED


def test_an_error_while_sampling_leaves_no_undecided_verdict(monkeypatch):
    parent = _e2e([1.30, 1.31, 1.29, 1.30, 1.31])
    child = _e2e([1.001, 0.999, 1.0, 1.002, 0.998])
    perf, outcome, _ = _judge_with_child(monkeypatch, parent, ChildRun(OK, samples=child.samples), _e2e(BASELINE))

    def broken(*args, **kwargs):
        raise OSError("device gone")

    monkeypatch.setattr(fixture_mod, "judge_again", broken)
    with pytest.raises(OSError):
        perf._judge(outcome)
    assert outcome.comparison.status != UNDECIDED
