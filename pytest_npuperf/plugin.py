"""pytest wiring: options, markers, the teams' hooks (hookspec.py), pytest_configure and the
fixtures. Nothing else.

Nothing heavy is imported here: torch and torch_npu are imported only when a test asks for
the ``npuperf`` fixture, so ``pytest --help`` works where ``import torch_npu`` fails. The run
itself is carried by :class:`pytest_npuperf.hooks.NpuPerfRun`, registered once the settings
are valid.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Dict, Generator

import pytest

from . import hookspec
from .devices import DeviceBroken, DeviceShared, DeviceUnavailable, prepare_torch_import
from .extensions import HookFailure
from .fixture import NpuPerf
from .flows.confirm import child_device_index
from .flows.session import PerfSession
from .hooks import NpuPerfRun
from .model.workloads import BUILT_IN, WorkloadSet
from .options import add_options, child_command, raw_settings
from .settings import Settings, SettingsError, build_settings, marker_overrides
from .stack import compat

SETTINGS_KEY = pytest.StashKey[Settings]()
RUN_KEY = pytest.StashKey[NpuPerfRun]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def get_settings(config: pytest.Config) -> Settings:
    """The run's validated settings (for conftest files that shape the suite), the preset resolved
    for the device (quick on a CPU unless one was given)."""
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        config.stash[SETTINGS_KEY] = run.resolve_preset()
    return config.stash[SETTINGS_KEY]


def get_workloads(config: pytest.Config) -> WorkloadSet:
    """The run's workloads (for conftest files and test modules that parametrize by workload):
    the suite's own with those the pytest_npuperf_workloads hooks add or replace. A bad answer of
    a hook is a usage error naming the plugin."""
    run = config.stash.get(RUN_KEY, None)
    if run is None:  # pytest --help
        return BUILT_IN
    try:
        return run.workloads()
    except HookFailure as exc:
        raise pytest.UsageError(f"pytest-npuperf: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "npu: a Mistral inference performance test (run with -m npu).")
    config.addinivalue_line(
        "markers",
        "npuperf(tolerance={metric: fraction}, budget={metric: limit}): per-test regression budgets "
        "and absolute budgets on metric medians (upper limit for times and memory, lower for tokens_per_s).",
    )
    if config.getoption("help", False):
        return
    try:
        settings = build_settings(raw_settings(config), Path(str(config.rootpath)))
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
    run = NpuPerfRun(settings, child_command(config), config)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(run, "npuperf-run")


@pytest.fixture(scope="session")
def npuperf_session(pytestconfig: pytest.Config) -> PerfSession:
    """The run's PerfSession; skips every perf test with the reason when the device is absent, and
    fails them when the installed torch / transformers / numpy cannot work together."""
    run = pytestconfig.stash[RUN_KEY]
    problems = compat.installed_stack_problems()  # looked up per run: tests replace it
    if problems:
        pytest.fail("pytest-npuperf cannot run on this stack: " + "; ".join(problems), pytrace=False)
    failure = None
    try:
        run.stack_fields()
        run.workloads()
    except HookFailure as exc:
        failure = exc
    if failure is not None:  # every perf test fails with it: a result must carry what the team asked for
        pytest.fail(f"pytest-npuperf: {failure}", pytrace=False)
    try:
        run.perf.device()
    except (DeviceShared, DeviceBroken) as exc:  # never a skip: the numbers would be wrong or missing
        pytest.fail(str(exc), pytrace=False)
    except DeviceUnavailable as exc:
        if run.perf.settings.strict:
            pytest.fail(f"{exc} (--npuperf-strict)", pytrace=False)
        pytest.skip(str(exc))
    run.check_health()
    return run.perf


@pytest.fixture
def npuperf(request: pytest.FixtureRequest, npuperf_session: PerfSession) -> Generator[NpuPerf, None, None]:
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
    run = request.config.stash[RUN_KEY]
    yield NpuPerf(npuperf_session, request.node.nodeid, tolerances, budgets, request.node.user_properties,
                  run.confirm_command, Path(str(request.config.rootpath)))
