"""The Mistral-7B generation suite: precision x batch size x workload of the reference study, in
eager mode (transformers' generate) and in graph mode (the decode step compiled, static KV cache).

Test ids such as ``fp16-bs8-zh_qa`` are the baseline keys: keep them stable. Graph-mode ids end
in ``-graph``; the quick preset runs graph mode at batch 1 and 8. The workloads are the run's:
the suite's five, with those a ``pytest_npuperf_workloads`` hook adds or replaces (docs/hooks.md).
"""

import pytest

from pytest_npuperf.modes import EXECUTION_MODES
from pytest_npuperf.plugin import get_workloads
from pytest_npuperf.precision import PRECISIONS

BATCH_SIZES = (1, 2, 4, 8)

pytestmark = pytest.mark.npu


def _cases(workloads):
    """Precision outermost (one model load each), eager before graph, as the study's matrix."""
    for precision in PRECISIONS:
        for mode in EXECUTION_MODES:
            for batch in BATCH_SIZES:
                for workload in workloads:
                    graph = mode == "graph"
                    marks = [pytest.mark.full_only] if graph and batch not in (1, 8) else []
                    yield pytest.param(precision, batch, workload, mode, marks=marks,
                                       id=f"{precision}-bs{batch}-{workload}" + ("-graph" if graph else ""))


def pytest_generate_tests(metafunc):
    """The run's workloads: the suite's own with those a pytest_npuperf_workloads hook gave."""
    if metafunc.definition.name == "test_generate":
        cases = list(_cases(get_workloads(metafunc.config).names()))
        metafunc.parametrize("precision,batch_size,workload,mode", cases)


def test_generate(npuperf, precision, batch_size, workload, mode):
    npuperf.generate(precision=precision, batch_size=batch_size, workload=workload, mode=mode)
