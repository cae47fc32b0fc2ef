"""Version differences of torch and transformers (pytest_npuperf/stack/compat.py).

The branches for older releases are exercised for real by the compatibility job (.ci/compat),
one environment per supported stack; here each branch is also forced on the installed stack, so
that its logic is checked in every run.
"""

import pytest

torch = pytest.importorskip("torch")

from pytest_npuperf.stack import compat  # noqa: E402
from pytest_npuperf.stack.compat import Unsupported, parse_version, stack_problems  # noqa: E402


@pytest.mark.parametrize("text, expected", [
    ("2.1.2+cu121", (2, 1, 2)), ("4.57.0.dev0", (4, 57, 0)), ("2.13.0+cpu", (2, 13, 0)), ("5.24", (5, 24)),
    ("", ()), (None, ()), ("garbage", ()),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("torch_v, transformers_v, numpy_v", [
    ((2, 1, 2), (4, 40, 2), (1, 26, 4)),  # torch_npu 2.1.0.postX with the torch21 extra
    ((2, 5, 1), (4, 57, 6), (2, 2, 6)),  # torch_npu 2.5.1 with the torch25 extra
    ((2, 6, 0), (5, 20, 2), (2, 2, 6)),  # torch_npu 2.6.0, plain install on Python 3.10
    ((2, 13, 0), (5, 24, 0), (2, 4, 6)),  # the newest
    ((2, 4, 1), (5, 14, 0), (2, 1, 0)),
])
def test_supported_stacks_have_no_problem(torch_v, transformers_v, numpy_v):
    assert stack_problems(torch_v, transformers_v, numpy_v) == []


def test_readme_ascend_install_without_the_extra_is_refused_with_the_fix():
    """torch 2.5.1 next to the transformers pip picks without an extra (5.24): the issue's last row."""
    (problem,) = stack_problems((2, 5, 1), (5, 24, 0), (2, 2, 6))
    assert problem == ("transformers 5.24.0 needs torch >= 2.6, but torch 2.5.1 is installed: pip install -e "
                       "'.[torch25]' (pytest-npuperf[torch25]) picks a transformers and numpy for it")


@pytest.mark.parametrize("torch_v, transformers_v, numpy_v, fragment", [
    ((2, 1, 2), (4, 40, 2), (2, 0, 2), "torch 2.1.2 was built against numpy 1, numpy 2.0.2 is installed: pip install -e '.[torch21]'"),
    ((2, 1, 2), (5, 0, 0), (1, 26, 4), "transformers 5.0.0 needs torch >= 2.2"),
    ((2, 4, 1), (5, 15, 0), (1, 26, 4), "transformers 5.15.0 needs torch >= 2.5"),
    ((2, 5, 1), (5, 18, 0), (1, 26, 4), "transformers 5.18.0 needs torch >= 2.6"),
    ((2, 2, 0), (4, 36, 2), (1, 26, 4), "transformers 4.36.2 is older than the supported 4.40: pip install -e '.[torch21]'"),
    ((2, 0, 1), (4, 40, 2), (1, 26, 4), "torch 2.0.1 is older than the supported 2.1"),
    ((2, 5, 1), (), (1, 26, 4), "transformers is not installed: pip install -e '.[torch25]'"),
    ((), (4, 40, 2), (1, 26, 4), "torch is not installed"),
])
def test_broken_stacks_name_the_problem_and_the_fix(torch_v, transformers_v, numpy_v, fragment):
    problems = stack_problems(torch_v, transformers_v, numpy_v)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("torch_v, extra", [((2, 1, 0), "torch21"), ((2, 4, 1), "torch21"), ((2, 5, 1), "torch25"),
                                            ((2, 6, 0), None), ((2, 8, 0), None), ((2, 0, 1), None)])
def test_install_extra_by_torch_line(torch_v, extra):
    assert compat.install_extra(torch_v) == extra


def test_extras_exist_in_the_package_metadata():
    """The extras the error messages name are the ones pyproject.toml declares."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    for _, extra in compat.EXTRA_FOR_TORCH:
        assert f"\n{extra} = [" in text


def test_a_broken_stack_fails_every_perf_test_with_the_reason(npt):
    npt.fake()
    npt.monkeypatch.setattr(compat, "installed_stack_problems", lambda: ["transformers 5.24.0 needs torch >= 2.6"])
    result = npt.run("--npuperf-device=cpu")
    result.assert_outcomes(errors=8)
    result.stdout.fnmatch_lines(["*pytest-npuperf cannot run on this stack: transformers 5.24.0 needs torch >= 2.6*"])


# -- torch -------------------------------------------------------------------------------------

def test_missing_cpu_kernels_skip_with_the_release_that_added_them(monkeypatch):
    monkeypatch.setattr(compat, "_cpu_kernel_works", lambda what: False)
    with pytest.raises(Unsupported, match=r"no float16 matmul on the CPU \(torch 2.2 added it\)"):
        compat.require_dtype("cpu", "float16")
    compat.require_dtype("cpu", "bfloat16")
    compat.require_dtype("npu", "float16")  # only CPUs lacked the kernel
    with pytest.raises(Unsupported, match=r"aten._weight_int8pack_mm.*torch 2.3 added it"):
        compat.require_int8("cpu", "w8a16")
    with pytest.raises(Unsupported, match=r"CPU kernel for torch._int_mm.*torch 2.4 added it"):
        compat.require_int8("cpu", "w8a8")
    compat.require_int8("npu", "w8a8")  # torch_npu's own kernels: not a torch question
    assert compat.calibration_dtypes("cpu") == ("bfloat16",)
    assert compat.calibration_dtypes("cuda") == ("bfloat16", "float16")


def test_the_probes_agree_with_the_installed_torch():
    """A probe that always failed would skip everything; one that always passed would crash."""
    installed = compat.torch_version()
    assert compat._cpu_kernel_works("fp16_matmul") == (installed[:2] >= (2, 2))
    assert compat._cpu_kernel_works("weight_int8pack_mm") == (installed[:2] >= (2, 3))
    assert compat._cpu_kernel_works("int_mm") == (installed[:2] >= (2, 4))


def test_an_unknown_probe_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown probe"):
        compat._cpu_kernel_works.__wrapped__("fp8")


def test_sdpa_without_enable_gqa_repeats_the_kv_heads(monkeypatch):
    """The torch < 2.5 path gives what the GQA path of newer torch gives."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 6, 8, generator=gen)
    k, v = torch.randn(1, 2, 6, 8, generator=gen), torch.randn(1, 2, 6, 8, generator=gen)
    manual = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1), is_causal=True)
    monkeypatch.setattr(compat, "torch_version", lambda: (2, 4, 1))
    assert torch.allclose(compat.sdpa(q, k, v, True), manual, atol=1e-6)
    if parse_version(torch.__version__)[:2] >= (2, 5):
        monkeypatch.setattr(compat, "torch_version", lambda: (2, 5, 1))
        assert torch.allclose(compat.sdpa(q, k, v, True), manual, atol=1e-6)


