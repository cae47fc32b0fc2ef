import textwrap
from pathlib import Path

import fakes
import numpy  # noqa: F401
import pytest
import scipy.stats  # noqa: F401
import torch  # noqa: F401
import transformers.models.mistral.modeling_mistral  # noqa: F401

import pytest_npuperf.devices.calibration
import pytest_npuperf.flows.session  # noqa: F401

# pytester's in-process runs drop the modules first imported inside them; importing numpy,
# scipy, torch and transformers here keeps them loaded once (numpy refuses to be imported twice
# in one process, a second import of torch's C extension crashes it, and a second copy of
# transformers has classes that fail the first copy's isinstance checks). tests/fakes/synthetic.py patches
# pytest_npuperf.flows.session and .devices.calibration: imported here, the runs share the copies it patched, also
# when a test file runs alone.

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "npu_conformance: checks against published torch-npu wheels (downloaded once into "
        "$NPUPERF_WHEEL_CACHE or ~/.cache/pytest-npuperf/wheels; skipped when the index is unreachable)",
    )

TESTS_DIR = Path(__file__).parent

SUITE = textwrap.dedent(
    """
    import pytest

    pytestmark = pytest.mark.npu

    @pytest.mark.parametrize("workload", ["zh_qa", "en_qa"])
    @pytest.mark.parametrize("batch_size", [1, 8], ids=lambda b: f"bs{b}")
    @pytest.mark.parametrize("precision", ["fp16", "bf16"])
    def test_generate(npuperf, precision, batch_size, workload):
        npuperf.generate(precision=precision, batch_size=batch_size, workload=workload)
    """
)


class NpuPerfTester:
    """pytester with a fixed ini, baselines and results in the temporary folder."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        pytester.makeini(
            "[pytest]\nnpuperf_baseline_dir = baselines\nnpuperf_results = results.json\n"
            "npuperf_max_new_tokens = 16\n"
        )
        pytester.syspathinsert(TESTS_DIR)

    @property
    def path(self) -> Path:
        return self.pytester.path

    def fake(self, suite: str = SUITE) -> None:
        """Synthetic measurements (tests/fakes/synthetic.py) behind the real plugin."""
        self.pytester.makeconftest(fakes.install_conftest("synthetic"))
        self.pytester.makepyfile(test_perf=suite)

    def run(self, *args: str, seed: int = 0, **env: str) -> pytest.RunResult:
        self.monkeypatch.setenv("NPUPERF_FAKE_SEED", str(seed))
        for key in ("NPUPERF_FAKE_SLOWDOWN", "NPUPERF_FAKE_SHORT", "NPUPERF_FAKE_MEMORY", "NPUPERF_FAKE_OOM",
                    "NPUPERF_FAKE_SLOWDOWN_ONCE", "NPUPERF_FAKE_DEVICES", "NPUPERF_FAKE_CALIBRATION_SCALE",
                    "NPUPERF_FAKE_CHILD", "NPUPERF_CONFIRMING", "NPUPERF_DEVICE_INDEX", "NPUPERF_FAKE_NAN",
                    "NPUPERF_FAKE_LINEAR_BYTES", "NPUPERF_FAKE_TOKEN", "NPUPERF_FAKE_INDEX_LOG"):
            self.monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        return self.pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


@pytest.fixture
def npt(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> NpuPerfTester:
    return NpuPerfTester(pytester, monkeypatch)
