"""The npuperf fixture (fixture.py): budgets, junit properties, a test the stack can no longer
run, and the whole fixture path on the asynchronous fake NPU."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest


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


def test_a_test_with_a_stored_baseline_that_the_stack_can_no_longer_run_fails(npt):
    """Skipping is for what this device never ran; losing a measured test is a regression."""
    npt.fake("""
import os
import pytest

@pytest.mark.npu
def test_case(npuperf):
    if os.environ.get("NPUPERF_TEST_GONE"):
        npuperf.serve("vllm", "bf16", 20.0)  # vLLM absent here: EngineUnavailable
    else:
        npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa")
""")
    npt.run("--npuperf-save-baseline").assert_outcomes(passed=1)
    gone = npt.run(NPUPERF_TEST_GONE="1")
    gone.assert_outcomes(failed=1)
    gone.stdout.fnmatch_lines(["*a baseline of this test is stored for this device, but the stack cannot run it now*"])
    npt.run("--npuperf-save-baseline", NPUPERF_TEST_GONE="1").assert_outcomes(skipped=1)


@pytest.mark.orchestration
def test_fixture_path_on_the_fake_npu_with_confirmation_on_by_default(npu_run):
    # Three warm-ups: a fresh process's first generate calls carry one-off host work.
    common = ("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-max-new-tokens", "4",
              "--npuperf-warmup", "3")
    # One recording process: the tolerance is then the 3% floor, not the between-process noise
    # of a real-time fake on a loaded 2-core machine (which made the verdicts below load-dependent).
    saved = npu_run.run(*common, "--npuperf-save-baseline", "--npuperf-processes", "1")
    saved.assert_outcomes(passed=1)
    saved.stdout.fnmatch_lines(["*npuperf device: npu (Ascend910B3)*timing by npu events*"])
    # The numbers are the device's: 0.3 s prefill, 0.2 s per decode step (the tiny model's CPU
    # time overlaps them; generate's own host work between the steps adds a little).
    samples = _samples(npu_run)
    tpot = sorted(s["tpot_s"] for s in samples)[len(samples) // 2]
    ttft = sorted(s["ttft_s"] for s in samples)[len(samples) // 2]
    # the device time is a floor; the bound above leaves room for a loaded 2-core CI machine
    assert 0.2 <= tpot < 0.2 * 1.5 and 0.3 <= ttft < 0.3 * 1.5, (ttft, tpot)
    # A slowdown in this process only (2x): the fresh processes (on by default on an accelerator)
    # measure the same workload at the baseline's speed, and the samples of all processes decide.
    # One process at 2x and others at 1x cannot be told from a process shift with so few
    # processes: the verdict is INCONCLUSIVE (a pass without --npuperf-strict), or REGRESSED.
    once = npu_run.run(*common, NPUPERF_FAKE_NPU_SLOW_ONCE="1")
    found = re.search(r"(\d+) fresh process\(es\) \(([A-Z, ]+)\); the samples of (\d+) processes against the "
                      r"baseline: (\w+)", once.stdout.str())
    assert found, once.stdout.str()
    children, final = found.group(2).split(", "), found.group(4)
    assert set(children) <= {"OK", "DRIFT", "INCONCLUSIVE"}  # the fresh processes saw the baseline's speed
    assert int(found.group(3)) == len(children) + 1
    # The pass says what it measured of its own noise: the baseline here was recorded in one
    # process, so there is nothing to hold it against (or no test took two fresh processes).
    assert ("this compare pass's own process noise: " in once.stdout.str()
            or "this compare pass measured no between-process noise of its own" in once.stdout.str()), once.stdout.str()
    own = json.loads((npu_run.path / "results.json").read_text(encoding="utf-8"))["run"]["own_noise"]
    assert own["lines"] and all(line in once.stdout.str() for line in own["lines"])  # the JSON says what was said
    if final == "REGRESSED":
        once.assert_outcomes(failed=1)
    else:
        assert final == "INCONCLUSIVE", final
        once.assert_outcomes(passed=1)
        once.stdout.fnmatch_lines(["INCONCLUSIVE test_generate*"])
    # A real slowdown: confirmed in the fresh process, the test fails.
    slow = npu_run.run(*common, NPUPERF_FAKE_NPU_DECODE_S="0.4", NPUPERF_FAKE_NPU_SLOW_ONCE="")
    slow.assert_outcomes(failed=1)
    slow.stdout.fnmatch_lines(["*REGRESSED*"])


def _samples(npu_run: Any) -> Any:
    tests = json.loads((npu_run.path / "results.json").read_text(encoding="utf-8"))["tests"]
    return [s for t in tests for s in t["result"]["samples"]]
