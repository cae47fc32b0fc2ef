import textwrap
from pathlib import Path

import fakes
import matplotlib
import numpy  # noqa: F401
import pytest
import scipy.stats  # noqa: F401
import torch
import transformers.models.mistral.modeling_mistral  # noqa: F401

import pytest_npuperf.devices.calibration
import pytest_npuperf.flows.session  # noqa: F401

matplotlib.use("Agg")  # as the HTML report sets it
import matplotlib.pyplot

# pytester's in-process runs drop the modules first imported inside them; importing numpy,
# scipy, torch, transformers and matplotlib's pyplot here keeps them loaded once (numpy refuses to be imported twice
# in one process, a second import of torch's C extension crashes it, and a second copy of
# transformers, or of matplotlib's gridspec, has classes that fail the first copy's isinstance
# checks). tests/fakes/synthetic.py patches
# pytest_npuperf.flows.session and .devices.calibration: imported here, the runs share the copies it patched, also
# when a test file runs alone.

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "npu_conformance: checks against published torch-npu wheels (downloaded once into "
        "$NPUPERF_WHEEL_CACHE or ~/.cache/pytest-npuperf/wheels; skipped when the index is unreachable)",
    )
    config.addinivalue_line(
        "markers",
        "attribution_stacks: the attribution on real CPU stacks (skipped unless NPUPERF_ATTRIBUTE_ENVS names a "
        "torch 2.5.1 and a torch 2.6.0 environment's python)",
    )
    config.addinivalue_line(
        "markers",
        "orchestration: a slow test of how the plugin drives several processes (recording processes, fresh "
        "confirmation processes, the attribution's mixes); their children do the torch work that the other tests "
        "do in one process, so the compatibility job runs them on its oldest stack only (.ci/compat)",
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


# -- models shared by the tests of one module (module scope: each module loads its own) ------------

@pytest.fixture(scope="module")
def tiny():
    """The tiny model in bf16 on the CPU."""
    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision

    return load_model("tiny", get_precision("bf16"), "cpu")


@pytest.fixture(scope="module")
def fp32_tiny():
    """The tiny model in float32 (eager and graph give the same greedy tokens, exactly), its
    query and key projections scaled up 10x: random weights attend almost uniformly, so their
    logits barely depend on positions; sharpened, a position or cache bug changes them (a one-step
    position shift drops the logits cosine from 0.9999996 to 0.51). Skips, with compat's reason,
    where the stack cannot run graph mode."""
    from support.skips import require

    from pytest_npuperf.model.loader import load_model
    from pytest_npuperf.precision import get_precision
    from pytest_npuperf.stack import compat

    loaded = load_model("tiny", get_precision("bf16"), "cpu")
    loaded.model.float()
    with torch.no_grad():
        for layer in loaded.model.model.layers:
            layer.self_attn.q_proj.weight.mul_(10.0)
            layer.self_attn.k_proj.weight.mul_(10.0)
    require(compat.require_graph_mode, loaded.model)
    return loaded


@pytest.fixture(scope="module")
def runner(fp32_tiny):
    """A graph runner of fp32_tiny that compiles with dynamo's ``eager`` backend: the same capture
    (fullgraph, static shapes, guards and recompilations) without inductor's code generation."""
    from pytest_npuperf.devices.base import GraphBackend
    from pytest_npuperf.devices.cpu import CpuDevice
    from pytest_npuperf.flows.graph.runner import GraphRunner

    eager_capture = GraphBackend("dynamo-eager", {"backend": "eager", "fullgraph": True, "dynamic": False},
                                 "torch.compile(backend=eager, fullgraph=True, dynamic=False)")
    return GraphRunner(fp32_tiny, CpuDevice(), eager_capture)


# -- the fake torch_npu (tests/fakes/torch_npu.py) ---------------------------------------------------

@pytest.fixture
def fake_npu(monkeypatch):
    """The fake torch_npu installed (no ASCEND_RT_VISIBLE_DEVICES): the module."""
    from fakes import torch_npu as fake_torch_npu

    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    return fake_torch_npu.install(monkeypatch)


@pytest.fixture
def npu(monkeypatch):
    """The fake torch_npu installed: its ``npu`` module, on virtual host and device clocks."""
    from fakes import torch_npu as fake_torch_npu

    return fake_torch_npu.install(monkeypatch).npu


ONE_NPU_TEST = """
import pytest

pytestmark = pytest.mark.npu

def test_generate(npuperf):
    npuperf.generate(precision="bf16", batch_size=1, workload="zh_qa")
"""


@pytest.fixture
def npu_run(npt):
    """pytester with the real plugin on the real-time fake NPU (tests/fakes/npu_session.py) and one
    generation test."""
    npt.pytester.makeconftest(fakes.install_conftest("npu_session"))
    npt.pytester.makepyfile(test_perf=ONE_NPU_TEST)
    return npt
