"""Settings (settings.py): every value validated once, a bad one naming where it came from and
what is accepted; precedence marker > command line > ini > default; the preset per device."""

import json
import math
import sys
from dataclasses import replace

import pytest

from pytest_npuperf.judge.metrics import METRICS
from pytest_npuperf.modes import get_mode
from pytest_npuperf.settings import SettingsError, build_settings, for_device, marker_overrides, preset_note


def test_an_attribution_file_with_a_bad_stack_is_a_usage_error(npt, tmp_path):
    npt.fake()
    both = tmp_path / "stacks.json"
    both.write_text('{"good": {"python": "%s"}, "bad": {"python": "%s"}}' % (sys.executable, sys.executable))
    result = npt.run(f"--npuperf-attribute={both}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*holds a [[]bad[]] stack, but with --npuperf-attribute the bad stack is the run's own*"])


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
        (["--npuperf-attribute", "no/such/good.toml"], "--npuperf-attribute: *no/such/good.toml: cannot read the stack*"),
        (["--npuperf-attribute-budget", "-5"], "--npuperf-attribute-budget: must be a positive number of seconds*"),
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


def test_bad_summary_mode_is_a_usage_error(npt):
    npt.fake()
    result = npt.run("--npuperf-summary", "long")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--npuperf-summary: 'long' is not one of attention, full"])


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


def test_confirmation_is_on_by_default_for_accelerators_only(tmp_path):
    from pytest_npuperf.settings import build_settings

    default = build_settings({}, tmp_path)
    assert default.confirms("npu") and default.confirms("cuda") and not default.confirms("cpu")
    off = build_settings({"confirm": (False, "--npuperf-no-confirm")}, tmp_path)
    assert not off.confirms("npu")
    on = build_settings({"confirm": (True, "--npuperf-confirm")}, tmp_path)
    assert on.confirms("cpu")


def test_processes_default_to_six_on_accelerators_and_one_on_a_cpu(npt, tmp_path):
    default = build_settings({}, tmp_path)
    assert default.processes_for("npu") == default.processes_for("cuda") == 6 and default.processes_for("cpu") == 1
    assert build_settings({"processes": ("5", "--npuperf-processes")}, tmp_path).processes_for("cpu") == 5
    npt.fake()
    bad = npt.run("--npuperf-processes", "0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--npuperf-processes: must be >= 1, got 0*"])


def test_mode_option(tmp_path):
    assert build_settings({}, tmp_path).modes == ("eager", "graph")
    assert build_settings({"mode": ("graph", "--npuperf-mode")}, tmp_path).modes == ("graph",)
    assert build_settings({"mode": ("all", "--npuperf-mode")}, tmp_path).modes == ("eager", "graph")
    assert "--npuperf-mode=eager" in build_settings({"mode": ("eager", "--npuperf-mode")}, tmp_path).as_args()
    with pytest.raises(SettingsError, match="--npuperf-mode"):
        build_settings({"mode": ("compiled", "--npuperf-mode")}, tmp_path)
    with pytest.raises(ValueError, match="unknown execution mode 'compiled'"):
        get_mode("compiled")
    pinned = build_settings({"graph_backend": ("reduce-overhead", "--npuperf-graph-backend")}, tmp_path)
    assert pinned.graph_backend == "reduce-overhead" and "--npuperf-graph-backend=reduce-overhead" in pinned.as_args()
    with pytest.raises(SettingsError, match="--npuperf-graph-backend"):
        build_settings({"graph_backend": ("aclgraph", "--npuperf-graph-backend")}, tmp_path)


def test_explicit_preset_wins_over_the_cpu_default(npt):
    npt.fake()
    result = npt.run("--npuperf-preset", "full")
    result.stdout.fnmatch_lines(["npuperf: preset=full max_new_tokens=16 *",
                                 "npuperf: 8 tests on cpu (Fake Accelerator), model tiny, preset full: *"])
    assert "the default on a CPU" not in result.stdout.str()


