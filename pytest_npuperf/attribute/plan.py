"""The changes between a good and a bad stack, and the mixes that can isolate them.

A stack is made of carriers, each swapped as a whole: the Python environment (torch_npu, torch,
transformers), the CANN installation (toolkit and kernels) and each environment variable. The
driver and the firmware are read but fixed (they change only with a reboot). A *factor* is one
change a mix can apply alone: a single component where some environment or installation
separates it from the others of its carrier, else the carrier's changed components together. A
mix is the good stack with a set of factors applied; it exists when, for every carrier, some
option holds exactly the versions that set asks for, and that option can run (``rules.py``).

Pure: versions in, factors and mixes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from .rules import kernels_problem, python_problems

CANN, PYTHON = "cann", "python"
# Components of each carrier, in the order the changes are listed (and bisected).
CARRIER_COMPONENTS: Dict[str, Tuple[str, ...]] = {
    CANN: ("cann_toolkit", "cann_kernels"),
    PYTHON: ("torch_npu", "torch", "transformers"),
}
LABELS = {"cann_toolkit": "CANN toolkit", "cann_kernels": "CANN kernels", "torch_npu": "torch_npu", "torch": "torch",
          "transformers": "transformers"}
FIXED = ("driver", "firmware")  # read, never swapped
ENV_PREFIX = "env:"

Versions = Tuple[Tuple[str, Optional[str]], ...]


def label(component: str) -> str:
    return f"env {component[len(ENV_PREFIX):]}" if component.startswith(ENV_PREFIX) else LABELS.get(component, component)


def carrier_of(component: str) -> str:
    if component.startswith(ENV_PREFIX):
        return component
    return next(c for c, parts in CARRIER_COMPONENTS.items() if component in parts)


def _text(value: Optional[str]) -> str:
    return "unset" if value is None else str(value)


@dataclass(frozen=True)
class Option:
    """One choice for a carrier: its components' versions, where it lives (the interpreter, the
    set_env.sh, '' for the inherited CANN environment) and why it cannot run (empty: it can)."""

    carrier: str
    origin: str  # 'good', 'bad' or 'candidate'
    versions: Versions
    where: str = ""
    problems: Tuple[str, ...] = ()
    # torch_npu's torch requirements, for a python option (to explain an impossible mix).
    pins: Tuple[str, ...] = ()

    @property
    def version_map(self) -> Dict[str, Optional[str]]:
        return dict(self.versions)


@dataclass(frozen=True)
class Factor:
    """A change that a mix can apply alone."""

    carrier: str
    components: Tuple[str, ...]
    old: Tuple[Optional[str], ...]
    new: Tuple[Optional[str], ...]

    @property
    def key(self) -> str:
        return "+".join(self.components)

    @property
    def name(self) -> str:
        """'torch_npu 2.5.1 -> 2.6.0 with torch 2.5.1 -> 2.6.0'."""
        return " with ".join(f"{label(c)} {_text(o)} -> {_text(n)}" for c, o, n in zip(self.components, self.old, self.new))

    @property
    def short(self) -> str:
        """'the new torch_npu and torch'."""
        return "the new " + " and ".join(label(c) for c in self.components)


@dataclass(frozen=True)
class Mix:
    """The good stack with ``applied`` factors: the option of each carrier, or why it cannot exist."""

    applied: FrozenSet[str]
    options: Tuple[Option, ...] = ()
    problems: Tuple[str, ...] = ()

    def option(self, carrier: str) -> Optional[Option]:
        return next((o for o in self.options if o.carrier == carrier), None)


@dataclass
class Plan:
    """The good and bad stacks' options per carrier, the further candidates, and the factors."""

    good: Dict[str, Option]
    bad: Dict[str, Option]
    candidates: Dict[str, List[Option]] = field(default_factory=dict)
    fixed: Dict[str, Tuple[Optional[str], Optional[str]]] = field(default_factory=dict)
    factors: List[Factor] = field(default_factory=list)
    # Components that no option separates from the rest of their carrier: 'X alone: not tried: why'.
    inseparable: List[str] = field(default_factory=list)

    @property
    def all_keys(self) -> FrozenSet[str]:
        return frozenset(f.key for f in self.factors)

    def factor(self, key: str) -> Factor:
        return next(f for f in self.factors if f.key == key)

    def options(self, carrier: str) -> List[Option]:
        """Every option of a carrier, good and bad first."""
        first = [o for o in (self.good.get(carrier), self.bad.get(carrier)) if o is not None]
        return first + list(self.candidates.get(carrier, []))

    def target(self, carrier: str, applied: FrozenSet[str]) -> Dict[str, Optional[str]]:
        """The versions ``applied`` asks of a carrier: the good option's, with the factors' new ones."""
        versions = dict(self.good[carrier].versions)
        for f in self.factors:
            if f.key in applied and f.carrier == carrier:
                versions.update(zip(f.components, f.new))
        return versions

    def mix(self, applied: FrozenSet[str]) -> Mix:
        """The mix of the good stack with ``applied``, or why it cannot be run."""
        options, problems = [], []
        for carrier in self.good:
            wanted = self.target(carrier, applied)
            found = [o for o in self.options(carrier) if o.version_map == wanted]
            runnable = next((o for o in found if not o.problems), None)
            if runnable is not None:
                options.append(runnable)
            elif found:
                problems.append(f"{found[0].where or carrier} cannot run: {'; '.join(found[0].problems)}")
            else:
                problems.append(self.missing(carrier, wanted))
        return Mix(frozenset(applied), tuple(options), tuple(problems))

    def missing(self, carrier: str, wanted: Mapping[str, Optional[str]]) -> str:
        """Why no option holds ``wanted``: a version rule forbids it, or nobody installed it."""
        what = ", ".join(f"{label(c)} {_text(v)}" for c, v in wanted.items())
        if carrier == PYTHON:
            pins = next((o.pins for o in self.options(PYTHON) if o.version_map.get("torch_npu") == wanted.get("torch_npu")), ())
            rule = python_problems(wanted, pins, None)
            if rule:
                return f"impossible ({what}): {'; '.join(rule)}"
            return f"no Python environment holds {what}: add one to the candidates to separate them"
        if carrier == CANN:
            rule = kernels_problem(wanted.get("cann_toolkit"), wanted.get("cann_kernels"))
            if rule:
                return f"impossible: {rule}"
            return f"no CANN installation holds {what}: add one to the candidates to separate them"
        return f"no option holds {what}"

    def describe(self, applied: FrozenSet[str]) -> str:
        """'good stack', 'bad stack', 'good stack + the new torch_npu', 'bad stack with the old CANN toolkit'."""
        if not applied:
            return "good stack"
        if applied == self.all_keys:
            return "bad stack"
        if len(applied) * 2 <= len(self.factors):
            return "good stack + " + ", ".join(self.factor(k).short for k in sorted(applied, key=self.order))
        back = [self.factor(k).short.replace("the new", "the old", 1) for k in sorted(self.all_keys - applied, key=self.order)]
        return "bad stack with " + ", ".join(back)

    def order(self, key: str) -> int:
        return [f.key for f in self.factors].index(key)


