"""The runner's pure parts: a mix's state from its results JSON, its environment, its command line."""

from pathlib import Path

from support.attribution import upgrade

from pytest_npuperf.attribute import runner
from pytest_npuperf.attribute.probe import without_cann
from pytest_npuperf.attribute.runner import ATTRIBUTING_ENV, Job, World, classify, mix_environment, reproduce_line
from pytest_npuperf.attribute.stacks import StackSpec


def _doc(*statuses, error=""):
    return {"tests": [{"test_id": f"t{i}", "status": s, "error": error,
                       "comparison": {"verdicts": [{"metric": "e2e_s", "status": s, "worse_change": 0.5, "low": 0.4,
                                                    "high": 0.6, "level": 0.95, "gated": True},
                                                   {"metric": "ttft_s", "status": "OK", "gated": False}]}}
                      for i, s in enumerate(statuses)]}


def test_a_mix_regresses_when_any_test_regressed_and_is_clean_only_when_every_test_is():
    assert classify(_doc("OK", "REGRESSED"), ["t0", "t1"])[0] == "regressed"
    assert classify(_doc("OK", "DRIFT", "IMPROVED", "UNCONFIRMED"), [])[:2] == ("clean", "4 test(s) within their budgets")
    assert classify(_doc("OK", "INCONCLUSIVE"), [])[:2] == ("undecided", "inconclusive: t1")
    state, why, tests = classify(_doc("REGRESSED"), ["t0"])
    assert tests["t0"]["verdicts"] == [{"metric": "e2e_s", "status": "REGRESSED", "worse_change": 0.5, "low": 0.4,
                                        "high": 0.6, "level": 0.95}]  # gated verdicts only


def test_a_mix_that_was_not_judged_is_broken():
    assert classify({"tests": []}, [])[:2] == ("broken", "no test was measured")
    assert classify(_doc("OK"), ["t0", "t9"])[:2] == ("broken", "not measured: t9")
    assert classify(_doc("ERROR", error="CUDA out of memory"), [])[:2] == ("broken", "not judged: t0 ERROR (CUDA out of memory)")
    assert classify(_doc("NO_BASELINE"), [])[0] == "broken" and classify(_doc("MISMATCH"), [])[0] == "broken"


def test_a_mix_environment_and_its_reproducing_line(tmp_path):
    plan = upgrade(env_good=None, env_bad="2")
    good_spec, bad_spec = StackSpec("good", "/envs/a/bin/python"), StackSpec("bad", "/envs/b/bin/python")
    cann_env = {"ASCEND_TOOLKIT_HOME": "/ascend/8.5.0", "PATH": "/usr/bin", "TASK_QUEUE_ENABLE": "7"}
    world = World(plan, good_spec, bad_spec, {"PATH": "/usr/bin", "TASK_QUEUE_ENABLE": "9"},
                  {"/ascend/8.5.0/set_env.sh": cann_env})
    keys = [f.key for f in plan.factors]
    mix = plan.mix(frozenset({keys[0]}))  # the new CANN on the good stack: the variable unset
    environ = mix_environment(world, mix)
    assert environ["ASCEND_TOOLKIT_HOME"] == "/ascend/8.5.0" and "TASK_QUEUE_ENABLE" not in environ
    assert environ["PATH"].startswith("/envs/2.5.1-4.57.1/bin:") and environ[ATTRIBUTING_ENV] == "1"
    line = reproduce_line(mix, ["perf_tests", "-k", "bs1 and zh_qa"], Path("/b"))
    assert line == ("source /ascend/8.5.0/set_env.sh && env -u TASK_QUEUE_ENABLE /envs/2.5.1-4.57.1/bin/python -m pytest "
                    "-p no:cacheprovider perf_tests -k 'bs1 and zh_qa' --npuperf-baseline-dir=/b")
    bad = plan.mix(plan.all_keys)
    assert "env TASK_QUEUE_ENABLE=2 /envs/2.6.0-5.20.2/bin/python" in reproduce_line(bad, [], Path("/b"))
    assert mix_environment(world, bad)["TASK_QUEUE_ENABLE"] == "2"


def test_every_trace_of_a_cann_installation_is_removed_before_another_is_sourced(tmp_path):
    environ = {"ASCEND_TOOLKIT_HOME": "/usr/local/Ascend/cann-8.3", "ASCEND_OPP_PATH": "/usr/local/Ascend/cann-8.3/opp",
               "LD_LIBRARY_PATH": "/usr/local/Ascend/cann-8.3/lib64:/usr/lib", "PATH": "/usr/local/Ascend/cann-8.3/bin:/bin",
               "ASCEND_RT_VISIBLE_DEVICES": "0,1", "OTHER": "/usr/local/Ascend/cann-8.3/python", "HOME": "/root"}
    clean = without_cann(environ, ["/usr/local/Ascend/cann-8.3"])
    assert clean == {"LD_LIBRARY_PATH": "/usr/lib", "PATH": "/bin", "ASCEND_RT_VISIBLE_DEVICES": "0,1", "HOME": "/root"}


def _world():
    plan = upgrade(env_good=None, env_bad="2")
    return plan, World(plan, StackSpec("good", "/envs/a/bin/python"), StackSpec("bad", "/envs/b/bin/python"),
                       {"PATH": "/usr/bin"}, {})


def test_a_mix_never_reads_an_earlier_attributions_results(tmp_path, monkeypatch):
    plan, world = _world()
    (tmp_path / "mix1.json").write_text('{"tests": [{"test_id": "t0", "status": "OK", "comparison": {}}]}')
    monkeypatch.setattr(runner, "run_child", lambda *args: 1)  # a child that dies before writing anything
    job = Job(["perf_tests"], tmp_path / "b", tmp_path, 100.0, tmp_path)
    result = runner.run_mix(world, job, plan.mix(frozenset({plan.factors[0].key})), 1, ["t0"], 50.0)
    assert result.state == "broken" and "wrote no results" in result.why


def test_a_mix_whose_interpreter_cannot_start_is_broken(tmp_path, monkeypatch):
    plan, world = _world()

    def cannot_start(*args):
        raise FileNotFoundError(2, "No such file or directory", "/envs/2.5.1-4.57.1/bin/python")

    monkeypatch.setattr(runner, "run_child", cannot_start)
    job = Job(["perf_tests"], tmp_path / "b", tmp_path, 100.0, tmp_path)
    result = runner.run_mix(world, job, plan.mix(frozenset({plan.factors[0].key})), 1, ["t0"], 50.0)
    assert result.state == "broken" and result.why.startswith("the child could not start")
