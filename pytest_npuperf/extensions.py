"""Calling the hooks of hookspec.py, one implementation at a time.

pluggy calls every implementation of a hook at once and returns their bare answers; called one
by one here, in pluggy's order, each answer comes with the name of the plugin that gave it (a
conftest.py's path, or an installed plugin's name), so that a bad answer or an exception says
whose it is. What the answers mean is checked where it is used: stack/fields.py for the stack
fields, model/workloads.py for the workloads.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Tuple

import pytest

from .model.workloads import WorkloadError, WorkloadSet, with_hook_workloads
from .stack.fields import StackFieldError, hook_fields

STACK_FIELDS = "pytest_npuperf_stack_fields"
WORKLOADS = "pytest_npuperf_workloads"
TEST_RESULT = "pytest_npuperf_test_result"
RUN_RESULTS = "pytest_npuperf_run_results"


class HookFailure(Exception):
    """A hook implementation that raised, or answered what cannot be used; names the plugin."""


def answers(config: pytest.Config, name: str) -> List[Tuple[str, Any]]:
    """(plugin name, answer) of every implementation of hook ``name(config)``, in pluggy's calling
    order (tryfirst ones first, then the last registered first). Raises HookFailure, naming the
    plugin, at the first implementation that raises or is a hook wrapper."""
    return [(impl.plugin_name, _call(name, impl, {"config": config})) for impl in _implementations(config, name)]


def stack_fields(config: pytest.Config) -> Dict[str, Any]:
    """The fields every plugin adds to the stack fingerprint, checked."""
    try:
        return hook_fields(answers(config, STACK_FIELDS))
    except StackFieldError as exc:
        raise HookFailure(f"the {STACK_FIELDS} hook: {exc}") from None


def workloads(config: pytest.Config) -> WorkloadSet:
    """The suite's workloads with those every plugin adds or replaces, checked."""
    try:
        return with_hook_workloads(answers(config, WORKLOADS))
    except WorkloadError as exc:
        raise HookFailure(f"the {WORKLOADS} hook: {exc}") from None


def notify(config: pytest.Config, name: str, **data: Any) -> List[str]:
    """Call every implementation of a result hook with ``config`` and its own copy of ``data``;
    one line per implementation that raised (the others are called all the same)."""
    problems = []
    for impl in _implementations(config, name):
        try:
            _call(name, impl, dict(copy.deepcopy(data), config=config))
        except HookFailure as exc:
            problems.append(str(exc))
    return problems


def _implementations(config: pytest.Config, name: str) -> List[Any]:
    return list(reversed(getattr(config.hook, name).get_hookimpls()))


def _call(name: str, impl: Any, kwargs: Dict[str, Any]) -> Any:
    if impl.hookwrapper or getattr(impl, "wrapper", False):  # pluggy < 1.1 has no 'wrapper'
        raise HookFailure(f"the {name} hook of plugin {impl.plugin_name!r} is a hook wrapper; "
                          "implement it as a plain hook")
    try:
        return impl.function(*[kwargs[arg] for arg in impl.argnames])
    except Exception as exc:
        raise HookFailure(f"the {name} hook of plugin {impl.plugin_name!r} raised "
                          f"{type(exc).__name__}: {exc}") from exc
