"""The run's outputs (outputs.py): the compare pass's own-noise report as the run wires it."""

import json

import numpy as np

from pytest_npuperf.judge.compare import Comparison
from pytest_npuperf.judge.gate import NoisePrior
from pytest_npuperf.judge.outcome import TestOutcome
from pytest_npuperf.judge.result import Result, Sample, Workload
from pytest_npuperf.judge.stats import OK
from pytest_npuperf.outputs import own_noise_of


def own_noise_lines(session):
    found = own_noise_of(session)
    return list(found["lines"]) if found else []


class _Device:
    kind = "npu"


class _Settings:
    strict = True

    def __init__(self, fresh, saving=False):
        self.fresh, self.save_baseline = fresh, saving

    def confirms(self, kind):
        return self.fresh


class _Session:
    """What own_noise_lines reads of a PerfSession: a baseline recorded at 3% between processes."""

    def __init__(self, outcomes, fresh=True, saving=False):
        self.outcomes, self.settings = outcomes, _Settings(fresh, saving)

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


def test_the_results_json_keeps_it_with_the_figures_and_the_lines():
    rng = np.random.default_rng(3)
    outcomes = {f"t.py::test_x[{i}]": outcome(f"t.py::test_x[{i}]", np.exp(rng.normal(0, 0.09, 3))) for i in range(4)}
    outcomes["t.py::test_x[one]"] = outcome("t.py::test_x[one]", [])
    found = json.loads(json.dumps(own_noise_of(_Session(outcomes))))  # JSON as written
    (tpot,) = found["metrics"]
    assert tpot["metric"] == "tpot_s" and tpot["noisier"] is True
    assert tpot["df"] == 4 * 2 and tpot["tests"] == 4  # 3 fresh processes in each of 4 tests
    assert tpot["cv"] > 2 * tpot["baseline_cv"] and abs(tpot["baseline_cv"] - 0.03) < 1e-12 and tpot["baseline_df"] == 5.0
    assert found["decided_in_first_process"] == ["one"]
    assert found["lines"] == own_noise_lines(_Session(outcomes))


def test_a_recording_pass_has_no_own_noise_to_report():
    outcomes = {"t.py::test_x": outcome("t.py::test_x", [1.0, 1.01])}
    assert own_noise_of(_Session(outcomes, saving=True)) is None and own_noise_lines(_Session(outcomes, saving=True)) == []