def test_preset_default_is_quick_on_a_cpu_and_full_on_an_accelerator():
    from pytest_npuperf.settings import PRESETS, Settings, for_device, preset_note

    unset = Settings()
    assert for_device(unset, "cpu").preset == "quick"
    assert for_device(unset, "cpu").max_new_tokens == PRESETS["quick"]["max_new_tokens"]
    assert for_device(unset, "cpu").workloads == PRESETS["quick"]["workloads"]
    assert for_device(unset, "npu").preset == "full" and for_device(unset, "cuda").max_new_tokens == 120
    assert for_device(unset, None) == unset  # device unavailable: the tests skip
    assert preset_note(for_device(unset, "cpu"), "cpu").endswith("the full study: --npuperf-preset full")
    given = Settings(preset="full", preset_given=True)
    assert for_device(given, "cpu") == given and preset_note(given, "cpu") == ""
    tokens = Settings(max_new_tokens=16, max_new_tokens_given=True)
    assert for_device(tokens, "cpu").max_new_tokens == 16


# --- build_settings: one message per bad value, naming its source and what is accepted ----------

@pytest.mark.parametrize("raw, message", [
    ({"device": ("tpu", "ini option npuperf_device")}, "ini option npuperf_device: 'tpu' is not one of auto, npu, cuda, cpu"),
    ({"preset": ("huge", "--npuperf-preset")}, "--npuperf-preset: 'huge' is not one of full, quick"),
    ({"summary": ("long", "ini option npuperf_summary")}, "ini option npuperf_summary: 'long' is not one of attention, full"),
    ({"mode": ("compiled", "ini option npuperf_mode")}, "ini option npuperf_mode: 'compiled' is not one of eager, graph, all"),
    ({"graph_backend": ("aclgraph", "--npuperf-graph-backend")},
     "--npuperf-graph-backend: 'aclgraph' is not one of auto, npugraph_ex, reduce-overhead, max-autotune"),
    ({"runs": ("0", "--npuperf-runs")}, "--npuperf-runs: must be >= 1, got 0"),
    ({"warmup": ("two", "ini option npuperf_warmup")}, "ini option npuperf_warmup: expected an integer, got 'two'"),
    ({"max_new_tokens": ("1", "--npuperf-max-new-tokens")}, "--npuperf-max-new-tokens: must be >= 2, got 1"),
    ({"processes": ("0", "ini option npuperf_processes")}, "ini option npuperf_processes: must be >= 1, got 0"),
    ({"runs": ("8", "--npuperf-runs"), "max_runs": ("6", "ini option npuperf_max_runs")},
     "ini option npuperf_max_runs: the cap on runs (6) is below the number of runs (8)"),
    ({"alpha": ("0.7", "--npuperf-alpha")}, "--npuperf-alpha: must be > 0 and <= 0.5, got 0.7"),
    ({"alpha": ("often", "--npuperf-alpha")}, "--npuperf-alpha: expected a fraction such as 0.05 or 5%, got 'often'"),
    ({"tolerance": (["e2e_s=11"], "--npuperf-tolerance")}, "--npuperf-tolerance e2e_s: must be > 0 and <= 10, got 11"),
    ({"tolerance_ini": (["e2e_s 0.1"], "ini option npuperf_tolerance")},
     "ini option npuperf_tolerance: expected METRIC=FRACTION (e.g. e2e_s=0.05), got 'e2e_s 0.1'"),
    ({"tolerance_ini": (["speed=0.1"], "ini option npuperf_tolerance")},
     "ini option npuperf_tolerance: unknown metric 'speed'; known metrics: " + ", ".join(METRICS)),
    ({"baseline_dir": ("  ", "ini option npuperf_baseline_dir")}, "ini option npuperf_baseline_dir: empty path"),
    ({"tolerance": (["serving_ttft_p50_s=0.1"], "--npuperf-tolerance")},
     "--npuperf-tolerance: serving_ttft_p50_s is reported, not gated, so a regression budget for it would change "
     "nothing; to hold it to a limit, give its median one: @pytest.mark.npuperf(budget={'serving_ttft_p50_s': ...}) "
     "or npuperf.assert_budget"),
])
def test_a_bad_value_names_its_source_and_the_accepted_values(tmp_path, raw, message):
    with pytest.raises(SettingsError) as info:
        build_settings(raw, tmp_path)
    assert str(info.value) == message


