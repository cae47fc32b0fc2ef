"""The two ways in: ``python -m pytest_npuperf attribute --good STACK --bad STACK -- <selection>``, and
``--npuperf-attribute STACK`` on a run whose tests regressed (the run's own stack is the bad one).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .runner import ATTRIBUTING_ENV, Job, attribute, prepare
from .stacks import Candidates, StackError, StackFile, StackSpec, interpreter, load_stack_file, set_env_script

# Options the attribution sets itself in every mix; refused in the selection.
OWN_OPTIONS = ("--npuperf-results", "--npuperf-baseline-dir", "--npuperf-save-baseline", "--npuperf-attribute")
DEFAULT_BUDGET_S = 3600.0


def check_selection(selection: Sequence[str]) -> None:
    clash = [a for a in selection if a.startswith(OWN_OPTIONS)]
    if clash:
        raise StackError(f"the pytest selection may not hold {', '.join(clash)}: the attribution sets the results and "
                         "the baseline folder of every mix itself (give the folder as --baseline-dir)")


def load_stacks(stacks: Optional[Path], good: Optional[Path], bad: Optional[Path], candidate_python: Sequence[str],
                candidate_cann: Sequence[str]) -> StackFile:
    """good, bad and candidates from a stacks file and/or one file per stack (those win)."""
    found = load_stack_file(stacks) if stacks else StackFile()
    picked = {}
    for name, path in (("good", good), ("bad", bad)):
        if path is None:
            picked[name] = getattr(found, name)
            continue
        one = load_stack_file(path)
        spec = getattr(one, name) or one.good
        if spec is None:
            raise StackError(f"{path}: holds no [{name}] stack")
        picked[name] = StackSpec(name, spec.python, spec.cann, spec.env)
    base = Path.cwd()
    candidates = Candidates(found.candidates.python + tuple(interpreter(p, "--candidate-python", base) for p in candidate_python),
                            found.candidates.cann + tuple(set_env_script(c, "--candidate-cann", base) for c in candidate_cann))
    return StackFile(picked["good"], picked["bad"], candidates)


def run_attribution(stacks: StackFile, selection: List[str], baseline_dir: Path, budget_s: float,
                    workdir: Optional[Path], cwd: Path, say: Callable[[str], None],
                    environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Read both stacks, run the mixes within the budget (a line said for each); the report."""
    if stacks.good is None or stacks.bad is None:
        missing = " and ".join(n for n in ("good", "bad") if getattr(stacks, n) is None)
        raise StackError(f"the {missing} stack is not given: --good FILE and --bad FILE, or --stacks FILE with "
                         "[good] and [bad] tables")
    if not budget_s > 0:
        raise StackError(f"the time budget must be a positive number of seconds, got {budget_s}")
    check_selection(selection)
    world = prepare(stacks.good, stacks.bad, stacks.candidates, os.environ if environ is None else environ)
    say(f"npuperf attribute: {len(world.plan.factors)} change(s): "
        + "; ".join(f.name for f in world.plan.factors))
    with tempfile.TemporaryDirectory(prefix="npuperf-attribute-") as tmp:
        job = Job(selection, Path(baseline_dir).resolve(), Path(workdir or tmp), budget_s, cwd, say)
        return attribute(world, job)


def current_stack(stacks: StackFile) -> StackFile:
    """The stacks of ``--npuperf-attribute``: the file's good one, and this run's as the bad one (its
    interpreter, the CANN it was started with, the variables as they are)."""
    if stacks.good is None:
        raise StackError("--npuperf-attribute: the file holds no good stack")
    if stacks.bad is not None:
        raise StackError("--npuperf-attribute: the file holds a [bad] stack, but the bad stack is this run's own; "
                         "remove the [bad] table (python -m pytest_npuperf attribute --bad takes one)")
    return StackFile(stacks.good, StackSpec("bad", sys.executable, None, ()), stacks.candidates)


def in_attribution() -> bool:
    """True in a mix's process: an attribution never starts another."""
    return os.environ.get(ATTRIBUTING_ENV) == "1"


def attribute_failures(stack_file: Path, failing: Sequence[str], command: Sequence[str], baseline_dir: Path,
                       budget_s: float, rootdir: Path, say: Callable[[str], None]) -> Tuple[Optional[Dict[str, Any]], List[str]]:
    """``--npuperf-attribute``: the regressed tests of this run on mixes of its stack and the good one.
    ``command`` is the child pytest command of the run (interpreter first); returns the report and
    the summary's lines."""
    if not failing or in_attribution():
        return None, []
    selection = [a for a in command[3:] if not a.startswith(OWN_OPTIONS)] + list(failing)
    try:
        found = run_attribution(current_stack(load_stack_file(stack_file)), selection, baseline_dir, budget_s, None,
                                rootdir, say)
    except StackError as exc:
        return None, [f"npuperf: attribution not run: {exc}"]
    except Exception as exc:  # the run's own results are already written: report, never lose them
        return None, [f"npuperf: attribution FAILED ({type(exc).__name__}: {exc}); the run's results are kept"]
    return found, []
