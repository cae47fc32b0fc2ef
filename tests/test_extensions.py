"""The teams' hooks (hookspec.py, called by extensions.py) through the real plugin: stack fields,
workloads, and the results, each implementation called by itself so that a failure names it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import fakes
import pytest

import pytest_npuperf

SAVE = "--npuperf-save-baseline"
ROOT = Path(__file__).resolve().parents[1]
# A child process (confirmation, recording) imports the pytest_npuperf this process imported, also
# where another copy is installed (a git worktree beside an editable install).
SAME_PACKAGE = os.pathsep.join(filter(None, [str(Path(pytest_npuperf.__file__).resolve().parents[1]),
                                             os.environ.get("PYTHONPATH")]))


def _conftest(npt, hooks: str) -> None:
    """The synthetic measurements (tests/fakes/synthetic.py) and the given hook implementations."""
    npt.pytester.makeconftest(fakes.install_conftest("synthetic") + textwrap.dedent(hooks))


def _baseline_entries(npt):
    (path,) = (npt.path / "baselines").rglob("*.json")
    return json.loads(path.read_text())["entries"]


def _results(npt):
    return json.loads((npt.path / "results.json").read_text())


# -- stack fields --------------------------------------------------------------------------------------

STACK_FIELDS = """
import os

def pytest_npuperf_stack_fields(config):
    return {"driver_build": os.environ.get("TEAM_BUILD", "1051"), "image": "perf:1"}
"""


def test_stack_fields_are_recorded_shown_and_named_when_they_change(npt):
    npt.fake()
    _conftest(npt, STACK_FIELDS)
    first = npt.run(SAVE)
    first.assert_outcomes(passed=8)
    first.stdout.fnmatch_lines(["npuperf stack fields from hooks: driver_build=1051, image=perf:1"])
    fields = {"driver_build": "1051", "image": "perf:1"}
    results = _results(npt)
    assert results["run"]["stack"]["hook_fields"] == fields
    assert [t["result"]["stack"]["hook_fields"] for t in results["tests"]] == [fields] * 8
    assert [e["stack"]["hook_fields"] for e in _baseline_entries(npt).values()] == [fields] * 8
    # A new driver build and a slower test: the failure names the field that changed.
    one = "bf16-bs8-en_qa"
    second = npt.run("-k", one, "--npuperf-markdown", "summary.md", seed=1, TEAM_BUILD="1052",
                     NPUPERF_FAKE_SLOWDOWN=f"{one}=1.25")
    second.assert_outcomes(failed=1, deselected=7)
    second.stdout.fnmatch_lines(["*test_generate?bf16-bs8-en_qa?: performance regressed",
                                 "  stack changes since the baseline: driver_build 1051 -> 1052"])
    (test,) = _results(npt)["tests"]
    assert test["comparison"]["stack_changes"] == ["driver_build 1051 -> 1052"]
    assert "driver_build 1051 -> 1052" in (npt.path / "summary.md").read_text()
    # Recorded again: the history keeps the fields the earlier numbers were measured with.
    npt.run(SAVE, "-k", one, seed=2, TEAM_BUILD="1052").assert_outcomes(passed=1, deselected=7)
    entry = _baseline_entries(npt)[f"test_perf.py::test_generate[{one}]"]
    assert entry["stack"]["hook_fields"]["driver_build"] == "1052"
    assert entry["history"][-1]["stack"]["hook_fields"]["driver_build"] == "1051"
    # The HTML report's history names the change at the step it happened.
    npt.run("-k", one, "--npuperf-html", "report.html", seed=3, TEAM_BUILD="1052").assert_outcomes(passed=1, deselected=7)
    assert "driver_build 1051 -&gt; 1052" in (npt.path / "report.html").read_text()


WRAPPER = """
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_npuperf_stack_fields(config):
    return (yield)
"""
FIELDS_HOOK = "pytest-npuperf: the pytest_npuperf_stack_fields hook"
BAD_HOOKS = {
    "not-a-scalar": ("def pytest_npuperf_stack_fields(config):\n    return {'build': ['1', '2']}\n",
                     FIELDS_HOOK + ": plugin {plugin}, field 'build': a list is not a plain JSON scalar; convert it with "
                                   "str(), int() or float()*"),
    "a-built-in-name": ("def pytest_npuperf_stack_fields(config):\n    return {'torch': 'mine'}\n",
                        FIELDS_HOOK + ": plugin {plugin}, field 'torch': the fingerprint records 'torch' itself*"),
    "raises": ("def pytest_npuperf_stack_fields(config):\n    raise RuntimeError('no build id file')\n",
               FIELDS_HOOK + " of plugin {plugin} raised RuntimeError: no build id file"),
    "a-wrapper": (WRAPPER, FIELDS_HOOK + " of plugin {plugin} is a hook wrapper; implement it as a plain hook"),
    "a-workload-taken": ("from pytest_npuperf import Prompt\n\ndef pytest_npuperf_workloads(config):\n"
                         "    return [Prompt('zh_qa', 'another text')]\n",
                         "pytest-npuperf: the pytest_npuperf_workloads hook: plugin {plugin}, item 0: workload 'zh_qa' "
                         "exists already; pass replace=True to replace it, or choose another id"),
}


@pytest.mark.parametrize("hooks,line", list(BAD_HOOKS.values()), ids=list(BAD_HOOKS))
def test_a_bad_hook_ends_every_perf_test_in_an_error_naming_the_plugin(npt, hooks, line):
    npt.fake()
    _conftest(npt, hooks)
    result = npt.run()
    result.assert_outcomes(errors=8)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([line.format(plugin=repr(str(npt.path / "conftest.py")))])
    assert not (npt.path / "results.json").exists()  # nothing measured without what the team asked for


# -- workloads ---------------------------------------------------------------------------------------

WORKLOADS = """
import os
from pytest_npuperf import Prompt

