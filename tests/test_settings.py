"""Settings (settings.py): every value validated once, a bad one naming where it came from and
what is accepted; precedence marker > command line > ini > default; the preset per device."""

import json

import pytest

from pytest_npuperf.flows.graph.plan import check_mode
from pytest_npuperf.settings import SettingsError, build_settings


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


def test_processes_default_to_three_on_accelerators_and_one_on_a_cpu(npt, tmp_path):
    default = build_settings({}, tmp_path)
    assert default.processes_for("npu") == default.processes_for("cuda") == 3 and default.processes_for("cpu") == 1
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
        check_mode("compiled")
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
