"""The hook object that carries a run: registered by ``pytest_configure`` once the settings are valid.

It owns the run's PerfSession and wires it to pytest: the header after collection, progress
lines, each test's outcome on its report (so it reaches the xdist controller), the JUnit
properties, the wall time per execution mode, the outputs and baselines at the end, the teams'
hooks (hookspec.py: stack fields and workloads once per process, the results where they are
written), and the summary. Every step's work is in a plain function elsewhere.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Generator, List, Optional, Set, Tuple

import pytest

from .attribute.command import attribute_failures
from .devices import DeviceShared, DeviceUnavailable
from .errors import BaselineError, NpuPerfWarning
from .extensions import RUN_RESULTS, TEST_RESULT, HookFailure, notify, stack_fields, workloads
from .flows.confirm import in_confirmation_child
from .flows.session import PerfSession
from .judge.compare import ACCELERATOR_KINDS, budgets_for
from .judge.outcome import TestOutcome
from .judge.stats import NO_BASELINE, REGRESSED
from .model.workloads import WorkloadSet
from .modes import EAGER
from .outputs import record_more_processes, results_of, save_baselines, write_outputs
from .progress import Progress, progress_for
from .report.attribution import attribution_lines
from .report.header import header_lines
from .report.terminal import short_id, terminal_summary, test_kind
from .settings import Settings, for_device, preset_note

# Per-test data carried on the call report (to the xdist controller as well).
OUTCOME_KEY = "npuperf_outcome"
MODE_KEY = "npuperf_mode"


def uses_npuperf(item: pytest.Item) -> bool:
    return "npuperf" in getattr(item, "fixturenames", ())


def mode_of(item: pytest.Item, outcome: Optional[TestOutcome] = None) -> str:
    """The execution mode a test is parametrized with ('mode'), else the one its result says it
    measured in (a test that passes mode= itself), else eager."""
    callspec = getattr(item, "callspec", None)
    declared = callspec.params.get("mode") if callspec is not None else None
    measured = outcome.result.extra.get("execution_mode") if outcome is not None and outcome.result else None
    return str(declared or measured or EAGER)


class NpuPerfRun:
    """Run-level hooks of pytest-npuperf."""

    def __init__(self, settings: Settings, child_command: List[str], config: Optional[pytest.Config] = None) -> None:
        self.perf = PerfSession(settings)
        self.child_command = child_command
        self.config = config  # for the teams' hooks (none: the suite as it ships)
        self.asked: Dict[str, Any] = {}  # a shaping hook -> its checked answer, or its HookFailure
        self.hook_problems: Dict[str, int] = {}  # a result hook's failure -> how often
        self.preset_resolved = settings.preset_given
        self.messages: List[str] = []
        self.not_recorded: Set[str] = set()  # tests that did not pass in every recording process
        self.active = False
        self.call_s: Dict[str, List[float]] = {}  # execution mode -> call seconds of each perf test
        self.progress: Optional[Progress] = None
        self.reporter: Any = None
        self.attribution: Optional[Dict[str, Any]] = None  # --npuperf-attribute's report

    @property
    def confirm_command(self) -> List[str]:
        """The child pytest command that re-runs one test with this run's (resolved) settings."""
        return self.child_command + self.perf.settings.as_args()

    def resolve_preset(self) -> Settings:
        """Quick preset on a CPU unless one was given; resolving asks for the device once."""
        if not self.preset_resolved:
            self.preset_resolved = True
            self.perf.settings = for_device(self.perf.settings, self.perf.device_kind())
        return self.perf.settings

    # -- the teams' hooks that shape the run: asked once per process, their failure kept -------
    def stack_fields(self) -> Dict[str, Any]:
        """The fields the hooks add to the stack, now in the session's stack; HookFailure when
        a hook raised or answered what cannot be recorded (every call raises it again)."""
        def ask() -> Dict[str, Any]:
            fields = stack_fields(self.config) if self.config is not None else {}
            self.perf.add_stack_fields(fields)
            return fields

        return self._once("stack_fields", ask)

    def workloads(self) -> WorkloadSet:
        """The run's workloads, now the session's; HookFailure as for stack_fields."""
        def ask() -> WorkloadSet:
            if self.config is not None:
                self.perf.workloads = workloads(self.config)
            return self.perf.workloads

        return self._once("workloads", ask)

    def _once(self, hook: str, ask: Callable[[], Any]) -> Any:
        if hook not in self.asked:
            try:
                self.asked[hook] = ask()
            except HookFailure as exc:
                self.asked[hook] = exc
        if isinstance(self.asked[hook], HookFailure):
            raise self.asked[hook]
        return self.asked[hook]

    def _notifies(self) -> bool:
        """Whether this process calls the result hooks: the one that writes the run's results
        (not an xdist worker, not a fresh confirmation or recording process)."""
        return self.config is not None and not hasattr(self.config, "workerinput") and not in_confirmation_child()

    def _notify(self, name: str, **data: Any) -> None:
        assert self.config is not None
        for problem in notify(self.config, name, **data):
            self.hook_problems[problem] = self.hook_problems.get(problem, 0) + 1

    def header_lines(self) -> List[str]:
        perf, s = self.perf, self.perf.settings
        try:
            device = perf.device()
        except (DeviceUnavailable, DeviceShared) as exc:
            return header_lines(s, None, unavailable=str(exc))
        facts = dict(kind=device.kind, name=device.name(), profile=device.profile(), model=perf.model_name,
                     timing=device.timing_source, memory=device.memory_source)
        # On an accelerator: which baselines carry no between-process noise (it widens the bounds).
        # The run-wide pool of the other baselines' processes stands in for a missing one.
        noise = (perf.entries_without_noise() if device.kind in ACCELERATOR_KINDS and not s.save_baseline
                 and not perf.run_noise() else (0, 0))
        return header_lines(s, facts, stack=perf.stack, skipped=perf.skipped_devices, without_noise=noise,
                            calibration=perf.calibration(), budgets=budgets_for(device.time_floor(), s.tolerance_map),
                            raised_to=device.time_floor())

    # -- collection -------------------------------------------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = [item for item in session.items if uses_npuperf(item)]
        if not items:
            return
        self.active = True
        try:
            self.stack_fields()  # for the header; a failure fails each perf test with its message
        except HookFailure:
            pass
        settings = self.resolve_preset()
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        every = progress_for(reporter, session.config.get_verbosity() >= 1, self.perf.device_kind())
        self.progress = Progress([item.nodeid for item in items], time.monotonic(), every or 0.0)
        if reporter is None:
            return
        for line in self.header_lines():
            reporter.write_line(line)
        note = preset_note(settings, self.perf.device_kind())
        if note:
            reporter.write_line(note)
        if every is not None:
            self.reporter = reporter

    # -- per test: the outcome on its report, through xdist ---------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Generator[None, Any, Any]:
        report = yield
        outcome = self.perf.outcomes.get(item.nodeid)
        if outcome is not None and report.when == "call":
            setattr(report, OUTCOME_KEY, outcome.to_dict())
        if report.when == "call" and uses_npuperf(item):
            setattr(report, MODE_KEY, mode_of(item, outcome))  # for the wall time per mode
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, config: pytest.Config, report: Any) -> Generator[None, Any, Any]:
        data = yield
        for key in (OUTCOME_KEY, MODE_KEY):
            if data is not None and getattr(report, key, None) is not None:
                data[key] = getattr(report, key)
        return data

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, config: pytest.Config, data: Any) -> Generator[None, Any, Any]:
        report = yield
        for key in (OUTCOME_KEY, MODE_KEY):
            if report is not None and isinstance(data, dict) and key in data:
                setattr(report, key, data[key])
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and getattr(report, MODE_KEY, None) is not None:
            self.call_s.setdefault(getattr(report, MODE_KEY), []).append(report.duration)
        outcome = self.perf.outcomes.get(report.nodeid)
        if outcome is None and getattr(report, OUTCOME_KEY, None) is not None:
            outcome = self.perf.outcomes[report.nodeid] = TestOutcome.from_dict(getattr(report, OUTCOME_KEY))
            self.active = True  # the xdist controller: it collected nothing itself
        if outcome is None:
            return
        if report.when == "call" or (report.when != "call" and report.failed):
            outcome.passed = report.passed if outcome.passed is not False else False
        if report.when == "call" and self.progress is not None and self.progress.pending:
            runs = len(outcome.result.samples) if outcome.result else 0
            line = self.progress.finished(report.nodeid, test_kind(outcome.to_dict()), short_id(outcome.test_id),
                                          runs, outcome.status, time.monotonic())
            if line is not None and self.reporter is not None:
                self.reporter.write_line(line)
        if report.when == "teardown" and self._notifies():  # passed is final: teardown failures count
            self._notify(TEST_RESULT, nodeid=report.nodeid, outcome=outcome.to_dict())

    def check_health(self) -> None:
        """Before any verdict: is the device as fast as when the baselines were recorded?"""
        problems = self.perf.health_problems()
        if not problems:
            return
        text = "device health: the calibration is clearly below the baseline's: " + "; ".join(problems)
        text += " (throttling, another process on the device, or a slower clock?)"
        self.messages.insert(0, f"npuperf: {text}")
        if self.perf.settings.strict:
            pytest.exit(f"pytest-npuperf: {text}; stopped by --npuperf-strict", returncode=pytest.ExitCode.TESTS_FAILED)
        warnings.warn(NpuPerfWarning(text), stacklevel=2)

    # -- end of the run -----------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.active or hasattr(session.config, "workerinput"):
            return
        saving = self.perf.settings.save_baseline
        doc: Optional[Dict[str, Any]] = None
        written: Optional[Path] = None  # where the results document is, once written
        # Before the outputs, so that they show the pooled samples that are saved.
        if saving and not self._record_more_processes(session):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.perf.outcomes:
            self.resolve_preset()
            try:
                self.stack_fields()  # the xdist controller's own, for the document's stack
            except HookFailure as exc:
                self.messages.append(f"npuperf: {exc}")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            doc, written = self._write_outputs()
            # The attribution after the run's own outputs (it may take hours: nothing is lost if
            # it is stopped), which are then written again with its report.
            if self.perf.settings.attribute_path is not None and not saving and self._attribute(session):
                doc, written = self._write_outputs(say=False)
        if saving:
            try:
                self.messages += save_baselines(self.perf, self.not_recorded)
            except BaselineError as exc:
                self.messages.append(f"npuperf: baseline NOT saved: {exc}")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            gaps = self._baseline_gaps()
            own = doc["run"].get("own_noise") if doc is not None else None  # computed once, for the results
            self.messages += gaps + (list(own["lines"]) if own else [])
            if gaps and self.perf.settings.strict:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if doc is not None and self._notifies():  # last: the files and baselines are written, a failing hook loses nothing
            self._notify(RUN_RESULTS, results=doc, path=written)
        if self.hook_problems:
            self.messages += [f"npuperf: {problem}" + (f" ({count} times)" if count > 1 else "") + "; the run fails"
                              for problem, count in self.hook_problems.items()]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def document(self) -> Dict[str, Any]:
        """The run's results document, with the attribution when one ran."""
        doc = results_of(self.perf, self.call_s)
        if self.attribution is not None:
            doc["attribution"] = self.attribution
        return doc

    def _write_outputs(self, say: bool = True) -> Tuple[Dict[str, Any], Optional[Path]]:
        """The results document, written to every output asked for; (document, results path)."""
        doc = self.document()
        try:
            lines = write_outputs(self.perf, doc)
            self.messages += lines if say else []
            return doc, self.perf.settings.results_path
        except OSError as exc:
            self.messages.append(f"npuperf: could not write an output file: {exc}")
            return doc, None

    def _attribute(self, session: pytest.Session) -> bool:
        """--npuperf-attribute: the regressed tests on mixes of this run's stack and the good one;
        whether it ran."""
        failing = sorted(tid for tid, o in self.perf.outcomes.items() if o.status == REGRESSED)
        if not failing:
            return False
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        say = reporter.write_line if reporter is not None else (lambda line: None)
        self.perf.release_device()  # the mixes need the device
        s = self.perf.settings
        command = self.confirm_command + s.sampling_args()  # the mixes sample as this run did
        self.attribution, lines = attribute_failures(s.attribute_path, failing, command, s.baseline_dir,
                                                     s.attribute_budget_s, Path(str(session.config.rootpath)), say)
        self.messages += lines
        return True

    def _baseline_gaps(self) -> List[str]:
        """NO_BASELINE that needs attention: where the store has baselines of this model for another
        device profile, or for some tests of this run but not others (a renamed device or test id,
        a baseline file that lost entries). Fails the run under --npuperf-strict."""
        missing = sorted(tid for tid, o in self.perf.outcomes.items() if o.status == NO_BASELINE)
        if not missing:
            return []
        lines = []
        compared = [tid for tid, o in self.perf.outcomes.items() if o.comparison and o.status != NO_BASELINE]
        if compared:
            lines.append(f"npuperf: NO_BASELINE needs attention: {len(missing)} test(s) of this run have no baseline while "
                         f"{len(compared)} other(s) do (a renamed test id, or a baseline file that lost entries?): "
                         + ", ".join(short_id(t) for t in missing))
        try:
            profile, model = self.perf.device().profile(), self.perf.model_name
        except (DeviceUnavailable, DeviceShared):
            return lines
        others = self.perf.store.other_profiles(profile, model)
        if others:
            lines.append(f"npuperf: NO_BASELINE needs attention: baselines of {model} exist for {', '.join(others)} but not for "
                         f"this device's profile {profile} (the device, or the name it reports, changed?); record this "
                         "profile with --npuperf-save-baseline once the numbers are validated")
        if lines and self.perf.settings.strict:
            lines.append("npuperf: --npuperf-strict: the run fails until every test has a baseline on this profile")
        return lines

    def _record_more_processes(self, session: pytest.Session) -> bool:
        """False when a test could not be recorded in every process (it is then not saved)."""
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        say = reporter.write_line if reporter is not None else (lambda line: None)
        missing, lines = record_more_processes(self.perf, self.confirm_command, Path(str(session.config.rootpath)), say)
        self.not_recorded |= missing
        self.messages += lines
        return not missing

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if not self.active:
            return
        lines: List[str] = []
        if self.perf.outcomes:
            full = self.perf.settings.summary == "full" or config.get_verbosity() >= 1
            self.resolve_preset()
            lines = terminal_summary(results_of(self.perf, self.call_s), "full" if full else "attention")
        if self.attribution is not None:
            lines += attribution_lines(self.attribution)
        if lines or self.messages:
            terminalreporter.section("npuperf summary")
            for line in lines + self.messages:
                terminalreporter.write_line(line)
