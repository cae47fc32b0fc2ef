"""Fresh processes for one test (``--npuperf-confirm``, on by default on npu and cuda).

The largest noise on an accelerator is a shift of the whole process (clocks, placement,
neighbours), so a test that is still undecided, or a regression seen in one process, is run
again in new processes on the same device; the fixture judges the samples of all of them
together, each tagged with its process.

It fails closed: only a child that measured the same workload without an error gives samples.
A child that crashed, timed out, wrote no results, ran out of memory or saw a different workload
gives none, and the parent's verdict stands (an undecided one becomes INCONCLUSIVE, naming why).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional

from ..judge.result import Sample, Workload
from ..judge.stats import DRIFT, IMPROVED, INCONCLUSIVE, OK, REGRESSED

CHILD_ENV = "NPUPERF_CONFIRMING"
# The parent's device index, so that the child measures on the same device (under xdist the
# child is no worker, and would otherwise take device 0 next to worker 0).
DEVICE_INDEX_ENV = "NPUPERF_DEVICE_INDEX"
# The child verdicts that come with measured samples of the same workload.
ACCEPTED = (OK, DRIFT, IMPROVED, REGRESSED, INCONCLUSIVE)
TAIL_LINES = 6


def in_confirmation_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def child_device_index(environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """The device index a confirmation child was told to use (None outside a child)."""
    env = os.environ if environ is None else environ
    text = env.get(DEVICE_INDEX_ENV)
    if text is None or env.get(CHILD_ENV) != "1":
        return None
    try:
        index = int(text)
    except ValueError:
        raise ValueError(f"{DEVICE_INDEX_ENV}={text!r} is not a device index") from None
    if index < 0:
        raise ValueError(f"{DEVICE_INDEX_ENV}={text!r} is not a device index")
    return index


@dataclass
class ChildRun:
    """What the confirmation process did, as far as its parent can tell."""

    outcome: str  # the child's verdict, or what went wrong: CRASHED, NO_RESULTS, ERROR, MISMATCH...
    detail: str = ""
    samples: List[Sample] = field(default_factory=list)
    tail: List[str] = field(default_factory=list)
    exit_code: Optional[int] = None

    @property
    def usable(self) -> bool:
        """Whether its samples may join the parent's."""
        return self.outcome in ACCEPTED and bool(self.samples)

    def account(self) -> str:
        """'fresh process: CRASHED (exit -11); its last lines: ...'."""
        text = f"fresh process: {self.outcome}"
        if self.detail:
            text += f" ({self.detail})"
        if self.tail and not self.usable:
            text += "; its last lines: " + " | ".join(self.tail)
        return text


def _tail(*texts: Any) -> List[str]:
    lines: List[str] = []
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text:
            lines += [line.rstrip() for line in str(text).splitlines() if line.strip()]
    return lines[-TAIL_LINES:]


@dataclass
class ChildProcess:
    """How a child pytest process ended: exit code (None: it did not end by itself) and last lines."""

    exit_code: Optional[int]
    tail: List[str]
    problem: str = ""  # TIMEOUT or NOT_STARTED, with the reason


def run_pytest_child(command: List[str], out: Path, cwd: Path, device_index: int, timeout_s: float,
                     env_extra: Optional[Mapping[str, str]] = None) -> ChildProcess:
    """Run a child pytest (``command``) on ``device_index``, writing its results to ``out``."""
    env = dict(os.environ, **{CHILD_ENV: "1", DEVICE_INDEX_ENV: str(int(device_index))}, **(env_extra or {}))
    try:
        proc = subprocess.run([*command, f"--npuperf-results={out}"], cwd=str(cwd), env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        return ChildProcess(None, _tail(exc.stdout, exc.stderr), f"TIMEOUT: killed after {timeout_s:g}s")
    except OSError as exc:
        return ChildProcess(None, [], f"NOT_STARTED: {type(exc).__name__}: {exc}")
    return ChildProcess(proc.returncode, _tail(proc.stdout, proc.stderr))


def run_child(
    command_prefix: List[str],
    nodeid: str,
    cwd: Path,
    device_index: int,
    workload: Workload,
    timeout_s: float = 3600.0,
) -> ChildRun:
    """Run ``nodeid`` once more in a new pytest process on ``device_index``; read what it did."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "confirm.json"
        child = run_pytest_child([*command_prefix, nodeid], out, cwd, device_index, timeout_s)
        if child.problem:
            outcome, _, detail = child.problem.partition(": ")
            return ChildRun(outcome, detail, tail=child.tail)
        return read_child(out, nodeid, workload, child.exit_code, child.tail)


def read_child(path: Path, nodeid: str, workload: Workload, exit_code: Optional[int], tail: List[str]) -> ChildRun:
    """Judge the child's results file; anything but a valid verdict on the same workload is named."""

    def failed(outcome: str, detail: str) -> ChildRun:
        return ChildRun(outcome, detail, tail=tail, exit_code=exit_code)

    if not path.exists():
        kind = "CRASHED" if exit_code is not None and exit_code < 0 else "NO_RESULTS"
        return failed(kind, f"exit {exit_code}, no results written")
    try:
        tests = json.loads(path.read_text(encoding="utf-8"))["tests"]
        found = [t for t in tests if t.get("test_id") == nodeid]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return failed("UNREADABLE_RESULTS", f"exit {exit_code}: {type(exc).__name__}: {exc}")
    if not found:
        return failed("NOT_RUN", f"exit {exit_code}: the results do not contain this test")
    test = found[0]
    if test.get("error"):
        return failed("ERROR", str(test["error"]).splitlines()[0])
    status = str(test.get("status"))
    data = test.get("result")
    if not isinstance(data, dict):
        return failed(status if status not in ACCEPTED else "NO_RESULTS", f"exit {exit_code}: no measured result")
    try:
        child_workload = Workload.from_dict(data["workload"])
        samples = [Sample.from_dict(s) for s in data["samples"]]
    except (KeyError, TypeError, ValueError) as exc:
        return failed("UNREADABLE_RESULTS", f"{type(exc).__name__}: {exc}")
    differences = workload.differences(child_workload)
    if differences:
        # differences() names the child's workload 'baseline' and ours 'now'.
        return failed("MISMATCH", "it measured another workload: " + "; ".join(
            d.replace("(baseline)", "(confirmation)") for d in differences))
    if status in ACCEPTED and not samples:
        return failed("NO_RESULTS", f"{status} without samples")
    return ChildRun(status, "", samples, tail, exit_code)
