"""The plugin end to end through pytester: options and markers, verdicts, what is saved and
written, xdist, progress and the device's health; with synthetic measurements
(tests/fakes/synthetic.py), and real runs of the tiny model (eager, and graph mode on the CPU's
inductor)."""

import json
import textwrap

import pytest
import torch
from support.skips import require

from pytest_npuperf.devices.graph_backend import cpu_compiler
from pytest_npuperf.model.loader import load_model
from pytest_npuperf.precision import get_precision
from pytest_npuperf.stack import compat

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
            "  REGRESSED e2e_s: baseline *ms -> now *ms, +2?.?% worse, at least +2?.?%, at most +2?.?% (95%), budget 3.0%, "
            "1 + 1 processes (5 + 5 samples), noise from within one process only*",
            "  REGRESSED tpot_s: *",
            "  REGRESSED tokens_per_s: *",
            "  stack changes since the baseline: env TASK_QUEUE_ENABLE unknown -> 2",
            "FAILED test_perf.py::test_generate?bf16-bs8-en_qa? - *",
        ]
    )


def test_small_slowdown_within_the_budget_is_not_a_failure(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs1-zh_qa=1.02")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*fp16-bs1-zh_qa?: DRIFT: a clear change, but inside the budget"])


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


def test_memory_regression_compares_the_medians(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(seed=1, NPUPERF_FAKE_MEMORY="fp16-bs8-zh_qa=1.3")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["  REGRESSED peak_allocated_bytes: *, +30.0% worse, budget *% (deterministic: medians compared)"])


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


def test_force_saves_failing_tests(npt):
    npt.fake()
    npt.run(SAVE)
    result = npt.run(SAVE, "--npuperf-force", seed=2, NPUPERF_FAKE_MEMORY="fp16-bs1-zh_qa=3")
    result.assert_outcomes(passed=8)  # in save mode a regression warns; the new numbers are recorded
    entry = json.loads(baseline_file(npt).read_text())["entries"]["test_perf.py::test_generate[fp16-bs1-zh_qa]"]
    assert entry["samples"][0]["peak_allocated_bytes"] == 3 * 510 * 2**20


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


def test_calibration_stored_with_results_and_health_warning(npt):
    npt.fake()
    npt.run("--npuperf-save-baseline")
    result = npt.run(NPUPERF_FAKE_CALIBRATION_SCALE="0.5")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*device health: the calibration is clearly below the baseline's: "
                                 "matmul_bfloat16_tflops 50 now vs 100 *(-50%)*"])
    strict = npt.run("--npuperf-strict", NPUPERF_FAKE_CALIBRATION_SCALE="0.5")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*stopped by --npuperf-strict*"])