def test_a_missing_model_folder_names_the_built_in_models(tmp_path):
    with pytest.raises(SettingsError) as info:
        build_settings({"model": ("no/such/dir", "ini option npuperf_model")}, tmp_path)
    assert str(info.value).startswith("ini option npuperf_model: 'no/such/dir' is neither a built-in model "
                                      "(tiny, mistral-7b) nor an existing checkpoint folder")


def test_values_not_given_take_the_defaults(tmp_path):
    settings = build_settings({"runs": (None, "--npuperf-runs"), "device": (None, "ini option npuperf_device")}, tmp_path)
    assert (settings.device, settings.runs, settings.max_runs, settings.warmup) == ("auto", 5, 10, 1)
    assert settings.baseline_dir == tmp_path / "baselines"
    assert settings.results_path == tmp_path / ".npuperf" / "results.json"
    assert build_settings({"runs": ("12", "--npuperf-runs")}, tmp_path).max_runs == 12  # the cap follows the runs
    assert build_settings({"results": ("none", "--npuperf-results")}, tmp_path).results_path is None


# --- precedence: marker > command line > ini > default ----------------------------------------

def test_command_line_tolerances_win_over_the_ini_file(tmp_path):
    settings = build_settings({"tolerance_ini": (["e2e_s=0.10", "ttft_s=20%"], "ini option npuperf_tolerance"),
                               "tolerance": (["e2e_s=0.05"], "--npuperf-tolerance")}, tmp_path)
    assert settings.tolerance_map == {"e2e_s": 0.05, "ttft_s": 0.2}
    assert [a for a in settings.as_args() if a.startswith("--npuperf-tolerance")] == [
        "--npuperf-tolerance=e2e_s=0.05", "--npuperf-tolerance=ttft_s=0.2"]


def test_a_command_line_value_wins_over_the_ini_file(npt):
    npt.fake()
    # The ini's runs would be a usage error; given on the command line, the ini value is not used.
    npt.pytester.makeini("[pytest]\nnpuperf_baseline_dir = baselines\nnpuperf_results = results.json\n"
                         "npuperf_max_new_tokens = 16\nnpuperf_runs = 0\n")
    result = npt.run("--npuperf-runs", "3", "--npuperf-max-new-tokens", "8", "-k", "fp16-bs1-zh_qa")
    result.assert_outcomes(passed=1, deselected=7)
    (test,) = json.loads((npt.path / "results.json").read_text())["tests"]
    assert len(test["result"]["samples"]) == 3
    assert test["result"]["workload"]["max_new_tokens"] == 8


# --- for_device: the preset once the device is known ---------------------------------------

def test_for_device_resolves_the_preset_and_nothing_else(tmp_path):
    given = build_settings({"runs": ("7", "--npuperf-runs"), "tolerance": (["e2e_s=0.1"], "--npuperf-tolerance")}, tmp_path)
    cpu = for_device(given, "cpu")
    assert cpu == replace(given, preset="quick", max_new_tokens=32, workloads=("zh_qa", "en_qa"))
    assert for_device(given, "npu") == given  # full: the default already
    assert preset_note(cpu, "cpu") == ("npuperf: quick preset (the default on a CPU: a pipeline check); the full study: "
                                       "--npuperf-preset full")
    assert preset_note(for_device(given, "cuda"), "cuda") == ""
    tokens = build_settings({"max_new_tokens": ("16", "--npuperf-max-new-tokens")}, tmp_path)
    assert (for_device(tokens, "cpu").preset, for_device(tokens, "cpu").max_new_tokens) == ("quick", 16)
    assert for_device(tokens, "npu").max_new_tokens == 16
    full = build_settings({"preset": ("full", "ini option npuperf_preset")}, tmp_path)
    assert for_device(full, "cpu") == full and preset_note(full, "cpu") == ""