def carrier_factors(carrier: str, good: Option, bad: Option, others: Sequence[Option]) -> Tuple[List[Factor], List[str]]:
    """The factors of one carrier: each changed component that some option separates from the rest
    (it holds good's versions with only that component's new, or bad's with only it old), then the
    remaining changed components together. Also the components that were not separated."""
    g, b = good.version_map, bad.version_map
    changed = [c for c in (CARRIER_COMPONENTS.get(carrier) or (carrier,)) if g.get(c) != b.get(c)]
    if not changed:
        return [], []
    present = [o.version_map for o in (good, bad, *others) if not o.problems]
    alone = []
    for c in changed:
        forward, backward = dict(g, **{c: b.get(c)}), dict(b, **{c: g.get(c)})
        if len(changed) > 1 and (forward in present or backward in present):
            alone.append(c)
    rest = [c for c in changed if c not in alone]
    factors = [Factor(carrier, (c,), (g.get(c),), (b.get(c),)) for c in alone]
    if rest:
        factors.append(Factor(carrier, tuple(rest), tuple(g.get(c) for c in rest), tuple(b.get(c) for c in rest)))
    return factors, rest if len(rest) > 1 else []


def build_plan(good: Mapping[str, Option], bad: Mapping[str, Option], candidates: Mapping[str, Sequence[Option]],
               fixed: Mapping[str, Tuple[Optional[str], Optional[str]]]) -> Plan:
    """The plan of two stacks: ``good`` and ``bad`` map each carrier to its option (an environment
    variable one stack does not set is an option whose value is None)."""
    carriers = [c for c in CARRIER_COMPONENTS if c in good or c in bad]
    carriers += sorted(c for c in set(good) | set(bad) if c.startswith(ENV_PREFIX))
    missing = [c for c in carriers if c not in good or c not in bad]
    if missing:
        raise ValueError(f"both stacks need an option for every carrier; missing: {', '.join(missing)}")
    plan = Plan({c: good[c] for c in carriers}, {c: bad[c] for c in carriers},
                {c: list(candidates.get(c, ())) for c in carriers}, dict(fixed))
    for carrier in carriers:
        factors, together = carrier_factors(carrier, good[carrier], bad[carrier], plan.candidates[carrier])
        plan.factors += factors
        for c in together:
            wanted = dict(good[carrier].versions, **{c: bad[carrier].version_map.get(c)})
            plan.inseparable.append(f"{label(c)} alone: not tried: {plan.missing(carrier, wanted)}")
    return plan


def env_option(name: str, value: Optional[str], origin: str) -> Option:
    carrier = ENV_PREFIX + name
    return Option(carrier, origin, ((carrier, value),), where=_text(value))
