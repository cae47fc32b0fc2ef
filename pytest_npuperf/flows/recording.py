"""Recording a baseline in several fresh processes (``--npuperf-processes N``).

The process that runs pytest is the first; N - 1 more run the same tests, one after another, on
the same device, each a fresh process. Per test, the samples of all processes are pooled and the
CV of the per-process medians of every gated metric is stored as the baseline's noise
(``noise_cv``). Each sample keeps the index of the process that took it: later comparisons
estimate the noise between processes from them (it widens the bounds, never the budget).

Fails closed: a test that did not pass with results in every process is not recorded.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from ..judge.noise import PoolError, noise_of, pool
from ..judge.result import Result
from ..store.baselines import SERVING_LOAD_KEY
from .confirm import run_pytest_child

RECORD_TIMEOUT_S = 4 * 3600.0
# A JSON file {test id: offered load} handed to the recording children: a serving test given as a
# fraction of the capacity runs at the rate the first process measured, so every process runs the
# same workload (the capacity is measured once per baseline, not once per process).
SERVING_LOADS_ENV = "NPUPERF_SERVING_LOADS"


def record_processes(
    command_prefix: List[str],
    first: Dict[str, Result],
    cwd: Path,
    device_index: int,
    processes: int,
    say: Callable[[str], None] = lambda line: None,
    timeout_s: float = RECORD_TIMEOUT_S,
) -> Tuple[Dict[str, Result], List[str]]:
    """Run the tests of ``first`` (this process's results) in ``processes - 1`` more processes.

    Returns the pooled results (``extra['noise_cv']`` holds the noise) of the tests that passed
    in every process, and one line per test that could not be recorded, with the reason.
    """
    runs: Dict[str, List[Result]] = {tid: [result] for tid, result in first.items()}
    problems: Dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # No baseline in the children: they measure, they do not judge.
        command = [*command_prefix, f"--npuperf-baseline-dir={tmp}/none", "--npuperf-processes=1",
                   "--npuperf-no-confirm", *first]
        loads = {tid: r.extra[SERVING_LOAD_KEY] for tid, r in first.items() if SERVING_LOAD_KEY in r.extra}
        env = {}
        if loads:
            (Path(tmp) / "serving_loads.json").write_text(json.dumps(loads), encoding="utf-8")
            env[SERVING_LOADS_ENV] = str(Path(tmp) / "serving_loads.json")
        for i in range(2, processes + 1):
            out = Path(tmp) / f"process{i}.json"
            say(f"npuperf: recording process {i}/{processes} ({len(first)} tests), on device index {device_index}")
            child = run_pytest_child(command, out, cwd, device_index, timeout_s, env)
            found, why = _read(out, child.problem or f"exit {child.exit_code}", child.tail)
            for tid in first:
                if tid in found:
                    runs[tid].append(found[tid])
                else:
                    problems.setdefault(tid, f"process {i}/{processes}: {why.get(tid) or why.get('', '')}")
    pooled: Dict[str, Result] = {}
    for tid, results in runs.items():
        if tid in problems:
            continue
        try:
            merged = pool(results)
        except PoolError as exc:
            problems[tid] = str(exc)
            continue
        merged.extra["noise_cv"] = noise_of(results)
        pooled[tid] = merged
    return pooled, [f"{tid}: {why}" for tid, why in problems.items()]


def _read(path: Path, ended: str, tail: Sequence[str]) -> Tuple[Dict[str, Result], Dict[str, str]]:
    """The passed results of a child's results file, and why each other test is missing."""
    last = f"; its last lines: {' | '.join(tail)}" if tail else ""
    if not path.exists():
        return {}, {"": f"no results written ({ended}){last}"}
    try:
        tests = json.loads(path.read_text(encoding="utf-8"))["tests"]
        found, why = {}, {}
        for test in tests:
            if test.get("passed") and test.get("result") and not test.get("error"):
                found[test["test_id"]] = Result.from_dict(test["result"])
            else:
                why[test["test_id"]] = f"{test.get('status')}, {'passed' if test.get('passed') else 'failed'}" + (
                    f": {str(test['error']).splitlines()[0]}" if test.get("error") else "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return {}, {"": f"results unreadable ({type(exc).__name__}: {exc}){last}"}
    why.setdefault("", f"not in its results ({ended}){last}")
    return found, why
