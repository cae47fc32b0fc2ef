"""The Mistral-7B generation suite: precision x batch size x workload of the reference study.

Test ids such as ``fp16-bs8-zh_qa`` are the baseline keys: keep them stable.
"""

import pytest

from pytest_npuperf.precision import PRECISIONS
from pytest_npuperf.workloads import WORKLOADS

BATCH_SIZES = (1, 2, 4, 8)

pytestmark = pytest.mark.npu


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("batch_size", BATCH_SIZES, ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_generate(npuperf, precision, batch_size, workload):
    npuperf.generate(precision=precision, batch_size=batch_size, workload=workload)