def pytest_npuperf_workloads(config):
    team = Prompt("team_rag", os.environ.get("TEAM_TEXT", "Which quay was built in 1847? Answer briefly."))
    if os.environ.get("TEAM_ZH"):
        return [team, Prompt("zh_qa", os.environ["TEAM_ZH"], replace=True)]
    return [team]
"""

TEAM_SUITE = """
import pytest

pytestmark = pytest.mark.npu

@pytest.mark.parametrize("workload", ["zh_qa", "team_rag"])
def test_generate(npuperf, workload):
    npuperf.generate(precision="bf16", batch_size=2, workload=workload)
"""


def test_a_workload_a_hook_changes_is_another_workload_even_with_the_same_token_ids(npt):
    npt.fake(TEAM_SUITE)
    _conftest(npt, WORKLOADS)
    npt.run(SAVE).assert_outcomes(passed=2)
    workloads = {t["test_id"].split("[")[1][:-1]: t["result"]["workload"] for t in _results(npt)["tests"]}
    assert workloads["team_rag"]["prompt_ids"] == ["team_rag", "b1_translate"]
    assert workloads["zh_qa"]["prompt_texts"] == "" and len(workloads["team_rag"]["prompt_texts"]) == 16
    assert npt.run(seed=1).ret == 0
    # The same length of text: the fake tokenizer gives the very same ids, the text still differs.
    result = npt.run(seed=1, TEAM_TEXT="Which quay was built in 1848? Answer briefly.")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_generate?team_rag?: workload differs from the baseline, so the results are not "
                                 "comparable:", "  prompt_texts: * (baseline) vs * (now)"])
    assert "input_ids_hash" not in result.stdout.str()
    # A built-in workload replaced: its baseline, recorded with the suite's own text, no longer compares.
    replaced = npt.run("-k", "zh_qa", seed=1, TEAM_ZH="请用两句话解释什么是机器学习。")
    replaced.assert_outcomes(failed=1, deselected=1)
    replaced.stdout.fnmatch_lines(["  prompt_texts: none (baseline) vs * (now)"])


TEAM_PLUGIN = """
from pytest_npuperf import Prompt

def pytest_npuperf_workloads(config):
    return [Prompt("team_rag", "Which quay was built in 1847?"), Prompt({replaced!r}, "Explain tides briefly."{flag})]
"""


def _collect_suite(tmp_path, replaced, flag, preset):
    (tmp_path / "team_plugin.py").write_text(TEAM_PLUGIN.format(replaced=replaced, flag=flag))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), SAME_PACKAGE]))
    return subprocess.run([sys.executable, "-m", "pytest", "perf_tests", "-p", "team_plugin", "-m", "npu", "-q",
                           "--collect-only", "-p", "no:cacheprovider", "--npuperf-preset", preset,
                           "--npuperf-device", "cpu"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_suite_runs_a_team_s_workloads_in_every_preset(tmp_path):
    """perf_tests/ parametrizes by the run's workloads; the quick preset keeps those a hook added."""
    quick = _collect_suite(tmp_path, "en_qa", ", replace=True", "quick")
    assert quick.returncode == 0, quick.stdout[-2000:] + quick.stderr[-2000:]
    ids = [line.split("::")[-1] for line in quick.stdout.splitlines() if "test_generation.py::" in line]
    assert "test_generate[bf16-bs1-team_rag]" in ids and "test_generate[bf16-bs1-team_rag-graph]" in ids
    assert "test_generate[bf16-bs1-en_qa]" in ids and not [i for i in ids if "code_gen" in i]
    assert len(ids) == 4 * (4 + 2) * 3  # precisions x (eager batches + graph batches) x (zh_qa, en_qa, team_rag)
    refused = _collect_suite(tmp_path, "en_qa", "", "quick")
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert ("ERROR: pytest-npuperf: the pytest_npuperf_workloads hook: plugin 'team_plugin', item 1: workload 'en_qa' "
            "exists already; pass replace=True to replace it, or choose another id") in refused.stderr


# -- results -----------------------------------------------------------------------------------------

