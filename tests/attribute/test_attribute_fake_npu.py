"""The attribution end to end on the fake NPU: two fake CANN installations (their own set_env.sh and
version files), two Python environments that differ in torch_npu (wrappers of this interpreter with
the release's package metadata), an environment variable, and a slowdown the fake device applies
under one CANN release only (NPUPERF_FAKE_NPU_SLOW_WHEN, tests/fakes/npu_session.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_npuperf
from pytest_npuperf.cli import main
from pytest_npuperf.stack.versions import package_version

REPO = Path(pytest_npuperf.__file__).resolve().parent.parent
# Device times well above the tiny model's host time on a loaded 2-core machine (the timings are
# the device's, whatever the load), few runs, a budget far above the fake's noise and a slowdown
# far beyond the budget.
COMMON = ("--npuperf-device", "npu", "--npuperf-model", "tiny", "--npuperf-max-new-tokens", "3", "--npuperf-warmup",
          "1", "--npuperf-runs", "3", "--npuperf-max-runs", "3", "--npuperf-no-confirm",
          *[f"--npuperf-tolerance={m}=0.5" for m in ("e2e_s", "ttft_s", "tpot_s", "tokens_per_s")])
DEVICE = {"NPUPERF_FAKE_NPU_PREFILL_S": "0.4", "NPUPERF_FAKE_NPU_DECODE_S": "0.3",
          "NPUPERF_FAKE_NPU_SLOW_WHEN": "cann=8.5.0*3"}


def cann_install(root: Path, version: str) -> Path:
    """A CANN installation as CANN 8.5 lays it out: version files and a set_env.sh."""
    home = root / f"cann-{version}"
    (home / "x86_64-linux").mkdir(parents=True)
    (home / "x86_64-linux" / "ascend_toolkit_install.info").write_text(f"package_name=Ascend-cann-toolkit\nversion={version}\n")
    (home / "x86_64-linux" / "ascend_ops_install.info").write_text(f"package_name=Ascend-cann-ops\nversion={version}\n")
    (home / "set_env.sh").write_text(f'export ASCEND_TOOLKIT_HOME="{home}"\nexport ASCEND_HOME_PATH="{home}"\n'
                                     f'export LD_LIBRARY_PATH="{home}/lib64:${{LD_LIBRARY_PATH:-}}"\n')
    return home / "set_env.sh"


def python_env(root: Path, name: str, torch_npu: str, before: str = "") -> Path:
    """An environment whose torch_npu is ``torch_npu`` (package metadata pinning the installed torch;
    the fake device of that release), this checkout's package first on the path."""
    site = root / name / "site"
    dist = site / f"torch_npu-{torch_npu}.dist-info"
    dist.mkdir(parents=True)
    torch = package_version("torch").split("+")[0]
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch_npu\nVersion: {torch_npu}\n"
                                   f"Requires-Dist: torch=={torch}\n")
    python = root / name / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\n{before}export PYTHONPATH="{site}:{REPO}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
                      f'export NPUPERF_FAKE_NPU_RELEASE={torch_npu}\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return python


def stacks_file(root: Path, bad_python: Path, env_good: str, env_bad: str) -> Path:
    good = python_env(root, "env-2.5.1", "2.5.1")
    path = root / "stacks.json"
    path.write_text(json.dumps({
        "good": {"python": str(good), "cann": str(cann_install(root, "8.3.RC1")), "env": {"TASK_QUEUE_ENABLE": env_good}},
        "bad": {"python": str(bad_python), "cann": str(cann_install(root, "8.5.0")), "env": {"TASK_QUEUE_ENABLE": env_bad}},
    }))
    return path


def attribute(npu_run, stacks: Path, capsys):
    """Record the baseline on the good stack (in a fresh process, as every mix runs), then attribute."""
    for key, value in DEVICE.items():
        npu_run.monkeypatch.setenv(key, value)
    good = json.loads(stacks.read_text())["good"]
    record = (f"source {good['cann']} && TASK_QUEUE_ENABLE={good['env']['TASK_QUEUE_ENABLE']} {good['python']} -m pytest "
              f"-p no:cacheprovider test_perf.py {' '.join(COMMON)} --npuperf-save-baseline --npuperf-processes 1")
    saved = subprocess.run(["bash", "-c", record], cwd=npu_run.path, capture_output=True, text=True, timeout=600)
    assert saved.returncode == 0, saved.stdout[-2000:]
    code = main(["attribute", "--stacks", str(stacks), "--baseline-dir", str(npu_run.path / "baselines"),
                 "--results", str(npu_run.path / "attribution.json"), "--html", str(npu_run.path / "attribution.html"),
                 "--", "test_perf.py", *COMMON])
    out = capsys.readouterr().out
    return code, out, json.loads((npu_run.path / "attribution.json").read_text())["attribution"]


