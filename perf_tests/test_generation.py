"""The Mistral-7B generation suite: precision x batch size x workload of the reference study, in
eager mode (transformers' generate) and in graph mode (the decode step compiled, static KV cache).

Test ids such as ``fp16-bs8-zh_qa`` are the baseline keys: keep them stable. Graph-mode ids end
in ``-graph``; the quick preset runs graph mode at batch 1 and 8.
"""

import pytest

from pytest_npuperf.model.workloads import WORKLOADS
from pytest_npuperf.modes import EXECUTION_MODES
from pytest_npuperf.precision import PRECISIONS

BATCH_SIZES = (1, 2, 4, 8)

pytestmark = pytest.mark.npu


def _cases():
    """Precision outermost (one model load each), eager before graph, as the study's matrix."""
    for precision in PRECISIONS:
        for mode in EXECUTION_MODES:
            for batch in BATCH_SIZES:
                for workload in WORKLOADS:
                    graph = mode == "graph"
                    marks = [pytest.mark.full_only] if graph and batch not in (1, 8) else []
                    yield pytest.param(precision, batch, workload, mode, marks=marks,
                                       id=f"{precision}-bs{batch}-{workload}" + ("-graph" if graph else ""))


@pytest.mark.parametrize("precision,batch_size,workload,mode", list(_cases()))
def test_generate(npuperf, precision, batch_size, workload, mode):
    npuperf.generate(precision=precision, batch_size=batch_size, workload=workload, mode=mode)