RESULT_HOOKS = """
import json
import os
from pathlib import Path

def _log(config, **line):
    with open(os.environ["TEAM_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(line, pid=os.getpid(), worker=hasattr(config, "workerinput"))) + "\\n")

def pytest_npuperf_test_result(config, nodeid, outcome):
    outcome["status"] = "CHANGED BY A HOOK"  # a copy: nothing else sees it
    _log(config, hook="test", nodeid=nodeid, test_id=outcome["test_id"], passed=outcome["passed"])

def pytest_npuperf_run_results(config, results, path):
    on_disk = json.loads(Path(path).read_text(encoding="utf-8"))
    _log(config, hook="run", path=str(path), tests=len(results["tests"]),
         same_as_disk=json.loads(json.dumps(results)) == on_disk)
"""


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_the_result_hooks_see_each_test_once_and_the_written_document_where_it_is_written(npt, tmp_path, workers):
    if workers:
        pytest.importorskip("xdist")
    npt.fake()
    _conftest(npt, RESULT_HOOKS)
    log = tmp_path / "team.log"
    result = npt.run(*workers, TEAM_LOG=str(log), NPUPERF_FAKE_DEVICES="2")
    result.assert_outcomes(passed=8)
    assert result.ret == 0
    lines = _log(log)
    tests = [line for line in lines if line["hook"] == "test"]
    assert sorted(t["nodeid"] for t in tests) == sorted(t["test_id"] for t in _results(npt)["tests"])
    assert len({t["nodeid"] for t in tests}) == 8 and all(t["nodeid"] == t["test_id"] and t["passed"] for t in tests)
    assert {(line["pid"], line["worker"]) for line in lines} == {(os.getpid(), False)}  # the controller alone
    (run,) = [line for line in lines if line["hook"] == "run"]
    assert run == dict(run, path=str(npt.path / "results.json"), tests=8, same_as_disk=True)
    assert lines[-1] is run  # after every test's
    assert {t["status"] for t in _results(npt)["tests"]} == {"NO_BASELINE"}


def test_a_fresh_confirmation_process_calls_no_result_hook(npt, tmp_path):
    npt.fake()
    npt.run(SAVE)
    _conftest(npt, RESULT_HOOKS)
    log = tmp_path / "team.log"
    one = "fp16-bs1-zh_qa"
    result = npt.run("--npuperf-confirm", "-k", one, seed=1, TEAM_LOG=str(log), NPUPERF_FAKE_SLOWDOWN=f"{one}=1.3",
                     PYTHONPATH=SAME_PACKAGE)
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["  1 fresh process(es) (REGRESSED); *"])
    lines = _log(log)
    assert [line["hook"] for line in lines] == ["test", "run"] and {line["pid"] for line in lines} == {os.getpid()}
    assert lines[0]["passed"] is False


FAILING_RESULT_HOOKS = """
import json
import os

def pytest_npuperf_test_result(config, nodeid, outcome):
    if "bf16" in nodeid:
        raise RuntimeError("dashboard down")

def pytest_npuperf_run_results(config, results, path):
    raise ValueError(f"bad token for {len(results['tests'])} tests")

class TeamDashboard:
    def pytest_npuperf_test_result(self, nodeid):
        with open(os.environ["TEAM_LOG"], "a") as fh:
            fh.write(json.dumps({"nodeid": nodeid}) + "\\n")

    def pytest_npuperf_run_results(self, path):
        with open(os.environ["TEAM_LOG"], "a") as fh:
            fh.write(json.dumps({"run": str(path)}) + "\\n")

def pytest_configure(config):
    config.pluginmanager.register(TeamDashboard(), "team-dashboard")
"""


def test_a_failing_result_hook_is_named_and_fails_the_run_after_everything_is_written(npt, tmp_path):
    npt.fake()
    npt.pytester.makeconftest(fakes.install_conftest("synthetic").replace(
        "def pytest_configure(config):\n    synthetic.install()\n", "") + textwrap.dedent(FAILING_RESULT_HOOKS).replace(
        "def pytest_configure(config):\n", "def pytest_configure(config):\n    synthetic.install()\n"))
    log = tmp_path / "team.log"
    result = npt.run(SAVE, TEAM_LOG=str(log))
    result.assert_outcomes(passed=8)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    plugin = f"'{npt.path / 'conftest.py'}'"
    result.stdout.fnmatch_lines([
        f"npuperf: the pytest_npuperf_test_result hook of plugin {plugin} raised RuntimeError: dashboard down (4 times); "
        "the run fails",
        f"npuperf: the pytest_npuperf_run_results hook of plugin {plugin} raised ValueError: bad token for 8 tests; "
        "the run fails",
    ])
    assert len(_results(npt)["tests"]) == 8 and len(_baseline_entries(npt)) == 8  # nothing lost
    # The other plugin's hooks were called all the same, each with only the arguments it asked for.
    lines = _log(log)
    assert len([line for line in lines if "nodeid" in line]) == 8
    assert lines[-1] == {"run": str(npt.path / "results.json")}