@pytest.mark.orchestration
def test_the_command_names_the_cann_release_that_slows_the_device(npu_run, tmp_path, capsys):
    bad = python_env(tmp_path, "env-2.6.0", "2.6.0")
    code, out, found = attribute(npu_run, stacks_file(tmp_path, bad, "1", "2"), capsys)
    assert found["conclusion"]["kind"] == "culprit", out
    assert code == 0
    assert [f["name"] for f in found["factors"]] == [
        "CANN toolkit 8.3.RC1 -> 8.5.0 with CANN kernels 8.3.RC1 -> 8.5.0", "torch_npu 2.5.1 -> 2.6.0",
        "env TASK_QUEUE_ENABLE 1 -> 2"]
    assert found["conclusion"]["members"] == [["cann_toolkit+cann_kernels"]]
    # The bad and good stacks, the bad one with the old CANN (clean), the good one with the new (slow): stop.
    assert [m["label"] for m in found["mixes"]] == [
        "bad stack", "good stack", "bad stack with the old CANN toolkit and CANN kernels",
        "good stack + the new CANN toolkit and CANN kernels"]
    assert [m["state"] for m in found["mixes"]] == ["regressed", "clean", "clean", "regressed"]
    assert "attribution: CULPRIT: CANN toolkit 8.3.RC1 -> 8.5.0" in out
    assert "applied alone to the good stack: regressed: test_generate e2e_s +" in out
    assert "reverted alone in the bad stack: clean: test_generate e2e_s " in out
    # The reproducing command: the new CANN, everything else the good stack's; run, it regresses.
    line = found["reproduce"]
    assert line.startswith(f"source {tmp_path / 'cann-8.5.0' / 'set_env.sh'} && env TASK_QUEUE_ENABLE=1 "
                           f"{tmp_path / 'env-2.5.1' / 'bin' / 'python'} -m pytest"), line
    subprocess.run(["bash", "-c", f"{line} --npuperf-results=again.json"], cwd=npu_run.path, capture_output=True,
                   timeout=600)
    again = json.loads((npu_run.path / "again.json").read_text())["tests"]
    assert [t["status"] for t in again] == ["REGRESSED"]
    assert "Which change caused it" in (npu_run.path / "attribution.html").read_text()


@pytest.mark.orchestration
def test_a_mix_whose_environment_cannot_import_is_reported_and_never_blamed(npu_run, tmp_path, capsys):
    # torch_npu 2.6.0's environment does not import under CANN 8.3.RC1 (as a torch_npu built for a
    # newer CANN fails to load its libraries): the bad stack with the old CANN is broken.
    refuse = ('case "$ASCEND_TOOLKIT_HOME" in *8.3.RC1*) echo "ImportError: libascendcl.so: undefined symbol" >&2;'
              ' exit 1;; esac\n')
    bad = python_env(tmp_path, "env-2.6.0", "2.6.0", before=refuse)
    code, out, found = attribute(npu_run, stacks_file(tmp_path, bad, "1", "1"), capsys)
    states = {tuple(m["applied"]): m["state"] for m in found["mixes"]}
    assert states[("torch_npu",)] == "broken", out  # the bad stack with the old CANN
    assert states[("cann_toolkit+cann_kernels",)] == "regressed"
    # The CANN release regresses alone, but reverting it alone could not be tried: not explained.
    assert found["conclusion"]["kind"] == "partly explained" and code == 1
    assert "good stack + the new torch_npu: broken, never blamed: the child (exit status 1) wrote no results: " \
           "ImportError: libascendcl.so: undefined symbol" in out
    assert "attribution: PARTLY EXPLAINED: applied alone, the new CANN toolkit and CANN kernels regressed the good " \
           "stack; that reverting it recovers the bad stack was not shown" in out
    assert found["reproduce"] == ""


@pytest.mark.parametrize("stack, message", [({"good": {"python": sys.executable}}, "the bad stack is not given")])
def test_the_command_refuses_incomplete_input(tmp_path, capsys, stack, message):
    path = tmp_path / "stacks.json"
    path.write_text(json.dumps(stack))
    assert main(["attribute", "--stacks", str(path), "--", "perf_tests"]) == 2
    assert message in capsys.readouterr().err
    assert main(["attribute", "--good", str(path), "--bad", str(path), "--", "perf_tests",
                 "--npuperf-results=x.json"]) == 2
    assert "may not hold --npuperf-results=x.json" in capsys.readouterr().err
    assert main(["attribute", "--good", str(path), "--bad", str(path)]) == 2
    assert "give the pytest selection after --" in capsys.readouterr().err
