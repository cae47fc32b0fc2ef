"""The hook object that carries a run (hooks.py): the header it writes after collection."""

from types import SimpleNamespace

import pytest
from fakes import synthetic
from support.results import make_result

from pytest_npuperf.hooks import NpuPerfRun
from pytest_npuperf.settings import build_settings
from pytest_npuperf.store.baselines import BaselineEntry


def test_the_header_names_accelerator_baselines_without_noise(tmp_path, monkeypatch):
    stored = make_result()
    entries = {"a": BaselineEntry("a", stored.to_dict(), "x"),
               "b": BaselineEntry("b", dict(stored.to_dict(), noise_cv={"e2e_s": 0.02}), "x")}
    run = NpuPerfRun(build_settings({}, tmp_path), [])
    monkeypatch.setattr(run.perf, "profile_entries", lambda: entries)
    monkeypatch.setattr(run.perf, "calibration", lambda: dict(synthetic.CALIBRATION))

    def device(kind, profile):
        return SimpleNamespace(kind=kind, profile=lambda: profile, name=lambda: profile, timing_source="t", time_floor=lambda: None,
                               memory_source="m")

    monkeypatch.setattr(run.perf, "device", lambda: device("npu", "npu-Ascend910B4"))
    noise = [line for line in run.header_lines() if "between-process noise" in line]
    assert len(noise) == 1
    assert noise[0].startswith("npuperf: 1 of 2 baseline entries of npu-Ascend910B4 carry no between-process noise")
    monkeypatch.setattr(run.perf, "device", lambda: device("cpu", "cpu-X"))
    assert not [line for line in run.header_lines() if "between-process noise" in line]
    # Other baselines recorded in 3 processes: their pooled noise stands in, no warning.
    recorded = make_result(e2e=(1.0, 1.1, 1.0, 1.02, 0.98, 1.01))
    for i, sample in enumerate(recorded.samples):
        sample.process = i % 3
    entries["c"] = BaselineEntry("c", recorded.to_dict(), "x")
    run = NpuPerfRun(build_settings({}, tmp_path), [])
    monkeypatch.setattr(run.perf, "profile_entries", lambda: entries)
    monkeypatch.setattr(run.perf, "calibration", lambda: dict(synthetic.CALIBRATION))
    monkeypatch.setattr(run.perf, "device", lambda: device("npu", "npu-Ascend910B4"))
    assert run.perf.run_noise() and not [line for line in run.header_lines() if "between-process noise" in line]


def test_no_baseline_for_some_tests_of_the_run_needs_attention_and_fails_under_strict(npt):
    npt.fake()
    npt.run("--npuperf-save-baseline", "-k", "bs1")
    result = npt.run()
    result.assert_outcomes(passed=8)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["npuperf: NO_BASELINE needs attention: 4 test(s) of this run have no baseline while 4 "
                                 "other(s) do (a renamed test id, or a baseline file that lost entries?): *bf16-bs8-en_qa*"])
    strict = npt.run("--npuperf-strict")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["npuperf: --npuperf-strict: the run fails until every test has a baseline on this profile"])


def test_baselines_of_another_device_profile_need_attention(npt):
    npt.fake()
    npt.run("--npuperf-save-baseline")
    (npt.path / "baselines" / "fake-Accelerator").rename(npt.path / "baselines" / "npu-Ascend910B3")
    result = npt.run()
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["npuperf: NO_BASELINE needs attention: baselines of tiny exist for npu-Ascend910B3 but "
                                 "not for this device's profile fake-Accelerator*"])


def test_a_first_run_without_any_baseline_needs_no_attention(npt):
    npt.fake()
    result = npt.run("--npuperf-strict")
    result.assert_outcomes(passed=8)
    assert result.ret == 0
    assert "NO_BASELINE needs attention" not in result.stdout.str()