# --- marker_overrides: @pytest.mark.npuperf(tolerance=..., budget=...) ------------------------

def test_marker_overrides_parse_tolerances_and_budgets():
    tolerances, budgets = marker_overrides({"tolerance": {"e2e_s": "5%", "tokens_per_s": 0.1}, "budget": {"ttft_s": "0.5"}},
                                           "t.py::test_x npuperf marker")
    assert tolerances == {"e2e_s": 0.05, "tokens_per_s": 0.1}
    assert budgets == {"ttft_s": 0.5}
    assert marker_overrides({}, "t.py::test_x npuperf marker") == ({}, {})
    # a metric that is only reported may still have an absolute limit on its median
    assert marker_overrides({"budget": {"serving_ttft_p50_s": 0.8}}, "here") == ({}, {"serving_ttft_p50_s": 0.8})


@pytest.mark.parametrize("kwargs, message", [
    ({"tolerance": {}, "budgets": {}}, "here: unknown npuperf marker argument(s) budgets; accepted: tolerance, budget"),
    ({"tolerance": {"speed": 0.1}}, "here tolerance: unknown metric 'speed'; known metrics: " + ", ".join(METRICS)),
    ({"tolerance": {"e2e_s": "fast"}}, "here tolerance e2e_s: expected a fraction such as 0.05 or 5%, got 'fast'"),
    ({"tolerance": {"e2e_s": 0}}, "here tolerance e2e_s: must be > 0 and <= 10, got 0"),
    ({"tolerance": {"peak_rss_bytes": 0.1}}, "here tolerance: peak_rss_bytes is reported, not gated, so a "
     "regression budget for it would change nothing; to hold it to a limit, give its median one: "
     "@pytest.mark.npuperf(budget={'peak_rss_bytes': ...}) or npuperf.assert_budget"),
    ({"budget": {"speed": 1.0}}, "here budget: unknown metric 'speed'; known metrics: " + ", ".join(METRICS)),
    ({"budget": {"e2e_s": "fast"}}, "here budget e2e_s: expected a number, got 'fast'"),
    ({"budget": {"e2e_s": 0}}, "here budget e2e_s: must be a positive number, got 0"),
    ({"budget": {"e2e_s": math.inf}}, "here budget e2e_s: must be a positive number, got inf"),
])
def test_a_bad_marker_argument_names_the_marker_and_the_accepted_values(kwargs, message):
    with pytest.raises(SettingsError) as info:
        marker_overrides(kwargs, "here")
    assert str(info.value) == message


def test_sampling_caps_have_defaults_and_refuse_bad_values(tmp_path):
    default = build_settings({}, tmp_path)
    assert default.max_processes == 10 and default.time_cap_s == 600.0
    given = build_settings({"max_processes": ("3", "--npuperf-max-processes"),
                            "time_cap": ("90s", "--npuperf-time-cap")}, tmp_path)
    assert given.max_processes == 3 and given.time_cap_s == 90.0
    with pytest.raises(SettingsError, match="--npuperf-max-processes: must be >= 1, got 0"):
        build_settings({"max_processes": ("0", "--npuperf-max-processes")}, tmp_path)
    for bad in ("-5", "inf", "soon"):
        with pytest.raises(SettingsError, match="--npuperf-time-cap: "):
            build_settings({"time_cap": (bad, "--npuperf-time-cap")}, tmp_path)
