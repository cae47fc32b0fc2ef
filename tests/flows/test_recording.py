"""Recording a baseline in several fresh processes (flows/recording.py): pooled samples and their
between-process noise; nothing saved for a test that failed in one process."""

import json

import pytest

SAVE = "--npuperf-save-baseline"


def _entries(npt):
    (path,) = (npt.path / "baselines").rglob("*.json")
    return json.loads(path.read_text())["entries"]


@pytest.mark.orchestration
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


@pytest.mark.orchestration
def test_a_test_that_fails_in_one_recording_process_is_not_saved(npt):
    npt.fake()
    result = npt.run(SAVE, "--npuperf-processes", "2", "-k", "bs1", NPUPERF_FAKE_CHILD="oom")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*NOT recorded in every process, so not saved: test_perf.py::test_generate[[]fp16-bs1-zh_qa[]]: "
        "process 2/2: ERROR, failed: out of memory on cpu*",
    ])
    assert not (npt.path / "baselines").exists() or not list((npt.path / "baselines").rglob("*.json"))
