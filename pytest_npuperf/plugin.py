"""pytest wiring: options, markers, fixtures, report. Thin: the work is in the plain modules.

Nothing heavy is imported here: torch and torch_npu are imported only when a test asks for
the ``npuperf`` fixture, so ``pytest --help`` works where ``import torch_npu`` fails.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Generator, List, Set, Tuple

import pytest

from .devices import DeviceShared, DeviceUnavailable, prepare_torch_import
from .errors import NpuPerfWarning
from .fixture import NpuPerf
from .flows.confirm import child_device_index
from .settings import (
    DEVICES,
    GRAPH_BACKENDS,
    MODE_CHOICES,
    PRESETS,
    SUMMARY_MODES,
    Settings,
    SettingsError,
    build_settings,
    for_device,
    marker_overrides,
    preset_note,
)

SETTINGS_KEY = pytest.StashKey[Settings]()
PLUGIN_KEY = pytest.StashKey["NpuPerfPlugin"]()

# (option name, ini name, help, kind); one help text serves both.
_OPTIONS: Tuple[Tuple[str, str, str, str], ...] = (
    ("device", "npuperf_device", f"device to run on: {'|'.join(DEVICES)} (auto: npu, else cuda, else cpu). Default auto.", "string"),
    ("model", "npuperf_model",
     "model: tiny | mistral-7b | PATH of a local Hugging Face checkpoint. Default: tiny on cpu, mistral-7b on an accelerator.",
     "string"),
    ("baseline_dir", "npuperf_baseline_dir", "folder of stored baselines. Default: <rootdir>/baselines.", "string"),
    ("preset", "npuperf_preset",
     f"suite size: {'|'.join(PRESETS)} (quick: 2 workloads, 32 new tokens). Default: quick on a CPU, full on an accelerator.",
     "string"),
    ("max_new_tokens", "npuperf_max_new_tokens", "fixed output length per request (overrides the preset).", "string"),
    ("warmup", "npuperf_warmup", "untimed warm-up generations at the measured shapes. Default 1.", "string"),
    ("runs", "npuperf_runs", "timed generations per test (>= 5 lets the statistical gate fire). Default 5.", "string"),
    ("max_runs", "npuperf_max_runs", "cap on runs when a verdict is inconclusive and more samples are taken. Default 10.", "string"),
    ("alpha", "npuperf_alpha", "significance level of the one-sided Mann-Whitney test. Default 0.05.", "string"),
    ("results", "npuperf_results",
     "results JSON of the whole run ('none' to disable). Default: <rootdir>/.npuperf/results.json.", "string"),
    ("threads", "npuperf_threads", "torch CPU threads (torch.set_num_threads). Default: torch's choice.", "string"),
    ("processes", "npuperf_processes",
     "with --npuperf-save-baseline: record in N fresh processes, storing pooled samples and the "
     "between-process noise of every gated metric. Default 3 on npu/cuda, 1 on cpu.", "string"),
    ("html", "npuperf_html", "write a self-contained offline HTML report (charts included) to PATH.", "string"),
    ("markdown", "npuperf_markdown",
     "write a Markdown summary to PATH. Default: appended to $GITHUB_STEP_SUMMARY when that is set.", "string"),
    ("profile_dir", "npuperf_profile_dir",
     "profile one generation of every regressed test (torch_npu.profiler on NPU, torch.profiler elsewhere) into DIR.",
     "string"),
    ("mode", "npuperf_mode",
     f"execution modes to run: {'|'.join(MODE_CHOICES)} (eager: transformers' generate, the study's path; graph: the "
     "decode step compiled by the device's graph backend over a static KV cache, ids ending in '-graph'). Default all.",
     "string"),
    ("graph_backend", "npuperf_graph_backend",
     f"graph backend: {'|'.join(GRAPH_BACKENDS)} (auto: on an NPU the first of npugraph_ex, reduce-overhead "
     "(aclgraph), max-autotune (GE) that torch_npu and the chip support; pin one to keep comparing the same "
     "compiler across a torch_npu upgrade; CUDA and CPU have one backend each). Default auto.", "string"),
    ("summary", "npuperf_summary",
     f"terminal summary: {'|'.join(SUMMARY_MODES)} (attention: what needs attention, counts per kind of test and "
     "the generation matrix; full: also every test's metric rows, as -v does). Default attention.", "string"),
    ("export_benchmark_json", "npuperf_export_benchmark_json",
     "also write the results in pytest-benchmark's JSON format (e2e latency as the timed value) to PATH.", "string"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("npuperf", "Mistral inference performance gate (pytest-npuperf)")
    for name, ini, help_text, kind in _OPTIONS:
        group.addoption(
            f"--npuperf-{name.replace('_', '-')}", dest=f"npuperf_{name}", default=None,
            metavar=name.split("_")[-1].upper(), help=help_text,
        )
        parser.addini(ini, help_text, type=kind, default=None)
    group.addoption("--npuperf-tolerance", dest="npuperf_tolerance", action="append", default=None,
                    metavar="METRIC=FRACTION",
                    help="tolerance floor for one metric, e.g. e2e_s=0.05 or tokens_per_s=5%%; repeatable.")
    parser.addini("npuperf_tolerance", "tolerance floors, one METRIC=FRACTION per line.", type="linelist", default=[])
    group.addoption("--npuperf-save-baseline", dest="npuperf_save_baseline", action="store_true", default=False,
                    help="record the results of passing tests as the baseline of this device profile.")
    group.addoption("--npuperf-force", dest="npuperf_force", action="store_true", default=False,
                    help="with --npuperf-save-baseline: also save failing tests, and replace an unreadable "
                         "baseline file (the old one is kept beside it as <file>.corrupt-<time>).")
    group.addoption("--npuperf-strict", dest="npuperf_strict", action="store_true", default=False,
                    help="fail (instead of skip) the perf tests when the requested device is absent.")
    group.addoption("--npuperf-confirm", dest="npuperf_confirm", action="store_true", default=None,
                    help="re-run a regressed test once in a fresh process and fail only if it regresses again "
                         "(default on npu/cuda, off on cpu).")
    group.addoption("--npuperf-no-confirm", dest="npuperf_confirm", action="store_false",
                    help="fail a regressed test without re-running it in a fresh process.")
    group.addoption("--npuperf-reason", dest="npuperf_reason", default=None, metavar="TEXT",
                    help="why this baseline is recorded (stored with it), e.g. 'CANN 8.0.0 validated'.")


def _raw_settings(config: pytest.Config) -> Dict[str, Tuple[Any, str]]:
    raw: Dict[str, Tuple[Any, str]] = {}
    for name, ini, _help, _kind in _OPTIONS:
        cli = config.getoption(f"npuperf_{name}")
        if cli is not None:
            raw[name] = (cli, f"--npuperf-{name.replace('_', '-')}")
        else:
            value = config.getini(ini)
            raw[name] = (value if value not in (None, "") else None, f"ini option {ini}")
    raw["tolerance"] = (config.getoption("npuperf_tolerance"), "--npuperf-tolerance")
    raw["tolerance_ini"] = (config.getini("npuperf_tolerance") or None, "ini option npuperf_tolerance")
    raw["save_baseline"] = (config.getoption("npuperf_save_baseline"), "--npuperf-save-baseline")
    raw["reason"] = (config.getoption("npuperf_reason"), "--npuperf-reason")
    raw["force"] = (config.getoption("npuperf_force"), "--npuperf-force")
    raw["strict"] = (config.getoption("npuperf_strict"), "--npuperf-strict")
    raw["confirm"] = (config.getoption("npuperf_confirm"), "--npuperf-confirm/--npuperf-no-confirm")
    return raw


def get_settings(config: pytest.Config) -> Settings:
    """The run's validated settings (for conftest files that shape the suite), the preset resolved
    for the device (quick on a CPU unless one was given)."""
    plugin = config.stash.get(PLUGIN_KEY, None)
    if plugin is not None:
        plugin.resolve_preset()
        config.stash[SETTINGS_KEY] = plugin.perf.settings
    return config.stash[SETTINGS_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "npu: a Mistral inference performance test (run with -m npu).")
    config.addinivalue_line(
        "markers",
        "npuperf(tolerance={metric: fraction}, budget={metric: limit}): per-test tolerance floors "
        "and absolute budgets on metric medians (upper limit for times and memory, lower for tokens_per_s).",
    )
    if config.getoption("help", False):
        return
    try:
        settings = build_settings(_raw_settings(config), Path(str(config.rootpath)))
    except SettingsError as exc:
        raise pytest.UsageError(f"pytest-npuperf: {exc}") from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a pytest-xdist worker: one device per worker
        settings = replace(settings, worker_index=int(str(workerinput["workerid"]).lstrip("gw") or 0),
                           worker_count=int(workerinput.get("workercount", 1)))
    try:
        index = child_device_index()
    except ValueError as exc:
        raise pytest.UsageError(f"pytest-npuperf: {exc}") from None
    if index is not None:  # a confirmation child measures on its parent's device
        settings = replace(settings, worker_index=index, worker_count=1)
    config.stash[SETTINGS_KEY] = settings
    prepare_torch_import()
    plugin = NpuPerfPlugin(settings, _confirm_prefix(config))
    config.stash[PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "npuperf-run")


def _confirm_prefix(config: pytest.Config) -> List[str]:
    """The child pytest command that re-runs one test, before this run's settings."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "ignore::UserWarning",
           f"--rootdir={config.rootpath}"]
    if config.inipath is not None:
        cmd.append(f"-c={config.inipath}")
    return cmd


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _uses_npuperf(item: pytest.Item) -> bool:
    return "npuperf" in getattr(item, "fixturenames", ())