def test_rotary_matches_the_formula():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 4, 5, 8, generator=gen), torch.randn(1, 2, 5, 8, generator=gen)
    cos, sin = torch.randn(1, 5, 8, generator=gen), torch.randn(1, 5, 8, generator=gen)

    def rotate_half(x):
        return torch.cat((-x[..., 4:], x[..., :4]), dim=-1)

    q_out, k_out = compat.apply_rotary(q, k, cos, sin)
    assert torch.allclose(q_out, q * cos[:, None] + rotate_half(q) * sin[:, None], atol=1e-6)
    assert torch.allclose(k_out, k * cos[:, None] + rotate_half(k) * sin[:, None], atol=1e-6)


class _ListCache:
    """transformers 4.40's DynamicCache: per-layer tensor lists, no crop."""

    def __init__(self, length):
        self.key_cache = [torch.zeros(1, 2, length, 4) for _ in range(2)]
        self.value_cache = [torch.zeros(1, 2, length, 4) for _ in range(2)]
        self._seen_tokens = length

    def get_seq_length(self):
        return self.key_cache[0].shape[-2]


def test_crop_cache_without_crop():
    cache = _ListCache(7)
    compat.crop_cache(cache, 5)
    assert compat.cache_length(cache) == 5 and cache._seen_tokens == 5
    assert all(t.shape[-2] == 5 for t in cache.key_cache + cache.value_cache)
    compat.crop_cache(cache, 6)  # nothing to drop
    assert compat.cache_length(cache) == 5


def test_cache_length_of_a_legacy_tuple():
    legacy = tuple((torch.zeros(1, 2, 9, 4), torch.zeros(1, 2, 9, 4)) for _ in range(2))
    assert compat.cache_length(legacy) == 9


def test_continuous_batching_before_5_4_is_unsupported(monkeypatch):
    monkeypatch.setattr(compat, "transformers_version", lambda: (4, 57, 6))
    with pytest.raises(Unsupported, match=r"needs transformers >= 5.4 .*4.57.6 is installed"):
        compat.continuous_batching_config(4, 256, 1024)


@pytest.mark.parametrize("version, key", [((5, 17, 0), "block_size"), ((5, 18, 0), "page_size")])
def test_continuous_batching_page_size_keyword(monkeypatch, version, key):
    import sys
    import types

    made = {}
    fake = types.ModuleType("transformers.generation.configuration_utils")
    fake.ContinuousBatchingConfig = lambda **kw: made.update(kw) or "config"
    monkeypatch.setitem(sys.modules, "transformers.generation.configuration_utils", fake)
    monkeypatch.setattr(compat, "transformers_version", lambda: version)
    assert compat.continuous_batching_config(4, 256, 1024) == {"continuous_batching_config": "config"}
    assert made == {"num_blocks": 4, "max_batch_tokens": 1024, key: 256}


def test_graph_mode_needs_a_static_cache_the_stack_has(monkeypatch, fp32_tiny):
    monkeypatch.setattr(compat, "transformers_version", lambda: (4, 40, 2))
    with pytest.raises(compat.Unsupported, match="static KV cache.*4.40.2.*--npuperf-mode eager"):
        compat.require_graph_mode(fp32_tiny.model)
