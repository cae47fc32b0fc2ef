"""Shape the suite by the preset: the quick preset keeps only its workloads."""

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
        items[:] = selected