def _mode_of(item: pytest.Item, outcome: Any = None) -> str:
    """The execution mode a test is parametrized with ('mode'), else the one its result says it
    measured in (a test that passes mode= itself), else eager."""
    callspec = getattr(item, "callspec", None)
    declared = callspec.params.get("mode") if callspec is not None else None
    measured = outcome.result.extra.get("execution_mode") if outcome is not None and outcome.result else None
    return str(declared or measured or "eager")


PROGRESS_EVERY_S = 60.0


def _file_of(item_or_report: Any) -> str:
    """'perf_tests/test_serving.py' of a node id: the progress estimate groups tests by file."""
    return item_or_report.nodeid.split("::", 1)[0]


class NpuPerfPlugin:
    """Run-level hooks, registered only once the settings are valid."""

    def __init__(self, settings: Settings, confirm_prefix: List[str]) -> None:
        from .flows.session import PerfSession

        self.perf = PerfSession(settings)
        self.confirm_prefix = confirm_prefix
        self.preset_resolved = settings.preset_given
        self.messages: List[str] = []
        self.not_recorded: Set[str] = set()  # tests that did not pass in every recording process
        self.active = False
        self.total = 0
        self.done = 0
        self.started = self.last_progress = self.last_done = 0.0
        self.pending: List[str] = []  # the test file of each perf test not yet reported
        self.durations: Dict[str, List[float]] = {}  # per test file: seconds of each finished test
        self.kinds: Dict[str, str] = {}  # test file -> kind of test, once one has finished
        self.call_s: Dict[str, List[float]] = {}  # execution mode -> call seconds of each perf test
        self.reporter: Any = None
        self.progress_every_s = 0.0  # 0: a line per test (-v); on an accelerator, every minute otherwise

    @property
    def confirm_command(self) -> List[str]:
        """The child pytest command that re-runs one test with this run's (resolved) settings."""
        return self.confirm_prefix + self.perf.settings.as_args()

    def _device_kind(self) -> Any:
        try:
            return self.perf.device().kind
        except (DeviceUnavailable, DeviceShared):
            return None

    def resolve_preset(self) -> None:
        """Quick preset on a CPU unless one was given; resolving asks for the device once."""
        if not self.preset_resolved:
            self.preset_resolved = True
            self.perf.settings = for_device(self.perf.settings, self._device_kind())

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = [item for item in session.items if _uses_npuperf(item)]
        if not items:
            return
        self.active = True
        self.total = len(items)
        self.pending = [_file_of(item) for item in items]
        self.started = self.last_progress = time.monotonic()
        self.resolve_preset()
        session.config.stash[SETTINGS_KEY] = self.perf.settings
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in self.perf.header_lines():
                reporter.write_line(line)
            note = preset_note(self.perf.settings, self._device_kind())
            if note:
                reporter.write_line(note)
            if session.config.get_verbosity() >= 1:
                self.reporter = reporter
            elif self._device_kind() not in (None, "cpu"):  # long runs: say how far, without -v
                self.reporter, self.progress_every_s = reporter, PROGRESS_EVERY_S

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Generator[None, Any, Any]:
        report = yield
        outcome = self.perf.outcomes.get(item.nodeid)
        if outcome is not None and report.when == "call":
            report.npuperf_outcome = outcome.to_dict()  # travels to the xdist controller
        if report.when == "call" and _uses_npuperf(item):
            report.npuperf_mode = _mode_of(item, outcome)  # so does this, for the wall time per mode
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, config: pytest.Config, report: Any) -> Generator[None, Any, Any]:
        data = yield
        for key in ("npuperf_outcome", "npuperf_mode"):
            if data is not None and getattr(report, key, None) is not None:
                data[key] = getattr(report, key)
        return data

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, config: pytest.Config, data: Any) -> Generator[None, Any, Any]:
        report = yield
        for key in ("npuperf_outcome", "npuperf_mode"):
            if report is not None and isinstance(data, dict) and key in data:
                setattr(report, key, data[key])
        return report

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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and getattr(report, "npuperf_mode", None) is not None:
            self.call_s.setdefault(report.npuperf_mode, []).append(report.duration)
        outcome = self.perf.outcomes.get(report.nodeid)
        if outcome is None and getattr(report, "npuperf_outcome", None) is not None:
            from .judge.outcome import TestOutcome

            outcome = self.perf.outcomes[report.nodeid] = TestOutcome.from_dict(report.npuperf_outcome)
            self.active = True  # the xdist controller: it collected nothing itself
        if outcome is None:
            return
        if report.when == "call" or (report.when != "call" and report.failed):
            outcome.passed = report.passed if outcome.passed is not False else False
        if report.when == "call" and self.pending:
            self._finished(report, outcome)

    def _finished(self, report: pytest.TestReport, outcome: Any) -> None:
        from .report.terminal import test_kind

        now = time.monotonic()
        key = _file_of(report)
        if key in self.pending:
            self.pending.remove(key)
        self.durations.setdefault(key, []).append(now - (self.last_done or self.started))
        self.kinds.setdefault(key, test_kind(outcome.to_dict()))
        self.last_done = now
        self.done += 1
        due = now - self.last_progress >= self.progress_every_s or not self.pending
        if self.reporter is not None and due:
            self.last_progress = now
            self.reporter.write_line(self._progress(outcome, now))

    def _progress(self, outcome: Any, now: float) -> str:
        """'npuperf [12/80] fp16-bs8-zh_qa: 5 runs, OK; elapsed 1m02s, about 5m10s left
        (generation: 40 left, about 4m00s; serving: 8 left, about 1m10s)'."""
        from .report.terminal import short_id

        runs = len(outcome.result.samples) if outcome.result else 0
        all_done = [d for ds in self.durations.values() for d in ds]
        overall = sum(all_done) / len(all_done)
        left: Dict[str, List[float]] = {}
        for key in self.pending:  # a file none of whose tests has finished: the run's mean so far
            ds = self.durations.get(key) or [overall]
            left.setdefault(self.kinds.get(key, Path(key).name), []).append(sum(ds) / len(ds))
        per_kind = "; ".join(f"{kind}: {len(t)} left, about {_duration(sum(t))}" for kind, t in left.items())
        return (f"npuperf [{self.done}/{self.total}] {short_id(outcome.test_id)}: {runs} runs, {outcome.status}; "
                f"elapsed {_duration(now - self.started)}, about {_duration(sum(sum(t) for t in left.values()))} left"
                + (f" ({per_kind})" if per_kind else ""))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.active or hasattr(session.config, "workerinput"):
            return
        from .errors import BaselineError

        saving = self.perf.settings.save_baseline
        # Before the outputs, so that they show the pooled samples that are saved.
        if saving and not self._record_more_processes(session):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        try:
            self._write_outputs()
        except OSError as exc:
            self.messages.append(f"npuperf: could not write an output file: {exc}")
        if saving:
            try:
                self._save_baselines()
            except BaselineError as exc:
                self.messages.append(f"npuperf: baseline NOT saved: {exc}")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_outputs(self) -> None:
        from .report.terminal import results_document
        from .store.baselines import atomic_write_json

        if not self.perf.outcomes:
            return
        s = self.perf.settings
        doc = results_document(self._run_header(), list(self.perf.outcomes.values()))
        if s.results_path is not None:
            s.results_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(s.results_path, doc)
            self.messages.append(f"npuperf: results written to {s.results_path}")
        if s.export_benchmark_json is not None:
            from .report.export import benchmark_json

            atomic_write_json(s.export_benchmark_json, benchmark_json(doc))
            self.messages.append(f"npuperf: pytest-benchmark JSON written to {s.export_benchmark_json}")
        markdown = s.markdown_path
        if markdown is None and os.environ.get("GITHUB_STEP_SUMMARY"):
            markdown = Path(os.environ["GITHUB_STEP_SUMMARY"])
        if markdown is not None:
            from .report.export import markdown_summary

            with open(markdown, "a", encoding="utf-8") as fh:
                fh.write(markdown_summary(doc))
            self.messages.append(f"npuperf: Markdown summary written to {markdown}")
        if s.html_path is not None:
            from .report.html import render_html

            s.html_path.write_text(render_html(doc, self.perf.store), encoding="utf-8")
            self.messages.append(f"npuperf: HTML report written to {s.html_path}")

    def _run_header(self) -> Dict[str, Any]:
        from .flows.session import utc_now
        from .report.modes import wall_time_by_mode

        self.resolve_preset()
        s = self.perf.settings
        header: Dict[str, Any] = {
            "started_at": self.perf.started_at,
            "finished_at": utc_now(),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()},
            "stack": self.perf.stack,
            "model": self.perf.model_name,
            "wall_time": wall_time_by_mode(self.call_s),
        }
        try:
            device = self.perf.device()
            header.update(device=device.kind, device_name=device.name(), profile=device.profile(),
                          timing=device.timing_source)
        except (DeviceUnavailable, DeviceShared) as exc:
            header["device_unavailable"] = str(exc)
        return header

    def _record_more_processes(self, session: pytest.Session) -> bool:
        """With --npuperf-processes N > 1: run the recorded tests in N - 1 more fresh processes and
        replace each result by the pooled one, with its noise. False when a test could not be
        recorded in every process (it is then not saved)."""
        from .flows.confirm import in_confirmation_child
        from .flows.recording import record_processes

        s = self.perf.settings
        first = {tid: o.result for tid, o in self.perf.outcomes.items()
                 if o.result is not None and (o.passed or s.force)}
        kinds = {str(r.extra.get("device_kind", "")) for r in first.values()}
        processes = max((s.processes_for(kind) for kind in kinds), default=1)
        if processes < 2 or not first or in_confirmation_child():
            return True
        self.perf.release_device()  # the children need the device's memory
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        say = reporter.write_line if reporter is not None else (lambda line: None)
        pooled, problems = record_processes(self.confirm_command, first, Path(str(session.config.rootpath)),
                                            s.worker_index, processes, say)
        for tid, result in pooled.items():
            self.perf.outcomes[tid].result = result
        self.not_recorded.update(set(first) - set(pooled))  # fails closed: never saved, even with --force
        if pooled:
            self.messages.append(f"npuperf: {len(pooled)} test(s) recorded in {processes} fresh processes, "
                                 "with their between-process noise")
        self.messages += [f"npuperf: NOT recorded in every process, so not saved: {line}" for line in problems]
        return not problems

    def _save_baselines(self) -> None:
        groups: Dict[Tuple[str, str], List[Any]] = {}
        skipped = []
        force = self.perf.settings.force
        for outcome in self.perf.outcomes.values():
            if outcome.result is None or not (outcome.passed or force) or outcome.test_id in self.not_recorded:
                skipped.append(outcome.test_id)
                continue
            groups.setdefault((outcome.result.profile, outcome.result.extra["model"]), []).append(outcome.result)
        for (profile, model), results in groups.items():
            noise = {r.test_id: r.extra["noise_cv"] for r in results if r.extra.get("noise_cv")}
            path = self.perf.store.save(profile, model, results, reason=self.perf.settings.reason,
                                        noise_cv=noise, force=force)
            self.messages.append(f"npuperf: saved {len(results)} baseline entries to {path}")
        if skipped:
            self.messages.append(
                f"npuperf: {len(skipped)} failing test(s) not saved as baseline (--npuperf-force saves the "
                "ones that have results): " + ", ".join(skipped)
            )

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if not self.active:
            return
        from .report.terminal import results_document, terminal_summary

        lines: List[str] = []
        if self.perf.outcomes:
            full = self.perf.settings.summary == "full" or config.get_verbosity() >= 1
            doc = results_document(self._run_header(), list(self.perf.outcomes.values()))
            lines = terminal_summary(doc, "full" if full else "attention")
        if lines or self.messages:
            terminalreporter.section("npuperf summary")
            for line in lines + self.messages:
                terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def npuperf_session(pytestconfig: pytest.Config) -> Any:
    """The run's PerfSession; skips every perf test with the reason when the device is absent, and
    fails them when the installed torch / transformers / numpy cannot work together."""
    from .stack.compat import installed_stack_problems

    plugin = pytestconfig.stash[PLUGIN_KEY]
    problems = installed_stack_problems()
    if problems:
        pytest.fail("pytest-npuperf cannot run on this stack: " + "; ".join(problems), pytrace=False)
    try:
        plugin.perf.device()
    except DeviceShared as exc:
        pytest.fail(str(exc), pytrace=False)
    except DeviceUnavailable as exc:
        if plugin.perf.settings.strict:
            pytest.fail(f"{exc} (--npuperf-strict)", pytrace=False)
        pytest.skip(str(exc))
    plugin.check_health()
    return plugin.perf


@pytest.fixture
def npuperf(request: pytest.FixtureRequest, npuperf_session: Any) -> Generator[NpuPerf, None, None]:
    """Measure Mistral generation in this test: ``npuperf.generate(precision, batch_size, workload)``."""
    tolerances: Dict[str, float] = {}
    budgets: Dict[str, float] = {}
    # Closest marker last, so that a test's own marker beats its module's and class's.
    for marker in reversed(list(request.node.iter_markers("npuperf"))):
        if marker.args:
            raise pytest.UsageError(f"{request.node.nodeid}: npuperf marker takes keyword arguments only")
        try:
            tol, bud = marker_overrides(marker.kwargs, f"{request.node.nodeid} npuperf marker")
        except SettingsError as exc:
            raise pytest.UsageError(str(exc)) from None
        tolerances.update(tol)
        budgets.update(bud)
    plugin = request.config.stash[PLUGIN_KEY]
    yield NpuPerf(npuperf_session, request.node.nodeid, tolerances, budgets, request.node.user_properties,
                  plugin.confirm_command, Path(str(request.config.rootpath)))
