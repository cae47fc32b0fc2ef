"""Model steps, operators, calibration, device health and regression localization."""

import pytest

torch = pytest.importorskip("torch")

from support.skips import require  # noqa: E402

from pytest_npuperf.devices.cpu import CpuDevice  # noqa: E402
from pytest_npuperf.flows.kernels import OPS, KernelError, op_kernel, step_kernel  # noqa: E402
from pytest_npuperf.judge.compare import Comparison  # noqa: E402
from pytest_npuperf.judge.outcome import TestOutcome, related_regressions  # noqa: E402
from pytest_npuperf.judge.result import Result, Sample, Workload  # noqa: E402
from pytest_npuperf.judge.roofline import check_bandwidth, health_problems, known_peak  # noqa: E402
from pytest_npuperf.judge.stats import OK, REGRESSED, Verdict  # noqa: E402
from pytest_npuperf.model.loader import load_model, model_config  # noqa: E402
from pytest_npuperf.precision import get_precision  # noqa: E402
from pytest_npuperf.stack.compat import output_cache, require_int8  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", get_precision("bf16"), "cpu")


def test_prefill_step_counts(tiny):
    kernel = step_kernel(tiny, "prefill", 2, 16, "cpu")
    out = kernel.fn()
    assert out.logits.shape == (2, 16, 32000)
    cfg = tiny.model.config
    per_token = 2 * (cfg.num_hidden_layers * (128 * 32 * (2 * 4 + 2 * 2) + 3 * 128 * 256) + 128 * 32000)
    assert kernel.flops >= per_token * 2 * 16


def test_decode_step_always_decodes_the_same_position(tiny):
    kernel = step_kernel(tiny, "decode", 2, 24, "cpu")
    for _ in range(3):
        kernel.reset()
        out = kernel.fn()
        assert out.logits.shape == (2, 1, 32000)
        assert output_cache(out).get_seq_length() == 25
    kernel.reset()
    assert output_cache(out).get_seq_length() == 24


def test_unknown_step_or_op():
    with pytest.raises(KernelError, match="unknown step 'train'"):
        step_kernel(None, "train", 1, 1, "cpu")
    with pytest.raises(KernelError, match="unknown operator 'conv'"):
        op_kernel(model_config("tiny"), "conv", 1, "bfloat16", "cpu", "cpu")


@pytest.mark.parametrize("name", OPS)
def test_every_operator_runs_at_config_shapes(name):
    if name.startswith("int8_"):
        require(require_int8, "cpu", name.split("_")[1])
    kernel = op_kernel(model_config("tiny"), name, 8, "bfloat16", "cpu", "cpu")
    out = kernel.fn()
    assert kernel.flops > 0 and kernel.bytes > 0
    assert out is not None


def test_mistral_7b_operator_shapes_come_from_the_config():
    kernel = op_kernel(model_config("mistral-7b"), "gate_proj", 1, "bfloat16", "cpu", "meta")
    assert kernel.flops == 2 * 4096 * 14336
    assert kernel.bytes == 4096 * 14336 * 2 + (4096 + 14336) * 2


def test_known_peaks():
    assert known_peak("NVIDIA H100 80GB HBM3").hbm_tb_s == 3.35
    assert known_peak("NVIDIA H200").hbm_tb_s == 4.8
    assert known_peak("Ascend910B4").hbm_tb_s == 0.8
    assert known_peak("Ascend910B1").hbm_tb_s is None  # not published: never invented
    assert known_peak("AMD EPYC") is None


def test_health_check_flags_a_slow_device():
    base = {"matmul_bfloat16_tflops": 100.0, "copy_gb_s": 1000.0}
    assert health_problems({"matmul_bfloat16_tflops": 95.0, "copy_gb_s": 990.0}, base) == []
    (problem,) = health_problems({"matmul_bfloat16_tflops": 50.0, "copy_gb_s": 990.0}, base)
    assert problem.startswith("matmul_bfloat16_tflops 50 now vs 100 when the baseline was recorded (-50%)")


