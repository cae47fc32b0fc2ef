"""Opt-in: the attribution on real CPU stacks, two environments as the compatibility job builds them
(torch 2.5.1 with transformers 4.57, torch 2.6.0 with transformers 5.x, this package installed in
each), plus a variable. A conftest makes every forward sleep 0.1 s (so that the model's own CPU time,
which differs between the torch releases, is small against it) and 0.3 s where one component is the
new one (tests/fakes/slow_when.py); the command must name that component.

Run with NPUPERF_ATTRIBUTE_ENVS=<torch 2.5.1 python>,<torch 2.6.0 python> (docs/attribution.md);
skipped otherwise.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from fakes import TESTS_DIR

import pytest_npuperf
from pytest_npuperf.cli import main

REPO = Path(pytest_npuperf.__file__).resolve().parent.parent
ENVS = [p for p in os.environ.get("NPUPERF_ATTRIBUTE_ENVS", "").split(",") if p]
pytestmark = [
    pytest.mark.attribution_stacks,
    pytest.mark.skipif(len(ENVS) != 2, reason="set NPUPERF_ATTRIBUTE_ENVS=<torch 2.5.1 python>,<torch 2.6.0 python>"),
]

CONFTEST = f"""
import os, sys, time
sys.path.insert(0, {str(TESTS_DIR)!r})
import pytest_npuperf.flows.session as session_mod
from fakes.slow_when import slowdown
from pytest_npuperf.stack.versions import package_version

_load = session_mod.load_model

def load_model(*args, **kwargs):
    loaded = _load(*args, **kwargs)
    slow = slowdown({{"torch": package_version("torch")}}, os.environ.get("NPUPERF_TEST_SLOW_WHEN", "")) > 1
    delay = 0.3 if slow else 0.1
    loaded.model.register_forward_pre_hook(lambda *a: time.sleep(delay))
    return loaded

session_mod.load_model = load_model
"""
TEST = """
import pytest

pytestmark = pytest.mark.npu

def test_generate(npuperf):
    npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa")
"""
SELECTION = ["test_perf.py", "--npuperf-device", "cpu", "--npuperf-model", "tiny", "--npuperf-max-new-tokens", "4",
             "--npuperf-runs", "3", "--npuperf-max-runs", "5",
             *[f"--npuperf-tolerance={m}=0.5" for m in ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s")]]


@pytest.mark.parametrize("slow, culprit", [("torch=2.6.0*2", ["torch+transformers"]),
                                           ("env.TASK_QUEUE_ENABLE=2*2", ["env:TASK_QUEUE_ENABLE"])])
def test_the_command_names_the_slow_component_of_real_stacks(pytester, monkeypatch, capsys, slow, culprit):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_perf=TEST)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("NPUPERF_TEST_SLOW_WHEN", slow)
    good, bad = ENVS
    stacks = pytester.path / "stacks.json"
    stacks.write_text(json.dumps({"good": {"python": good, "env": {"TASK_QUEUE_ENABLE": "1"}},
                                  "bad": {"python": bad, "env": {"TASK_QUEUE_ENABLE": "2"}}}))
    record = subprocess.run([good, "-m", "pytest", "-p", "no:cacheprovider", *SELECTION, "--npuperf-save-baseline",
                             "--npuperf-baseline-dir=baselines", "--npuperf-results=none"],
                            cwd=pytester.path, env=dict(os.environ, TASK_QUEUE_ENABLE="1"), capture_output=True,
                            text=True, timeout=600)
    assert record.returncode == 0, record.stdout[-3000:]
    code = main(["attribute", "--stacks", str(stacks), "--baseline-dir", str(pytester.path / "baselines"),
                 "--results", str(pytester.path / "attribution.json"), "--", *SELECTION])
    out = capsys.readouterr().out
    found = json.loads((pytester.path / "attribution.json").read_text())["attribution"]
    assert found["conclusion"]["kind"] == "culprit" and found["conclusion"]["members"] == [culprit], out
    assert code == 0
