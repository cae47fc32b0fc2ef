"""Noise between processes is recorded with the baseline (issue 13, section 4)."""

import json

import fakes
import pytest
from test_baseline import make_result

from pytest_npuperf.judge.compare import NO_PROCESS_NOISE, compare, floors_for
from pytest_npuperf.judge.noise import NOISE_METRICS
from pytest_npuperf.settings import build_settings
from pytest_npuperf.store.baselines import BaselineEntry

SAVE = "--npuperf-save-baseline"


def _entries(npt):
    (path,) = (npt.path / "baselines").rglob("*.json")
    return json.loads(path.read_text())["entries"]


def test_a_baseline_recorded_in_three_processes_stores_pooled_samples_and_their_noise(npt):
    npt.fake()
    # This process 10% slower than its two children: a between-process shift.
    result = npt.run(SAVE, "--npuperf-processes", "3", "-k", "bs1", NPUPERF_FAKE_SLOWDOWN_ONCE="fp16-bs1-zh_qa=1.1")
    result.assert_outcomes(passed=4, deselected=4)
    result.stdout.fnmatch_lines(["*npuperf: 4 test(s) recorded in 3 fresh processes, with their between-process noise"])
    entries = _entries(npt)
    assert len(entries) == 4
    shifted = entries["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert len(shifted["samples"]) == 15
    assert {"e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes"} <= set(shifted["noise_cv"])
    assert 0.04 < shifted["noise_cv"]["e2e_s"] < 0.07  # medians 1.1, 1.0, 1.0: CV 5.5%
    written = {t["test_id"]: t for t in json.loads((npt.path / "results.json").read_text())["tests"]}
    assert len(written["test_perf.py::test_generate[fp16-bs1-zh_qa]"]["result"]["samples"]) == 15  # pooled
    quiet = entries["test_perf.py::test_generate[fp16-bs1-en_qa]"]
    assert quiet["noise_cv"]["e2e_s"] < 0.01
    assert npt.run("-k", "bs1").ret == 0  # and the pooled baseline compares


def test_a_test_that_fails_in_one_recording_process_is_not_saved(npt):
    npt.fake()
    result = npt.run(SAVE, "--npuperf-processes", "2", "-k", "bs1", NPUPERF_FAKE_CHILD="oom")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*NOT recorded in every process, so not saved: test_perf.py::test_generate[[]fp16-bs1-zh_qa[]]: "
        "process 2/2: ERROR, failed: out of memory on cpu*",
    ])
    assert not (npt.path / "baselines").exists() or not list((npt.path / "baselines").rglob("*.json"))


def test_processes_default_to_three_on_accelerators_and_one_on_a_cpu(npt, tmp_path):
    default = build_settings({}, tmp_path)
    assert default.processes_for("npu") == default.processes_for("cuda") == 3 and default.processes_for("cpu") == 1
    assert build_settings({"processes": ("5", "--npuperf-processes")}, tmp_path).processes_for("cpu") == 5
    npt.fake()
    bad = npt.run("--npuperf-processes", "0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--npuperf-processes: must be >= 1, got 0*"])


def test_noise_covers_every_gated_metric():
    assert {"time_s", "serving_ttft_p50_s", "goodput_rps", "peak_reserved_bytes"} <= set(NOISE_METRICS)


@pytest.mark.parametrize("kind, noted", [("npu", True), ("cuda", True), ("cpu", False)])
def test_an_accelerator_baseline_without_noise_says_so_in_each_row(kind, noted):
    stored = make_result(e2e=(1.0, 1.01, 0.99, 1.0, 1.0))
    now = make_result(e2e=(1.0, 1.01, 0.99, 1.0, 1.0))
    now.extra["device_kind"] = kind
    comparison = compare(now, BaselineEntry(stored.test_id, stored.to_dict(), "x.json"), floors_for(None, {}), 0.05)
    assert (NO_PROCESS_NOISE in comparison.verdict("e2e_s").note) is noted
    with_noise = dict(stored.to_dict(), noise_cv={"e2e_s": 0.02})
    comparison = compare(now, BaselineEntry(stored.test_id, with_noise, "x.json"), floors_for(None, {}), 0.05)
    assert NO_PROCESS_NOISE not in comparison.verdict("e2e_s").note


def test_the_header_names_accelerator_baselines_without_noise(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pytest_npuperf.hooks import NpuPerfRun

    stored = make_result()
    entries = {"a": BaselineEntry("a", stored.to_dict(), "x"),
               "b": BaselineEntry("b", dict(stored.to_dict(), noise_cv={"e2e_s": 0.02}), "x")}
    run = NpuPerfRun(build_settings({}, tmp_path), [])
    monkeypatch.setattr(run.perf, "profile_entries", lambda: entries)
    monkeypatch.setattr(run.perf, "calibration", lambda: dict(fakes.CALIBRATION))

    def device(kind, profile):
        return SimpleNamespace(kind=kind, profile=lambda: profile, name=lambda: profile, timing_source="t",
                               memory_source="m")

    monkeypatch.setattr(run.perf, "device", lambda: device("npu", "npu-Ascend910B4"))
    noise = [line for line in run.header_lines() if "between-process noise" in line]
    assert len(noise) == 1
    assert noise[0].startswith("npuperf: 1 of 2 baseline entries of npu-Ascend910B4 carry no between-process noise")
    monkeypatch.setattr(run.perf, "device", lambda: device("cpu", "cpu-X"))
    assert not [line for line in run.header_lines() if "between-process noise" in line]