def test_xdist_one_worker_per_device_results_merged_on_the_controller(npt):
    pytest.importorskip("xdist")
    npt.fake()
    result = npt.run("-n", "2", SAVE, NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*npuperf summary*", "verdicts: NO_BASELINE 8", "*saved 8 baseline entries*"])
    data = json.loads((npt.path / "results.json").read_text())
    assert len(data["tests"]) == 8 and all(len(t["result"]["samples"]) == 5 for t in data["tests"])
    (path,) = (npt.path / "baselines").rglob("*.json")
    assert len(json.loads(path.read_text())["entries"]) == 8


def test_verbose_runs_show_progress_with_what_is_left_per_kind(npt):
    npt.fake()
    result = npt.run("-v")
    result.stdout.fnmatch_lines([
        "npuperf ?1/8? fp16-bs1-zh_qa: 5 runs, NO_BASELINE; elapsed *, about * left (generation: 7 left, about *)",
        "npuperf ?8/8? bf16-bs8-en_qa: 5 runs, NO_BASELINE; elapsed *, about 0s left",
    ])




MODE_SUITE = """
import pytest

pytestmark = pytest.mark.npu

@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("batch_size", [1, 8], ids=lambda b: f"bs{b}")
def test_generate(npuperf, batch_size, mode):
    npuperf.generate(precision="bf16", batch_size=batch_size, workload="zh_qa")

def test_plain(npuperf):
    npuperf.generate(precision="bf16", batch_size=1, workload="en_qa")
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_wall_time_per_mode_comes_from_the_mode_parameter(npt, workers):
    if workers:
        pytest.importorskip("xdist")
    npt.fake(MODE_SUITE)
    result = npt.run(*workers, NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["npuperf: 5 tests on *", "wall time: eager * s (3 tests), graph * s (2 tests)"])
    wall = json.loads((npt.path / "results.json").read_text())["run"]["wall_time"]
    assert sorted(wall) == ["eager", "graph"] and [wall[m]["tests"] for m in ("eager", "graph")] == [3, 2]
    assert all(wall[m]["wall_s"] >= 0 for m in wall)


def test_suite_end_to_end_on_the_tiny_model(npt):
    npt.pytester.makepyfile(
        test_perf="""
        import pytest

        @pytest.mark.npu
        @pytest.mark.parametrize("batch_size", [1, 2], ids=lambda b: f"bs{b}")
        def test_generate(npuperf, batch_size):
            npuperf.generate(precision="bf16", batch_size=batch_size, workload="zh_qa")
        """
    )
    args = ("--npuperf-device", "cpu", "--npuperf-max-new-tokens", "4", "--npuperf-runs", "5")
    first = npt.run(*args, "--npuperf-save-baseline", "--npuperf-summary=full")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["npuperf device: cpu (*), profile 'cpu-*', model tiny, *",
                                "bs1*e2e_s*NO_BASELINE", "*saved 2 baseline entries*"])
    # The comparison machinery on real numbers. The verdict itself depends on real noise (and a
    # second session inside one process runs slower than a fresh process), so only the
    # machinery is checked here: every test compared, metric by metric, against its baseline.
    second = npt.run(*args)
    assert second.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    outcomes = second.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2 and "error" not in outcomes
    data = json.loads((npt.path / "results.json").read_text())
    assert len(data["tests"]) == 2
    for test in data["tests"]:
        verdicts = {v["metric"]: v for v in test["comparison"]["verdicts"]}
        assert {"e2e_s", "ttft_s", "tpot_s", "tokens_per_s", "peak_rss_bytes"} <= set(verdicts)
        assert all(v["baseline_median"] > 0 and v["status"] in ("OK", "DRIFT", "IMPROVED", "REGRESSED", "INCONCLUSIVE")
                   for v in verdicts.values())
    sample = data["tests"][0]["result"]["samples"][0]
    assert sample["output_tokens"] == [4]
    assert data["run"]["stack"]["torch"].startswith(torch.__version__.split("+")[0])


def test_graph_mode_through_the_plugin(npt):
    """Generation in both modes and a decode step in graph mode, recorded through the plugin on
    the CPU's real backend (inductor)."""
    require(cpu_compiler)
    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    require(compat.require_graph_mode, loaded.model)
    npt.pytester.makepyfile(
        test_perf="""
        import pytest

        @pytest.mark.npu
        @pytest.mark.parametrize("mode", ["eager", "graph"])
        def test_generate(npuperf, mode):
            npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa", mode=mode)

        @pytest.mark.npu
        @pytest.mark.parametrize("mode", ["graph"])
        def test_decode(npuperf, mode):
            npuperf.step("decode", "bf16", 1, 64, mode=mode)
        """
    )
    # Fresh processes, as the suite runs: a second session inside one process would import
    # inductor's modules again, which they do not allow.
    args = ("-p", "no:cacheprovider", "--npuperf-device", "cpu", "--npuperf-max-new-tokens", "4",
            "--npuperf-runs", "3")
    first = npt.pytester.runpytest_subprocess(*args, "--npuperf-save-baseline")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["*wall time: eager * s (1 tests), graph * s (2 tests)*", "graph mode: 2 tests:*", "*inductor*"])
    data = json.loads((npt.path / "results.json").read_text())
    tests = {t["test_id"].split("::")[-1]: t for t in data["tests"]}
    graph = tests["test_generate[graph]"]["result"]
    eager = tests["test_generate[eager]"]["result"]
    assert graph["extra"]["execution_mode"] == "graph" and eager["extra"]["execution_mode"] == "eager"
    assert graph["workload"]["mode"] == "graph-greedy-fixed-length" and eager["workload"]["graph"] == ""
    assert "inductor" in graph["workload"]["graph"] and "cache=static(1024)" in graph["workload"]["generation"]
    info = graph["extra"]["graph"]
    assert info["backend"] == "inductor" and info["graphs"] == 1 and info["compile_s"] > 0
    assert info["agreement"]["logits_cosine"] >= 0.999
    assert all(s["compile_s"] == info["compile_s"] and s["graph_compiles"] == 1 for s in graph["samples"])
    assert all(s["output_tokens"] == [4] for s in graph["samples"])
    assert graph["extra"]["decode_fraction_of_copy"] > 0 and graph["extra"]["decode_fraction_of_peak"] is None
    # the decode step at context 64 shares the generation's compiled shape (batch 1, cache 1024)
    step = tests["test_decode[graph]"]["result"]
    assert step["workload"]["mode"] == "step-decode-graph"
    assert step["extra"]["graph"]["compile_s"] == info["compile_s"]


def test_a_broken_accelerator_install_fails_the_perf_tests_instead_of_measuring_the_cpu(npt, monkeypatch):
    """An NPU in the machine that torch cannot use (torch_npu missing here) is an error with the
    reason, not a quiet CPU run that passes; the CPU chosen on purpose still runs."""
    import pytest_npuperf.devices as devices

    npt.fake()
    monkeypatch.setattr(devices, "hardware_present", lambda kind: "/dev/davinci0" if kind == "npu" else "")
    result = npt.run("-k", "fp16-bs1-zh_qa")
    result.assert_outcomes(errors=1, deselected=7)
    result.stdout.fnmatch_lines(["*this machine has a NPU (/dev/davinci0) but torch cannot use it: torch_npu is not "
                                 "installed*pass --npuperf-device cpu*"])
    npt.run("-k", "fp16-bs1-zh_qa", "--npuperf-device", "cpu").assert_outcomes(passed=1, deselected=7)
