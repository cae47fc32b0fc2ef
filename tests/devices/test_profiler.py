"""Profiling one generation of a regressed test (devices/profiler.py)."""

from pytest_npuperf.devices.cpu import CpuDevice


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
