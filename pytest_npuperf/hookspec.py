"""The hooks pytest-npuperf offers to teams (docs/hooks.md), registered by ``pytest_addhooks``
in plugin.py.

Implement them in the ``conftest.py`` at the root of the tests (or of the folder given to pytest),
or in an installed plugin: under pytest-xdist the controller, which calls the result hooks,
collects nothing and so loads only those conftest files.

None is ``firstresult``: every implementation's answer counts (the fields and workloads of all
plugins are merged, and every plugin sees every result). None is ``historic``: they are called
after collection has loaded the conftest files, never before a plugin could be registered.
Each implementation is called by itself (pytest_npuperf/extensions.py), so that a bad answer or
an exception names the plugin that gave it; hook wrappers are refused for the same reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import pytest

if TYPE_CHECKING:
    from .model.workloads import Prompt

Scalar = Union[str, int, float, bool, None]


@pytest.hookspec
def pytest_npuperf_stack_fields(config: pytest.Config) -> Optional[Dict[str, Scalar]]:
    """Return fields to add to the stack fingerprint, such as ``{"driver_build": "1051"}``, or None.

    Called once per pytest process that measures (each xdist worker and each fresh confirmation
    process too), after collection. The fields are recorded with every result and baseline under
    the stack's ``hook_fields`` key, shown in the run's header, and a field that changed since the
    baseline is named in the "stack changes since the baseline" line of a failure and in the
    reports, as a built-in field is.

    A name is a str that starts with a letter (then letters, digits, ``_``, ``.``, ``-``), not one
    the fingerprint records itself and not one another plugin gives; a value is a str, int,
    float (finite), bool or None. Anything else, or an exception, ends every perf test in an
    error at setup, with a message that names the plugin and the fix.
    """


@pytest.hookspec
def pytest_npuperf_workloads(config: pytest.Config) -> Optional[List["Prompt"]]:
    """Return workloads to add or replace, as a list of ``pytest_npuperf.Prompt(prompt_id, text)``,
    or None.

    A new id adds a workload: the suite's generation tests run it in every preset (ids such as
    ``fp16-bs1-<prompt_id>``) and ``npuperf.generate(workload=prompt_id)`` accepts it. An id of
    the suite's own (``zh_qa``, ``en_qa``, ``code_gen``, ``reasoning``, ``long_summary``) is
    replaced only with ``Prompt(prompt_id, text, replace=True)``. The text of a prompt a hook
    gave is part of the workload identity, so a baseline recorded with other text, or with the
    suite's own, is a MISMATCH until it is recorded again. Called once per pytest process, when
    the workloads are first needed (collection of the suite, or the first perf test).

    An id that is not letters, digits and underscores, an empty text, an id taken without
    ``replace=True``, a replacement of an id that does not exist, or an item that is not a Prompt
    is an error naming the plugin: a usage error while the suite is collected, an error at setup
    of each perf test otherwise.
    """


@pytest.hookspec
def pytest_npuperf_test_result(config: pytest.Config, nodeid: str, outcome: Dict[str, Any]) -> None:
    """See one perf test's result, for example to post it to a dashboard.

    Called once per perf test that produced an outcome, after its teardown, in the process that
    writes the results: the xdist controller under ``-n``, never an xdist worker or a fresh
    confirmation process. ``outcome`` is the test's entry of the results document: ``status``
    (OK, DRIFT, IMPROVED, REGRESSED, INCONCLUSIVE, MISMATCH, NO_BASELINE, UNCONFIRMED, ERROR),
    ``passed`` (the pytest outcome), ``comparison`` (the verdict of each metric, the stack
    changes) and ``result`` (workload, raw samples, stack). It is a copy: changing it changes
    nothing else.

    An exception is reported in the summary with the plugin's name and fails the run (exit
    status 1); the other tests, their results and the other plugins' hooks go on.
    """


@pytest.hookspec
def pytest_npuperf_run_results(config: pytest.Config, results: Dict[str, Any], path: Optional[Path]) -> None:
    """See the run's results document, for example to post it to a dashboard.

    Called once at the end of a run with perf tests, in the process that writes the results (the
    xdist controller under ``-n``), after every output file was written: ``path`` is where the
    document is (``--npuperf-results``), or None where no results file was asked for or it
    could not be written. ``results`` is the document itself (``run``: settings, stack, device,
    wall time; ``tests``: each test's outcome), a copy.

    An exception is reported in the summary with the plugin's name and fails the run (exit
    status 1); the files on disk are complete by then.
    """
