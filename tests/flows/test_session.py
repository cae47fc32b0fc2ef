"""The measurement session (flows/session.py): out of memory, the workload identity of serving
and operator tests, the header's note on baselines without between-process noise."""

import math

from fakes import synthetic

from pytest_npuperf.flows.serving.engines import DEFAULT_SLOS, SLO, Scenario
from pytest_npuperf.flows.serving.flow import serving_identity
from pytest_npuperf.flows.steps import op_quant_kernel


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


def test_serving_identity_holds_schedule_slos_and_engine_settings():
    base = Scenario(16, 20.0)
    ident = serving_identity(base, None)
    assert serving_identity(Scenario(16, 20.0, seed=1), None) != ident  # other arrival times
    assert serving_identity(Scenario(16, 20.0, burstiness=2.0), None) != ident
    assert serving_identity(Scenario(16, 20.0, slos=(SLO("x", 1.0, 0.05),)), None) != ident
    assert serving_identity(Scenario(16, math.inf), None) == serving_identity(Scenario(16, math.inf, seed=3), None)
    assert "max_batch=8" in ident and DEFAULT_SLOS[0].name in ident
    args = {"model": "/tmp/npuperf-vllm-abc", "gpu_memory_utilization": 0.41, "max_model_len": 512}
    same = dict(args, model="/tmp/npuperf-vllm-xyz", gpu_memory_utilization=0.45)
    assert serving_identity(base, args) == serving_identity(base, same)  # run-to-run details left out
    assert serving_identity(base, dict(args, max_model_len=1024)) != serving_identity(base, args)


def test_int8_operators_name_their_kernel():
    assert op_quant_kernel("int8_w8a16", "npu") == "torch_npu.npu_weight_quant_batchmatmul"
    assert op_quant_kernel("q_proj", "npu") == ""



def test_every_test_starts_on_a_clean_device_so_its_peak_memory_is_its_own(fake_npu, tmp_path, monkeypatch):
    """On the fake NPU's caching allocator: a test after a larger test reads the same peak reserved
    memory as when it runs alone; a peak reset alone would still report the larger test's cache."""
    from pytest_npuperf.devices import resolve_device
    from pytest_npuperf.flows.session import PerfSession
    from pytest_npuperf.settings import build_settings

    gib = 2**30
    device, _ = resolve_device("npu")
    npu = fake_npu.npu
    session = PerfSession(build_settings({}, tmp_path))
    monkeypatch.setattr(session, "device", lambda: device)

    def run_test(test_id, activations):
        session.start(test_id)
        npu._allocate(activations)  # the test's activations, freed after the run but kept cached
        npu._free(activations)
        return device.memory()["peak_reserved_bytes"]

    npu._allocate(10 * gib)  # the model's weights stay
    alone = run_test("small", 1 * gib)
    assert run_test("large", 8 * gib) == 18 * gib
    assert run_test("small", 1 * gib) == alone == 11 * gib
    # what a reset of the peaks alone would have read after the large test: its cache
    npu._allocate(8 * gib)
    npu._free(8 * gib)
    device.reset_peak_memory()
    npu._allocate(1 * gib)
    npu._free(1 * gib)
    assert device.memory()["peak_reserved_bytes"] == 18 * gib


def test_the_session_loads_models_with_the_run_s_prompts_and_adds_hook_fields_to_its_stack(tmp_path, monkeypatch):
    """What the hooks gave reaches the model (int8 fidelity prompts) and the stack, collected before or after."""
    from pytest_npuperf import Prompt
    from pytest_npuperf.flows import session as session_mod
    from pytest_npuperf.model.workloads import with_hook_workloads
    from pytest_npuperf.precision import get_precision
    from pytest_npuperf.settings import build_settings

    loads = []
    monkeypatch.setattr(session_mod, "load_model", lambda *args: loads.append(args) or synthetic._load_model(*args))
    session = session_mod.PerfSession(build_settings({"device": ("cpu", "--npuperf-device")}, tmp_path))
    session.workloads = with_hook_workloads([("p", [Prompt("team_rag", "Which quay was built in 1847?")])])
    session.model(get_precision("bf16"))
    assert loads[0][3] == session.workloads.prompts() and loads[0][3][5].prompt_id == "team_rag"
    assert "hook_fields" not in session.stack and session.stack["device_kind"] == "cpu"
    session.add_stack_fields({"driver_build": "1051"})  # after the stack was collected
    assert session.stack["hook_fields"] == {"driver_build": "1051"} and session.stack["device_kind"] == "cpu"
    later = session_mod.PerfSession(build_settings({"device": ("cpu", "--npuperf-device")}, tmp_path))
    later.add_stack_fields({"image": "perf:1"})  # before
    later.device()
    assert later.stack["hook_fields"] == {"image": "perf:1"} and "torch" in later.stack
