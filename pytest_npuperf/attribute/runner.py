"""Run the mixes the search asks for, each in a fresh process, and build the attribution report.

Each mix is ``<environment's python> -m pytest <selection>`` in the environment its CANN
``set_env.sh`` makes, with its variables, judged by the suite's own rule against the same baseline
folder and read back from its results JSON. A child that dies, writes no results or leaves a
selected test unmeasured is *broken*: it explains nothing (fail closed). The search stops once one
change (or one set of changes) explains the regression, or when the time budget is spent.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..judge.stats import DRIFT, IMPROVED, INCONCLUSIVE, OK, REGRESSED, UNCONFIRMED, UNDECIDED
from .plan import CANN, ENV_PREFIX, PYTHON, Mix, Option, Plan, build_plan
from .probe import cann_option, cann_roots, fixed_versions, python_option, stack_options, without_cann
from .search import BROKEN, CLEAN, NOT_TRIED, MixResult, conclude, search
from .search import REGRESSED as MIX_REGRESSED
from .search import UNDECIDED as MIX_UNDECIDED
from .stacks import Candidates, StackSpec

# Set in every mix's process: a run inside an attribution never starts another one.
ATTRIBUTING_ENV = "NPUPERF_ATTRIBUTING"
CLEAN_STATUSES = (OK, DRIFT, IMPROVED, UNCONFIRMED)
LOG_TAIL = 600  # characters of a broken child's output kept in the report


@dataclass
class World:
    """The two stacks read: the plan, and the environment each CANN set_env.sh makes."""

    plan: Plan
    good: StackSpec
    bad: StackSpec
    inherited: Dict[str, str]
    cann_envs: Dict[str, Dict[str, str]] = field(default_factory=dict)


def prepare(good: StackSpec, bad: StackSpec, candidates: Candidates, environ: Mapping[str, str]) -> World:
    """Read every stack's versions and build the plan."""
    inherited = dict(environ)
    inherited.pop(ATTRIBUTING_ENV, None)
    scripts = [s for s in (good.cann, bad.cann, *candidates.cann) if s]
    clean = without_cann(inherited, cann_roots(inherited, scripts))
    names = sorted(set(good.env_map) | set(bad.env_map))
    cann_envs: Dict[str, Dict[str, str]] = {}
    sides = []
    for spec, origin in ((good, "good"), (bad, "bad")):
        options, sourced_env = stack_options(spec, origin, clean, inherited, names)
        if sourced_env is not None and spec.cann:
            cann_envs[spec.cann] = sourced_env
        sides.append(options)
    extra: Dict[str, List[Option]] = {PYTHON: [python_option(p, "candidate", inherited) for p in candidates.python]}
    extra[CANN] = []
    for script in candidates.cann:
        option, sourced_env = cann_option(script, "candidate", clean, inherited)
        extra[CANN].append(option)
        if sourced_env is not None:
            cann_envs[script] = sourced_env
    fixed = fixed_versions(inherited)
    plan = build_plan(sides[0], sides[1], extra, {k: (v, v) for k, v in fixed.items()})
    return World(plan, good, bad, inherited, cann_envs)


def mix_environment(world: World, mix: Mix) -> Dict[str, str]:
    """The process environment of a mix: its CANN's, then its variables, its interpreter first on PATH."""
    cann = mix.option(CANN)
    environ = dict(world.cann_envs.get(cann.where, world.inherited) if cann and cann.where else world.inherited)
    for option in mix.options:
        if option.carrier.startswith(ENV_PREFIX):
            name, value = option.carrier[len(ENV_PREFIX):], option.version_map[option.carrier]
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
    python = mix.option(PYTHON)
    if python is not None:
        environ["PATH"] = os.pathsep.join(p for p in (os.path.dirname(python.where), environ.get("PATH", "")) if p)
    environ[ATTRIBUTING_ENV] = "1"
    return environ


def pytest_args(selection: Sequence[str], baseline_dir: Path, results: Optional[Path]) -> List[str]:
    args = ["-m", "pytest", "-p", "no:cacheprovider", *selection, f"--npuperf-baseline-dir={baseline_dir}"]
    return args + ([f"--npuperf-results={results}"] if results else [])


