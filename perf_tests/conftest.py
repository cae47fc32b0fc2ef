"""Shape the suite by the preset, and order it.

The quick preset keeps its own workloads (settings), those a ``pytest_npuperf_workloads`` hook
added (every preset runs them), and the cases not marked ``full_only``;
``--npuperf-mode`` keeps the execution modes asked for (eager, graph or both);
every eager test runs before any graph test, each mode precision by precision (each model
loaded once per mode), graph tests grouped by batch size (each shape compiled once), and within a
group operators and steps first,
so that a failing generation test can name the operators and steps that regressed with it.
"""

import pytest

from pytest_npuperf.plugin import get_settings, get_workloads
from pytest_npuperf.precision import PRECISIONS

ORDER = {"test_ops.py": 0, "test_steps.py": 1}
PRECISION_ORDER = list(PRECISIONS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full_only: a case run by the full preset only")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    settings = get_settings(config)
    keep = set(settings.workloads) | set(get_workloads(config).added())  # a team's own run in every preset
    quick = settings.preset == "quick"
    selected, deselected = [], []
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        workload = params.get("workload")
        drop = ((workload and workload not in keep) or (quick and item.get_closest_marker("full_only"))
                or params.get("mode", "eager") not in settings.modes)
        (deselected if drop else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = sorted(selected, key=_order)  # stable within a file


def _order(item: pytest.Item) -> tuple:
    """Every eager test before any graph test: compiled graphs and their code stay in the process,
    and an eager test after them would measure their memory too. Within a mode, precision by
    precision (one model load each per mode); graph tests grouped by batch size (a graph test
    holds only its own shapes, so neighbours sharing one compile it once); each group in file
    order: operators, steps, then the rest."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    precision = params.get("precision")
    rank = PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)
    graph = params.get("mode") == "graph"
    batch = params.get("batch_size") or (params.get("shape") or (99,))[0] if graph else 0
    return graph, rank, batch, ORDER.get(item.path.name, 2)
