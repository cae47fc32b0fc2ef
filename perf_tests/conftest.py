"""Shape the suite: the quick preset keeps only its workloads; operators and steps run first,
so that a failing generation test can name the operators and steps that regressed with it."""

import pytest

from pytest_npuperf.plugin import get_settings


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    keep = set(get_settings(config).workloads)
    selected, deselected = [], []
    for item in items:
        workload = getattr(item, "callspec", None) and item.callspec.params.get("workload")
        (deselected if workload and workload not in keep else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    order = {"test_ops.py": 0, "test_steps.py": 1}
    items[:] = sorted(selected, key=lambda item: order.get(item.path.name, 2))  # stable within a file
