"""How far a run has come (progress.py): the estimate of the time left, and when it is shown."""

from fakes import synthetic

from pytest_npuperf import progress
from pytest_npuperf.progress import Progress, duration_text, progress_for


def test_duration_text():
    assert duration_text(45.4) == "45s"
    assert duration_text(62) == "1m02s"


def test_the_estimate_uses_each_files_own_mean_and_the_run_mean_for_files_not_started():
    nodeids = ["a.py::t[1]", "a.py::t[2]", "a.py::t[3]", "b.py::t[1]"]
    p = Progress(nodeids, now=100.0, every_s=0.0)
    line = p.finished("a.py::t[1]", "generation", "t1", 5, "OK", now=110.0)
    # a.py: 2 left at 10 s each; b.py has no finished test: the run's mean, 10 s
    assert line == ("npuperf [1/4] t1: 5 runs, OK; elapsed 10s, about 30s left "
                    "(generation: 2 left, about 20s; b.py: 1 left, about 10s)")
    assert p.finished("a.py::t[2]", "generation", "t2", 5, "OK", now=130.0).startswith(
        "npuperf [2/4] t2: 5 runs, OK; elapsed 30s, about 30s left (generation: 1 left, about 15s")


def test_a_line_is_due_every_period_and_after_the_last_test():
    p = Progress(["a.py::t[1]", "a.py::t[2]", "a.py::t[3]"], now=0.0, every_s=60.0)
    assert p.finished("a.py::t[1]", "generation", "t1", 5, "OK", now=10.0) is None
    assert p.finished("a.py::t[2]", "generation", "t2", 5, "OK", now=70.0) is not None
    assert p.finished("a.py::t[3]", "generation", "t3", 5, "OK", now=75.0) is not None  # the last one


def test_progress_lines_with_verbose_on_an_accelerator_and_never_on_a_cpu_without_it():
    assert progress_for(object(), True, "cpu") == 0.0
    assert progress_for(object(), False, "npu") == progress.PROGRESS_EVERY_S
    assert progress_for(object(), False, "cpu") is None
    assert progress_for(None, True, "npu") is None


def test_an_accelerator_runs_the_full_preset_and_shows_progress_without_verbose(npt, monkeypatch):

    npt.fake()
    monkeypatch.setattr(synthetic.FakeDevice, "kind", "npu")
    monkeypatch.setattr(progress, "PROGRESS_EVERY_S", 0.0)  # a line per test instead of one a minute
    result = npt.run()
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines([
        "npuperf: preset=full max_new_tokens=16 *",
        "npuperf ?1/8? fp16-bs1-zh_qa: 5 runs, NO_BASELINE; elapsed *, about * left (generation: 7 left, about *)",
        "npuperf ?8/8? bf16-bs8-en_qa: 5 runs, NO_BASELINE; elapsed *, about 0s left",
        "npuperf: 8 tests on npu (Fake Accelerator), model mistral-7b, preset full: nothing needs attention",
    ])
    assert "the default on a CPU" not in result.stdout.str()
