"""Which mixes to run, in which order, and what the results so far explain.

Evidence is read under one assumption, monotonicity: adding changes to a stack that carries the
regression never removes it (a set of changes that regresses regresses with more changes too; a
set that is clean is clean with fewer). Then:

- a *minimal* regressing set is one that regressed while each set one change smaller is clean;
- it is *necessary* when the bad stack with any one of its changes reverted is clean;
- a minimal and necessary set explains the regression: one change is the culprit, several are an
  interaction ("slower only with the new CANN toolkit and the new torch_npu together").

The search (``search``) runs the bad and the good stack first, then one factor at a time (each
change reverted from the bad stack, and applied alone to the good one) or, above
``BISECT_ABOVE`` factors, a bisection over the ordered changes; it stops as soon as one set
explains the regression. A mix that broke, stayed undecided or could not be built is evidence of
nothing: it never clears nor blames a change (fail closed).

Pure: the runner sends each mix's result in and receives the next set of changes to run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Generator, List, Mapping, Optional, Sequence

from .plan import Plan

REGRESSED, CLEAN, UNDECIDED, BROKEN, NOT_TRIED = "regressed", "clean", "undecided", "broken", "not tried"
# Conclusions: the first two explain the regression.
CULPRIT, INTERACTION = "culprit", "interaction"
SEVERAL, PARTIAL = "several", "partly explained"
NOT_REPRODUCED, OUTSIDE, UNATTRIBUTED = "not reproduced", "outside the swapped components", "unattributed"
EXPLAINED = (CULPRIT, INTERACTION)
BISECT_ABOVE = 4  # factors; above this many, bisect over the ordered changes

Applied = FrozenSet[str]


@dataclass
class MixResult:
    """What one mix gave: its state and why, each test's verdicts (as in the results JSON), the
    command that reproduces it and the seconds it took."""

    applied: Applied
    state: str
    why: str = ""
    tests: Dict[str, Any] = field(default_factory=dict)
    command: str = ""
    seconds: float = 0.0


@dataclass
class Conclusion:
    kind: str
    text: str
    members: List[List[str]] = field(default_factory=list)  # factor keys of each explaining set

    @property
    def explained(self) -> bool:
        return self.kind in EXPLAINED


def _names(plan: Plan, keys: Sequence[str]) -> str:
    return " and ".join(plan.factor(k).short for k in sorted(keys, key=plan.order))


def conclude(plan: Plan, results: Mapping[Applied, MixResult]) -> Conclusion:
    """What ``results`` explain (every mix that did not end clean or regressed explains nothing)."""
    everything, nothing = plan.all_keys, frozenset()
    if not plan.factors:
        return Conclusion(OUTSIDE, "the good and the bad stack differ in no component that can be swapped: the "
                                   "cause is the driver, the firmware, the machine, or the baseline")
    bad, good = results.get(everything), results.get(nothing)
    if bad is None or bad.state != REGRESSED:
        if bad is not None and bad.state == CLEAN:
            return Conclusion(NOT_REPRODUCED, "the bad stack did not regress in a fresh process: nothing to attribute")
        return Conclusion(UNATTRIBUTED, "the bad stack " + (f"was {bad.state}: {bad.why}" if bad else "was not run"))
    if good is None or good.state != CLEAN:
        if good is not None and good.state == REGRESSED:
            return Conclusion(OUTSIDE, "the good stack regressed against the baseline too: the cause is not among "
                                       "the swapped components (the driver, the firmware, the machine, or a baseline "
                                       "recorded elsewhere)")
        return Conclusion(UNATTRIBUTED, "the good stack " + (f"was {good.state}: {good.why}" if good else "was not run"))
    clean = [s for s, r in results.items() if r.state == CLEAN]
    regressed = [s for s, r in results.items() if r.state == REGRESSED]
    contradiction = next(((r, c) for r in regressed for c in clean if r <= c), None)
    if contradiction:
        r, c = contradiction
        return Conclusion(UNATTRIBUTED, f"the evidence contradicts itself: {plan.describe(r)} regressed but "
                                        f"{plan.describe(c)}, which holds more changes, did not (noise, or a change "
                                        "that hides another's slowdown)")

    def implied_clean(s: Applied) -> bool:
        return any(s <= c for c in clean)

    minimal = [r for r in sorted(regressed, key=len) if all(implied_clean(r - {k}) for k in r)]
    necessary = [s for s in minimal if all(implied_clean(everything - {k}) for k in s)]
    if len(minimal) == 1 and necessary:
        keys = sorted(necessary[0], key=plan.order)
        if len(keys) == 1:
            return Conclusion(CULPRIT, f"{plan.factor(keys[0]).name}: it alone regresses the good stack, and "
                                       "reverting it alone recovers the bad one", [keys])
        return Conclusion(INTERACTION, f"slower only with {_names(plan, keys)} together: none of them alone "
                                       "regresses, and reverting any one of them recovers the bad stack", [keys])
    if minimal:
        sets = [sorted(s, key=plan.order) for s in minimal]
        if len(sets) > 1 and all(len(s) == 1 for s in sets):
            return Conclusion(SEVERAL, "each of these regresses the good stack alone: "
                              + "; ".join(plan.factor(s[0]).name for s in sets), sets)
        return Conclusion(PARTIAL, "; ".join(
            f"applied {'alone' if len(s) == 1 else 'together'}, {_names(plan, s)} regressed the good stack" for s in sets)
            + "; that reverting it recovers the bad stack was not shown", sets)
    gaps = [f"{plan.describe(s)}: {r.state} ({r.why})" for s, r in results.items() if r.state not in (CLEAN, REGRESSED)]
    return Conclusion(UNATTRIBUTED, "no set of changes was shown to regress on its own"
                      + (": " + "; ".join(gaps) if gaps else ""))


Search = Generator[Applied, MixResult, None]


def search(plan: Plan, bisect_above: int = BISECT_ABOVE) -> Search:
    """Yield the next set of changes to run; receive its result; stop once explained (or stuck)."""
    seen: Dict[Applied, MixResult] = {}

    def run(applied: Applied) -> Generator[Applied, MixResult, MixResult]:
        if applied not in seen:
            seen[applied] = yield applied
        return seen[applied]

    everything = plan.all_keys
    if not plan.factors:
        return
    if (yield from run(everything)).state != REGRESSED or (yield from run(frozenset())).state != CLEAN:
        return
    if conclude(plan, seen).explained:
        return
    keys = [f.key for f in plan.factors]
    if len(keys) > bisect_above:
        yield from _bisect(plan, keys, seen, run)
    else:
        yield from _one_at_a_time(plan, keys, seen, run)


def _one_at_a_time(plan: Plan, keys: List[str], seen: Dict[Applied, MixResult], run: Any) -> Search:
    everything = plan.all_keys
    for k in keys:  # which changes are needed: revert each alone; those that recover, apply alone
        back = yield from run(everything - {k})
        if back.state in (CLEAN, NOT_TRIED):
            yield from run(frozenset({k}))
        if conclude(plan, seen).explained:
            return
    needed = frozenset(k for k in keys if getattr(seen.get(everything - {k}), "state", "") == CLEAN)
    if len(needed) > 1:
        yield from run(needed)
        if conclude(plan, seen).explained:
            return
    for k in keys:  # none needed on its own: which ones regress alone
        yield from run(frozenset({k}))
        if conclude(plan, seen).explained:
            return


def _first_change(prefix: Any, lo: int, hi: int, run: Any) -> Generator[Applied, MixResult, Optional[int]]:
    """The smallest k in (lo, hi] whose prefix regresses, given prefix(lo) clean and prefix(hi)
    regressed; None when a usable mix between them cannot be found."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        order = sorted(range(lo + 1, hi), key=lambda k: (abs(k - mid), k))
        for k in order:
            result = yield from run(prefix(k))
            if result.state in (CLEAN, REGRESSED):
                break
        else:
            return None
        if result.state == REGRESSED:
            hi = k
        else:
            lo = k
    return hi


def _bisect(plan: Plan, keys: List[str], seen: Dict[Applied, MixResult], run: Any) -> Search:
    """The first change in order whose addition regresses; then whether it does so alone, and if
    not, the earlier change it needs (a second bisection with it always applied)."""
    everything = plan.all_keys
    found = yield from _first_change(lambda k: frozenset(keys[:k]), 0, len(keys), run)
    if found is None:
        return
    change = keys[found - 1]
    alone = yield from run(frozenset({change}))
    if alone.state == REGRESSED:
        yield from run(everything - {change})
        return
    if alone.state != CLEAN or found == 1:
        return
    partner = yield from _first_change(lambda j: frozenset(keys[:j]) | {change}, 0, found - 1, run)
    if partner is None:
        return
    pair = frozenset({keys[partner - 1], change})
    for applied in (pair, everything - {keys[partner - 1]}, everything - {change}):
        yield from run(applied)
        if conclude(plan, seen).explained:
            return
