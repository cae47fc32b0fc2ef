"""The plugin end to end through pytester, with synthetic measurements (tests/fakes/synthetic.py)."""

import json

import pytest

SAVE = "--npuperf-save-baseline"


def baseline_file(npt):
    files = list((npt.path / "baselines").rglob("*.json"))
    assert len(files) == 1, files
    return files[0]


def test_help_lists_options(pytester):
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--npuperf-device=DEVICE*", "*--npuperf-tolerance=METRIC=FRACTION*", "*--npuperf-save-baseline*"])


def test_markers_listed(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.npu:*", "@pytest.mark.npuperf(tolerance=*"])


def test_no_baseline_passes_and_says_so(npt):
    npt.fake()
    result = npt.run()
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*npuperf summary*", "npuperf: 8 tests on *: nothing needs attention",
                                 "verdicts: NO_BASELINE 8", "generation: 8 tests: NO_BASELINE 8"])


def test_save_then_compare_passes(npt):
    npt.fake()
    npt.run(SAVE, "--npuperf-reason", "first stack").assert_outcomes(passed=8)
    data = json.loads(baseline_file(npt).read_text())
    assert len(data["entries"]) == 8
    entry = data["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert entry["reason"] == "first stack" and len(entry["samples"]) == 5
    result = npt.run(seed=1)  # a new process: other noise
    result.assert_outcomes(passed=8)
    verdicts = [line for line in result.outlines if line.startswith("verdicts: ")]
    assert verdicts and "REGRESSED" not in verdicts[0] and "MISMATCH" not in verdicts[0]
    assert "OK" in verdicts[0]


def test_slowdown_fails_exactly_that_test(npt):
    npt.fake()
    npt.run(SAVE).assert_outcomes(passed=8)
    result = npt.run(seed=1, NPUPERF_FAKE_SLOWDOWN="bf16-bs8-en_qa=1.25", TASK_QUEUE_ENABLE="2")
    result.assert_outcomes(passed=7, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*test_generate?bf16-bs8-en_qa?: performance regressed",
            "  REGRESSED e2e_s: baseline *ms -> now *ms (+2?.?%), tolerance 3.0%, one-sided Mann-Whitney p=0.0040 (alpha 0.05, n=5 vs 5)",
            "  REGRESSED tpot_s: *",
            "  REGRESSED tokens_per_s: *",
            "  stack changes since the baseline: env TASK_QUEUE_ENABLE unknown -> 2",
            "FAILED test_perf.py::test_generate?bf16-bs8-en_qa? - *",
        ]
    )


def test_small_slowdown_within_tolerance_is_not_a_failure(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.02")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*fp16-bs1-zh_qa?: DRIFT: a statistically significant change below the tolerance"])


