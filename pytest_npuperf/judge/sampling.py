"""When to take more samples: the plan of an undecided comparison (pure).

The flows run what this decides: more runs in the test's process when the noise inside it is
what keeps a verdict undecided, then more fresh processes when the shift between processes is,
until every gated verdict is decided or a cap is reached. The power benchmark drives the same
functions over simulated processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .compare import Comparison, undecided
from .stats import REGRESSED, UNDECIDED

# The power calculation plans from the change measured so far; from a few processes that change
# is mostly their shift, so futility is judged from this many processes on (measured by
# benchmarks/power.py: judging it from the first process lost a tenth of the 10% slowdowns; at 3%
# process noise and a cap of 8, 1.57% of them ended INCONCLUSIVE judged from 3 on, 1.20% from 4).
FUTILITY_FROM_PROCESSES = 4
# How the processes loop ends (``Step.action``).
DECIDED = "decided"
NEW_PROCESS = "process"
STOP = "stop"


@dataclass(frozen=True)
class Step:
    action: str  # DECIDED, NEW_PROCESS or STOP
    why: str = ""  # STOP: why no more samples are taken (said in the INCONCLUSIVE verdict)


def runs_to_add(comparison: Comparison, taken: int, max_runs: int) -> int:
    """Runs to add in this process: what the power calculation of the undecided verdicts asks
    for, up to ``max_runs`` in all (0 when more runs here would not help)."""
    planned = max((v.runs_needed for v in undecided(comparison)), default=0)
    return max(0, min(planned, max_runs) - taken)


def next_step(
    comparison: Comparison,
    first_status: str,
    processes: int,
    cap: int,
    fresh_processes: bool,
    time_left_s: float,
    slowest_process_s: float,
) -> Step:
    """Whether to sample one more fresh process.

    Wanted while a gated verdict is UNDECIDED, or while a regression rests on the first process
    alone (a process shift is the most common false alarm on an accelerator). Not taken when
    fresh processes are off, at ``cap`` processes, when (from FUTILITY_FROM_PROCESSES processes
    on) the power calculation says even the cap would not decide any undecided metric, or when
    the time left is less than the slowest process so far took.
    """
    one_process_regression = first_status == REGRESSED and comparison.status == REGRESSED and processes == 1
    if comparison.status != UNDECIDED and not one_process_regression:
        return Step(DECIDED)
    if not fresh_processes:
        return Step(STOP, "fresh processes are off on this device (--npuperf-confirm turns them on)")
    if processes >= cap:
        return Step(STOP, f"{processes} processes, the cap (--npuperf-max-processes)")
    open_verdicts = undecided(comparison)
    # Futile only when every undecided metric is out of reach: one hopeless metric (a 5% TTFT
    # budget, say) must not stop the others, nor the confirmation of a one-process regression.
    if (processes >= FUTILITY_FROM_PROCESSES and open_verdicts
            and all(v.processes_needed == -1 for v in open_verdicts)):
        return Step(STOP, f"at the noise measured even {cap} processes would not decide it (--npuperf-max-processes)")
    if time_left_s <= slowest_process_s:
        return Step(STOP, "the time cap per test (--npuperf-time-cap)")
    return Step(NEW_PROCESS)