def test_impossible_bandwidth_is_rejected():
    cal = {"copy_gb_s": 100.0, "copy_buffer_bytes": 1e9}
    assert check_bandwidth(14e9, 0.2, cal, "decode") is None  # 70 GB/s: plausible
    assert check_bandwidth(14e9, 0.13, cal, "decode") is None  # 108 GB/s: within 1.1 x 100
    assert "implies 116.7 GB/s read (14 GB in 120 ms), above 1.1 x the calibrated copy bandwidth of 100.0 GB/s" \
        in check_bandwidth(14e9, 0.12, cal, "decode")
    assert check_bandwidth(1e6, 1e-6, cal, "small") is None  # fits in caches: not judged
    # The published peak is a limit too, also when the calibration came out high.
    fast = {"copy_gb_s": 5000.0, "copy_buffer_bytes": 1e9}
    assert check_bandwidth(14e9, 0.0035, fast, "decode", 4800.0) is None  # 4.0 TB/s
    assert "implies 5185.2 GB/s read (14 GB in 2.7 ms), above the published peak of 4800.0 GB/s" \
        in check_bandwidth(14e9, 0.0027, fast, "decode", 4800.0)


def _outcome(test_id, mode, status, change):
    workload = Workload("tiny", "f", "bf16", 1, ("x",), (1,), 0, mode=mode)
    result = Result(test_id, "cpu-X", workload, [Sample(time_s=1.0)], {}, "")
    verdict = Verdict("time_s", status, change=change)
    return TestOutcome(test_id, result, Comparison(status, [verdict]))


def test_localization_lists_slower_steps_and_ops_worst_first():
    outcomes = {o.test_id: o for o in [
        _outcome("t::test_op[bf16-rms_norm-m8]", "op", OK, 0.01),
        _outcome("t::test_decode[bf16-decode-bs8-ctx2048]", "step-decode", REGRESSED, 0.25),
        _outcome("t::test_op[bf16-attn_decode-ctx2048]", "op", REGRESSED, 0.31),
    ]}
    assert related_regressions(outcomes) == [
        "bf16-attn_decode-ctx2048 time +31.0% (REGRESSED)",
        "bf16-decode-bs8-ctx2048 time +25.0% (REGRESSED)",
    ]


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


def test_regressed_test_is_profiled(npt):
    npt.fake()
    npt.run("--npuperf-save-baseline")
    result = npt.run("--npuperf-profile-dir", "prof", seed=1, NPUPERF_FAKE_SLOWDOWN="fp16-bs8-zh_qa=1.4")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["  profile of one generation: */prof/test_perf.py-test_generate-fp16-bs8-zh_qa-*.txt"])
    (profile,) = (npt.path / "prof").glob("*.txt")  # the fake generation runs no torch operator
    assert profile.exists()


def test_profile_of_a_real_generation_names_the_operators(tiny, tmp_path):
    from pytest_npuperf.devices.profiler import profile_generation
    from pytest_npuperf.flows.measure import make_batch, measure_once
    from pytest_npuperf.model.workloads import batch_prompts

    device = CpuDevice()
    batch = make_batch(tiny, batch_prompts("zh_qa", 2), "cpu")
    path = profile_generation(device, lambda: measure_once(tiny, device, batch, 4), "t::x[bf16-bs2-zh_qa]", tmp_path)
    text = path.read_text()
    assert "Self CPU" in text and "aten::mm" in text


def test_header_shows_calibration_and_peak(npt):
    npt.fake()
    result = npt.run()
    result.stdout.fnmatch_lines(["npuperf calibration: matmul bf16 100 TFLOP/s, fp16 100 TFLOP/s, copy 1e+03 GB/s; "
                                 "no published peak known for Fake Accelerator"])