def reproduce_line(mix: Mix, selection: Sequence[str], baseline_dir: Path) -> str:
    """A shell line that runs the tests on this mix again."""
    parts = []
    cann = mix.option(CANN)
    if cann is not None and cann.where:
        parts.append(f"source {shlex.quote(cann.where)} &&")
    unset = [o.carrier[len(ENV_PREFIX):] for o in mix.options if o.carrier.startswith(ENV_PREFIX)
             and o.version_map[o.carrier] is None]
    sets = [f"{o.carrier[len(ENV_PREFIX):]}={shlex.quote(str(o.version_map[o.carrier]))}" for o in mix.options
            if o.carrier.startswith(ENV_PREFIX) and o.version_map[o.carrier] is not None]
    if unset or sets:
        parts.append("env " + " ".join([f"-u {n}" for n in unset] + sets))
    python = mix.option(PYTHON)
    parts.append(shlex.quote(python.where if python else "python"))
    parts += [shlex.quote(a) for a in pytest_args(selection, baseline_dir, None)]
    return " ".join(parts)


def classify(doc: Mapping[str, Any], expected: Sequence[str]) -> Tuple[str, str, Dict[str, Any]]:
    """A mix's state from its results document: regressed when a selected test regressed, else
    broken when one was not judged (not measured, an error, no baseline, another workload), else
    undecided when one was inconclusive, else clean. Also each test's status and gated verdicts."""
    tests = {t.get("test_id"): t for t in doc.get("tests", []) if isinstance(t, dict)}
    summary: Dict[str, Any] = {}
    for tid, test in tests.items():
        verdicts = [{k: v.get(k) for k in ("metric", "status", "worse_change", "low", "high", "level")}
                    for v in ((test.get("comparison") or {}).get("verdicts") or []) if v.get("gated", True)]
        summary[tid] = {"status": test.get("status"), "verdicts": verdicts, "error": test.get("error", "")}
    statuses = {tid: summary[tid]["status"] if tid in summary else None for tid in (expected or list(summary))}
    if not statuses:
        return BROKEN, "no test was measured", summary
    regressed = [t for t, s in statuses.items() if s == REGRESSED]
    if regressed:
        return MIX_REGRESSED, f"{len(regressed)} of {len(statuses)} test(s) regressed", summary
    missing = [t for t, s in statuses.items() if s is None]
    if missing:
        return BROKEN, "not measured: " + ", ".join(missing), summary
    unjudged = [f"{t} {s}" + (f" ({summary[t]['error']})" if summary[t]["error"] else "")
                for t, s in statuses.items() if s not in CLEAN_STATUSES + (INCONCLUSIVE, UNDECIDED)]
    if unjudged:
        return BROKEN, "not judged: " + "; ".join(unjudged), summary
    undecided = [t for t, s in statuses.items() if s in (INCONCLUSIVE, UNDECIDED)]
    if undecided:
        return MIX_UNDECIDED, "inconclusive: " + ", ".join(undecided), summary
    return CLEAN, f"{len(statuses)} test(s) within their budgets", summary


def run_child(command: List[str], environ: Mapping[str, str], cwd: Path, log: Path, timeout: float) -> Optional[int]:
    """Run a child in its own process group, its output into ``log``; None when it ran past
    ``timeout`` (its whole group is then killed)."""
    with open(log, "wb") as out:
        child = subprocess.Popen(command, cwd=cwd, env=dict(environ), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            return child.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return None


@dataclass
class Job:
    """What to run and where: the pytest selection, the baseline folder, a folder for each mix's
    results and output, the time budget, the folder the children run in, and a line printer."""

    selection: List[str]
    baseline_dir: Path
    workdir: Path
    budget_s: float
    cwd: Path
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic


def run_mix(world: World, job: Job, mix: Mix, index: int, expected: Sequence[str], timeout: float) -> MixResult:
    command_line = reproduce_line(mix, job.selection, job.baseline_dir)
    if mix.problems:
        return MixResult(mix.applied, NOT_TRIED, "; ".join(mix.problems), command=command_line)
    results, log = job.workdir / f"mix{index}.json", job.workdir / f"mix{index}.log"
    # A kept --workdir may hold an earlier attribution's files: never read those as this mix's.
    results.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    python = mix.option(PYTHON)
    command = [python.where if python else "python"] + pytest_args(job.selection, job.baseline_dir, results)
    start = job.clock()
    try:
        code = run_child(command, mix_environment(world, mix), job.cwd, log, timeout)
    except OSError as exc:
        return MixResult(mix.applied, BROKEN, f"the child could not start: {exc}", command=command_line)
    seconds = job.clock() - start
    tail = log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:].strip() if log.exists() else ""
    if code is None:
        return MixResult(mix.applied, BROKEN, f"ran past the time left ({timeout:.0f} s); output in {log}",
                         command=command_line, seconds=seconds)
    try:
        doc = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return MixResult(mix.applied, BROKEN, f"the child (exit status {code}) wrote no results: {tail[-300:]}",
                         command=command_line, seconds=seconds)
    state, why, tests = classify(doc, expected)
    return MixResult(mix.applied, state, why, tests, command_line, seconds)


