"""Nothing lost, clear errors for bad input (issue: trust)."""

import json
import multiprocessing
import os
import textwrap

import pytest
from fakes import synthetic
from test_baseline import make_result

from pytest_npuperf.errors import BaselineError
from pytest_npuperf.store.baselines import BaselineStore, _locked

SAVE = "--npuperf-save-baseline"


def baseline_path(npt):
    (path,) = [p for p in (npt.path / "baselines").rglob("*.json")]
    return path


def test_out_of_memory_fails_that_test_with_figures_and_the_session_goes_on(npt):
    npt.fake()
    synthetic.LOADS.clear()
    result = npt.run(NPUPERF_FAKE_OOM="fp16-bs8-zh_qa")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines([
        "*fp16-bs8-zh_qa?: out of memory on cpu (Fake Accelerator): NPU out of memory. Tried to allocate 2.00 GiB*"
        "at the failure: peak_allocated_bytes=61440MiB, device_used_bytes=63488MiB. The model was freed*",
    ])
    # the next fp16 test had to load the model again
    assert synthetic.LOADS.count("fp16") == 2


def test_corrupt_baseline_fails_comparison_naming_the_file(npt):
    npt.fake()
    npt.run(SAVE)
    path = baseline_path(npt)
    path.write_text('{"entries": ')
    result = npt.run()
    result.assert_outcomes(failed=8)
    result.stdout.fnmatch_lines([f"*baseline file {path} cannot be read*--npuperf-force*"])
    assert path.read_text() == '{"entries": '


def test_force_replaces_a_broken_file_and_keeps_it_aside(npt):
    npt.fake()
    npt.run(SAVE)
    path = baseline_path(npt)
    path.write_text("garbage")
    npt.run(SAVE).stdout.fnmatch_lines(["*baseline NOT saved: baseline file * cannot be read*"])
    assert path.read_text() == "garbage"
    result = npt.run(SAVE, "--npuperf-force")
    result.assert_outcomes(passed=8)
    assert len(json.loads(path.read_text())["entries"]) == 8
    (aside,) = path.parent.glob(path.name + ".corrupt-*")
    assert aside.read_text() == "garbage"


def test_force_saves_failing_tests(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(SAVE, "--npuperf-force", seed=2, NPUPERF_FAKE_MEMORY="fp16-bs1-zh_qa=3")
    result.assert_outcomes(passed=8)  # in save mode a regression warns; the new numbers are recorded
    entry = json.loads(baseline_path(npt).read_text())["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert entry["samples"][0]["peak_allocated_bytes"] == 3 * 510 * 2**20


def test_requested_device_absent_skips_or_fails_under_strict(npt, tmp_path, monkeypatch):
    npt.pytester.makepyfile(test_perf=textwrap.dedent("""
        def test_generate(npuperf):
            npuperf.generate(precision='fp16', batch_size=1, workload='zh_qa')
    """))
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "torch_npu" else _spec(name))
    result = npt.run("--npuperf-device", "npu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*torch_npu is not installed*"])
    strict = npt.run("--npuperf-device", "npu", "--npuperf-strict")
    strict.assert_outcomes(errors=1)
    strict.stdout.fnmatch_lines(["*torch_npu is not installed*(--npuperf-strict)*"])


def _spec(name):
    import importlib.machinery

    return importlib.machinery.PathFinder.find_spec(name)


@pytest.mark.parametrize("config, message", [
    ({"model_type": "gpt2"}, "is a 'gpt2' checkpoint; this suite measures Mistral-architecture models"),
    ({"model_type": "mistral", "auto_map": {"AutoModelForCausalLM": "x.Y"}}, "needs remote code"),
])
def test_unsuitable_checkpoints_are_refused_before_loading(npt, config, message):
    npt.fake()
    ckpt = npt.path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(config))
    result = npt.run("--npuperf-model", str(ckpt))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--npuperf-model: {ckpt}*{message}*"])


def test_checkpoint_without_config_is_refused(npt):
    npt.fake()
    (npt.path / "empty").mkdir()
    result = npt.run("--npuperf-model", "empty")
    result.stderr.fnmatch_lines(["*has no config.json, so it is not a Hugging Face checkpoint folder"])


def test_unwritable_baseline_dir_reports_and_fails_the_run(npt):
    npt.fake()
    (npt.path / "blocked").write_text("a file, not a folder")
    result = npt.run(SAVE, "--npuperf-baseline-dir", "blocked/baselines")
    result.stdout.fnmatch_lines(["*baseline NOT saved: cannot create baseline directory*--npuperf-baseline-dir*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def _save_many(root, prefix):
    store = BaselineStore(root)
    for i in range(15):
        store.save("cpu-X", "tiny", [make_result(f"{prefix}{i}")])


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_save_many, args=(tmp_path, p)) for p in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = BaselineStore(tmp_path).load("cpu-X", "tiny")
    assert len(entries) == 45


def test_lock_timeout_is_a_clear_error(tmp_path):
    import fcntl

    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def attempt():
            try:
                with _locked(tmp_path, 0.2):
                    queue.put("locked")
            except BaselineError as exc:
                queue.put(str(exc))

        proc = ctx.Process(target=attempt)
        proc.start()
        proc.join(10)
        assert "another process has held the lock" in queue.get(timeout=5)
    finally:
        os.close(fd)


def test_files_are_read_as_json_only(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.path_for("cpu-X", "tiny")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x04\x95")  # a pickle header is just a broken file
    with pytest.raises(BaselineError, match="cannot be read"):
        store.load("cpu-X", "tiny")


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


def test_calibrate_stores_between_process_noise(npt, capsys):
    from pytest_npuperf.cli import main

    npt.fake()
    npt.monkeypatch.chdir(npt.path)
    assert main(["calibrate", "--processes", "3", "--baseline-dir", "cal", "--", "test_perf.py", "-k", "bs1"]) == 0
    out = capsys.readouterr().out
    assert "saved 4 entries with their between-process noise" in out
    (path,) = (npt.path / "cal").rglob("*.json")
    entry = json.loads(path.read_text())["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert len(entry["samples"]) == 15  # 3 processes x 5 runs, pooled
    assert set(entry["noise_cv"]) == {"e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_allocated_bytes",
                                      "peak_reserved_bytes"}  # every gated metric measured
    assert all(0 <= v < 0.05 for v in entry["noise_cv"].values())  # the fake's noise is 1% per sample
    assert main(["show", "--baseline-dir", "cal"]) == 0
    assert "noise-calibrated" in capsys.readouterr().out


def test_confirmation_is_on_by_default_for_accelerators_only(tmp_path):
    from pytest_npuperf.settings import build_settings

    default = build_settings({}, tmp_path)
    assert default.confirms("npu") and default.confirms("cuda") and not default.confirms("cpu")
    off = build_settings({"confirm": (False, "--npuperf-no-confirm")}, tmp_path)
    assert not off.confirms("npu")
    on = build_settings({"confirm": (True, "--npuperf-confirm")}, tmp_path)
    assert on.confirms("cpu")
