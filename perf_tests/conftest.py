"""Shape the suite by the preset, and order it.

The quick preset keeps its own workloads (settings) and the cases not marked ``full_only``;
operators and steps run first, so that a failing generation test can name the operators and
steps that regressed with it.
"""

import pytest

from pytest_npuperf.plugin import get_settings

ORDER = {"test_ops.py": 0, "test_steps.py": 1}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full_only: a case run by the full preset only")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    settings = get_settings(config)
    keep = set(settings.workloads)
    quick = settings.preset == "quick"
    selected, deselected = [], []
    for item in items:
        workload = getattr(item, "callspec", None) and item.callspec.params.get("workload")
        drop = (workload and workload not in keep) or (quick and item.get_closest_marker("full_only"))
        (deselected if drop else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = sorted(selected, key=lambda item: ORDER.get(item.path.name, 2))  # stable within a file