def attribute(world: World, job: Job) -> Dict[str, Any]:
    """Run the search within the budget; the attribution report (a JSON-ready dict)."""
    plan = world.plan
    job.workdir.mkdir(parents=True, exist_ok=True)
    start, results, order = job.clock(), {}, []
    expected: List[str] = []
    stopped = ""
    steps = search(plan)
    try:
        applied = next(steps)
        while True:
            spent = job.clock() - start
            done = [r.seconds for r in results.values() if r.seconds]
            left = job.budget_s - spent
            mix = plan.mix(applied)
            # A mix that is not tried costs nothing: only one that runs must fit in the budget.
            if not mix.problems and (left <= 0 or (done and left < sum(done) / len(done))):
                stopped = (f"the time budget ({job.budget_s:.0f} s) was spent after {len(done)} run(s) "
                           f"({spent:.0f} s)")
                break
            job.say(f"npuperf attribute: {plan.describe(applied)} ...")
            result = run_mix(world, job, mix, len(order) + 1, expected, left)
            job.say(f"npuperf attribute: {plan.describe(applied)}: {result.state} ({result.why}; {result.seconds:.0f} s)")
            if not order and result.state == MIX_REGRESSED:
                expected = list(result.tests)  # later mixes must measure every test the bad stack did
            results[applied] = result
            order.append(applied)
            applied = steps.send(result)
    except StopIteration:
        pass
    return report(world, job, results, order, stopped, job.clock() - start)


def report(world: World, job: Job, results: Mapping[Any, MixResult], order: Sequence[Any], stopped: str,
           spent: float) -> Dict[str, Any]:
    plan = world.plan
    found = conclude(plan, results)
    everything = plan.all_keys

    def ref(applied: Any) -> Optional[int]:
        return order.index(applied) if applied in results else None

    factors = [{"key": f.key, "name": f.name, "carrier": f.carrier, "alone": ref(frozenset({f.key})),
                "reverted": ref(everything - {f.key})} for f in plan.factors]
    mixes = [{"label": plan.describe(a), "applied": sorted(a, key=plan.order), "state": results[a].state,
              "why": results[a].why, "command": results[a].command, "seconds": round(results[a].seconds, 1),
              "tests": results[a].tests} for a in order]
    reproduce = ""
    if found.explained:
        culprit_mix = plan.mix(frozenset(found.members[0]))
        reproduce = reproduce_line(culprit_mix, job.selection, job.baseline_dir)
    return {
        "good": _stack(world.good, plan.good), "bad": _stack(world.bad, plan.bad),
        "fixed": {k: {"good": g, "bad": b, "note": "read, not separable: it changes only with a reboot"}
                  for k, (g, b) in plan.fixed.items()},
        "factors": factors, "inseparable": list(plan.inseparable), "mixes": mixes,
        "conclusion": {"kind": found.kind, "text": found.text, "members": found.members,
                       "explained": found.explained},
        "reproduce": reproduce, "selection": list(job.selection), "baseline_dir": str(job.baseline_dir),
        "budget_s": job.budget_s, "spent_s": round(spent, 1), "stopped": stopped,
    }


def _stack(spec: StackSpec, options: Mapping[str, Option]) -> Dict[str, Any]:
    versions: Dict[str, Any] = {}
    problems: List[str] = []
    for option in options.values():
        versions.update(option.version_map)
        problems += option.problems
    return {"python": spec.python, "cann": spec.cann or "(inherited)", "env": dict(spec.env),
            "versions": versions, "problems": problems}