def test_tolerance_override_from_cli_and_marker(npt):
    npt.fake()
    npt.run(SAVE)
    env = {"NPUPERF_FAKE_SLOWDOWN": "fp16-bs1-zh_qa=1.25"}
    result = npt.run("--npuperf-tolerance", "e2e_s=0.5", "--npuperf-tolerance", "tpot_s=50%",
                     "--npuperf-tolerance", "tokens_per_s=0.5", "--npuperf-tolerance", "ttft_s=0.5", seed=1, **env)
    result.assert_outcomes(passed=8)
    marked = (
        "import pytest\n"
        "pytestmark = [pytest.mark.npu, pytest.mark.npuperf(tolerance={'e2e_s': 0.5, 'ttft_s': 0.5, "
        "'tpot_s': 0.5, 'tokens_per_s': 0.5})]\n"
        "def test_generate(npuperf):\n"
        "    npuperf.generate(precision='fp16', batch_size=1, workload='zh_qa')\n"
    )
    npt.pytester.makepyfile(test_perf=marked)
    npt.run(SAVE)
    npt.run(seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.25").assert_outcomes(passed=1)


def test_memory_regression_uses_the_ratio_gate(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(seed=1, NPUPERF_FAKE_MEMORY="fp16-bs8-zh_qa=1.3")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["  REGRESSED peak_allocated_bytes: * (memory: ratio gate only)"])


def test_workload_mismatch_is_refused(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run("--npuperf-max-new-tokens", "8", seed=1)
    result.assert_outcomes(failed=8)
    result.stdout.fnmatch_lines(
        [
            "*workload differs from the baseline, so the results are not comparable:",
            "  max_new_tokens: 16 (baseline) vs 8 (now)",
        ]
    )


def test_short_output_is_a_measurement_error(npt):
    npt.fake()
    result = npt.run(NPUPERF_FAKE_SHORT="fp16-bs8-en_qa")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*fp16-bs8-en_qa?: measurement error: output length is not fixed*"])


def test_failing_tests_are_not_saved(npt):
    npt.fake()
    npt.run(SAVE)
    before = json.loads(baseline_file(npt).read_text())
    result = npt.run(SAVE, NPUPERF_FAKE_SHORT="fp16-bs8-en_qa", seed=3)
    result.stdout.fnmatch_lines(["*1 failing test(s) not saved as baseline*fp16-bs8-en_qa*"])
    after = json.loads(baseline_file(npt).read_text())
    key = "test_perf.py::test_generate[fp16-bs8-en_qa]"
    assert after["entries"][key] == before["entries"][key]
    assert after["entries"] != before["entries"]  # the others were re-recorded


def test_saving_a_subset_keeps_other_entries(npt):
    npt.fake()
    npt.run(SAVE)
    npt.run(SAVE, "-k", "bf16", seed=2).assert_outcomes(passed=4, deselected=4)
    assert len(json.loads(baseline_file(npt).read_text())["entries"]) == 8


def test_results_json_has_raw_samples(npt):
    npt.fake()
    npt.run()
    data = json.loads((npt.path / "results.json").read_text())
    assert data["run"]["profile"] == "fake-Accelerator"
    assert len(data["tests"]) == 8
    first = data["tests"][0]
    assert first["status"] == "NO_BASELINE" and first["passed"] is True
    assert len(first["result"]["samples"]) == 5
    assert first["result"]["workload"]["max_new_tokens"] == 16


def test_user_properties_reach_junit(npt):
    npt.fake()
    npt.run("--junitxml=junit.xml")
    text = (npt.path / "junit.xml").read_text()
    assert 'name="npuperf_verdict" value="NO_BASELINE"' in text
    assert 'name="npuperf_e2e_s_median"' in text


def test_budget_from_marker(npt):
    npt.fake(
        "import pytest\n"
        "@pytest.mark.npu\n"
        "@pytest.mark.npuperf(budget={'ttft_s': 0.001})\n"
        "def test_generate(npuperf):\n"
        "    npuperf.generate(precision='fp16', batch_size=1, workload='zh_qa')\n"
        "@pytest.mark.npu\n"
        "def test_budget_call(npuperf):\n"
        "    npuperf.generate(precision='fp16', batch_size=2, workload='zh_qa')\n"
        "    npuperf.assert_budget('tokens_per_s', 1.0)\n"
    )
    result = npt.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*budget exceeded: ttft_s: median *ms breaks the budget of at most 1.00ms"])


def test_corrupt_baseline_is_reported_and_kept(npt):
    npt.fake()
    npt.run(SAVE)
    path = baseline_file(npt)
    path.write_text("{ not json")
    result = npt.run(SAVE)
    result.stdout.fnmatch_lines([f"*baseline file {path} cannot be read*"])
    assert path.read_text() == "{ not json"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--npuperf-device", "tpu"], "--npuperf-device: 'tpu' is not one of auto, npu, cuda, cpu"),
        (["--npuperf-runs", "-1"], "--npuperf-runs: must be >= 1, got -1"),
        (["--npuperf-runs", "five"], "--npuperf-runs: expected an integer, got 'five'"),
        (["--npuperf-warmup", "-2"], "--npuperf-warmup: must be >= 0, got -2"),
        (["--npuperf-tolerance", "e2e_s=abc"], "--npuperf-tolerance e2e_s: expected a fraction*"),
        (["--npuperf-tolerance", "e2e_s=-0.1"], "--npuperf-tolerance e2e_s: must be > 0 and <= 10*"),
        (["--npuperf-tolerance", "speed=0.1"], "*unknown metric 'speed'*"),
        (["--npuperf-tolerance", "e2e_s"], "*expected METRIC=FRACTION*"),
        (["--npuperf-alpha", "0.7"], "--npuperf-alpha: must be > 0 and <= 0.5*"),
        (["--npuperf-model", "no/such/dir"], "--npuperf-model: 'no/such/dir' is neither a built-in model*"),
        (["--npuperf-preset", "huge"], "--npuperf-preset: 'huge' is not one of full, quick"),
        (["--npuperf-runs", "8", "--npuperf-max-runs", "6"], "*cap on runs (6) is below the number of runs (8)"),
    ],
)
def test_bad_option_values_are_usage_errors(npt, args, message):
    npt.fake()
    result = npt.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-npuperf: {message}"])


def test_bad_ini_value_names_the_ini(npt):
    npt.fake()
    npt.pytester.makeini("[pytest]\nnpuperf_runs = 0\n")
    result = npt.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option npuperf_runs: must be >= 1, got 0"])


def test_bad_marker_argument(npt):
    npt.fake(
        "import pytest\n"
        "@pytest.mark.npuperf(tolerance={'e2e_s': 'fast'})\n"
        "def test_generate(npuperf):\n"
        "    npuperf.generate(precision='fp16', batch_size=1, workload='zh_qa')\n"
    )
    result = npt.run()
    result.stdout.fnmatch_lines(["*npuperf marker tolerance e2e_s: expected a fraction*"])
    result.assert_outcomes(errors=1)


def test_unknown_precision_is_a_clear_error(npt):
    npt.fake(
        "def test_generate(npuperf):\n"
        "    npuperf.generate(precision='fp8', batch_size=1, workload='zh_qa')\n"
    )
    result = npt.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown precision 'fp8'; accepted: fp16, bf16*"])
