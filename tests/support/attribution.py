"""Synthetic stacks and an oracle that says which mixes regress, for the pure attribution tests."""

from __future__ import annotations

from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

from pytest_npuperf.attribute.plan import CANN, PYTHON, Option, Plan, build_plan, env_option
from pytest_npuperf.attribute.search import BROKEN, CLEAN, NOT_TRIED, REGRESSED, MixResult, search

PIN = {"2.5.1": ("torch==2.5.1+cpu",), "2.6.0": ("torch==2.6.0",)}


def python(origin: str, torch_npu: Optional[str], torch: str, transformers: str, numpy: str = "1.26.4",
           where: str = "") -> Option:
    pins = PIN.get(torch_npu or "", ())
    from pytest_npuperf.attribute.rules import python_problems

    versions = {"torch_npu": torch_npu, "torch": torch, "transformers": transformers}
    return Option(PYTHON, origin, tuple(versions.items()), where or f"/envs/{torch_npu}-{transformers}/bin/python",
                  tuple(python_problems(versions, pins, numpy)), pins)


def cann(origin: str, toolkit: str, kernels: Optional[str] = None) -> Option:
    from pytest_npuperf.attribute.rules import kernels_problem

    kernels = toolkit if kernels is None else kernels
    problem = kernels_problem(toolkit, kernels)
    return Option(CANN, origin, (("cann_toolkit", toolkit), ("cann_kernels", kernels)), f"/ascend/{toolkit}/set_env.sh",
                  (problem,) if problem else ())


def upgrade(env_good: Optional[str] = "1", env_bad: Optional[str] = "2", candidates: Iterable[Option] = ()) -> Plan:
    """CANN 8.3.RC1 -> 8.5.0, torch_npu/torch 2.5.1 -> 2.6.0 (transformers 4.57.1 -> 5.20.2), TASK_QUEUE_ENABLE."""
    good = {CANN: cann("good", "8.3.RC1"), PYTHON: python("good", "2.5.1", "2.5.1+cpu", "4.57.1")}
    bad = {CANN: cann("bad", "8.5.0"), PYTHON: python("bad", "2.6.0", "2.6.0+cpu", "5.20.2")}
    if env_good != env_bad:
        good["env:TASK_QUEUE_ENABLE"] = env_option("TASK_QUEUE_ENABLE", env_good, "good")
        bad["env:TASK_QUEUE_ENABLE"] = env_option("TASK_QUEUE_ENABLE", env_bad, "bad")
    extra: Dict[str, List[Option]] = {}
    for option in candidates:
        extra.setdefault(option.carrier, []).append(option)
    return build_plan(good, bad, extra, {"driver": ("24.1.rc3", "24.1.rc3")})


Oracle = Callable[[FrozenSet[str]], str]


def culprit_oracle(*needed: str) -> Oracle:
    """A mix regresses when it holds every one of ``needed`` (one: a culprit; several: an interaction)."""
    return lambda applied: REGRESSED if set(needed) <= applied else CLEAN


def drive(plan: Plan, oracle: Oracle, broken: Iterable[FrozenSet[str]] = (),
          bisect_above: int = 4) -> Tuple[List[FrozenSet[str]], Dict[FrozenSet[str], MixResult]]:
    """Run the search with ``oracle`` standing in for the measurement: the mixes asked for, in order,
    and every result (mixes that cannot be built are NOT_TRIED, ``broken`` ones BROKEN)."""
    broken = set(broken)
    asked: List[FrozenSet[str]] = []
    results: Dict[FrozenSet[str], MixResult] = {}
    gen = search(plan, bisect_above)
    try:
        applied = next(gen)
        while True:
            asked.append(applied)
            mix = plan.mix(applied)
            if mix.problems:
                result = MixResult(applied, NOT_TRIED, "; ".join(mix.problems))
            elif applied in broken:
                result = MixResult(applied, BROKEN, "the child died")
            else:
                result = MixResult(applied, oracle(applied))
            results[applied] = result
            applied = gen.send(result)
    except StopIteration:
        pass
    return asked, results
