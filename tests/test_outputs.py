"""The run's outputs (outputs.py): the compare pass's own-noise report as the run wires it."""

import numpy as np

from pytest_npuperf.judge.compare import Comparison
from pytest_npuperf.judge.gate import NoisePrior
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.judge.stats import OK
from pytest_npuperf.outputs import own_noise_lines


class _Device:
    kind = "npu"


class _Settings:
    strict = True

    def __init__(self, fresh):
        self.fresh = fresh

    def confirms(self, kind):
        return self.fresh


class _Session:
    """What own_noise_lines reads of a PerfSession: a baseline recorded at 3% between processes."""

    def __init__(self, outcomes, fresh=True):
        self.outcomes, self.settings = outcomes, _Settings(fresh)

    def device(self):
        return _Device()

    def run_noise(self):
        return {"tpot_s": NoisePrior(0.03 ** 2, 5.0, "the 6 recorded processes")}


def outcome(name, shifts):
    """A test decided OK, its own process then one fresh process per shift (3 runs each)."""
    samples = [Sample(tpot_s=shift * r, process=tag) for tag, shift in enumerate([1.0, *shifts]) for r in (1.0, 1.001, 0.999)]
    return TestOutcome(name, Result(name, "npu-X", Workload("m", "h", "bf16", 1, (), (), 32), samples), Comparison(status=OK))


def test_the_run_reports_it_where_fresh_processes_were_on_and_names_the_first_process_verdicts():
    rng = np.random.default_rng(3)
    outcomes = {f"t.py::test_x[{i}]": outcome(f"t.py::test_x[{i}]", np.exp(rng.normal(0, 0.09, 3))) for i in range(4)}
    outcomes["t.py::test_x[one]"] = outcome("t.py::test_x[one]", [])
    lines = own_noise_lines(_Session(outcomes))
    assert lines[0].startswith("npuperf: NOISE needs attention")
    assert "1 test(s) decided in their first process" in lines[1] and "may be too confident: one (" in lines[1]
    assert own_noise_lines(_Session(outcomes, fresh=False)) == []  # the CPU's pass: nothing to say
