"""The NPU path checked against published torch-npu wheels (marker ``npu_conformance``).

For the oldest supported, one middle and the newest torch-npu release (tests/support/torch_npu_wheels.py;
override with NPUPERF_TORCH_NPU_VERSIONS), downloaded once into the wheel cache and unpacked
without installing:

1. every name, keyword and environment variable in ``pytest_npuperf.stack.npu_api`` exists in
   the wheel (an ``optional`` name may be missing except in the newest);
2. the int8 calls exactly as ``model/quant.py`` makes them pass the wheel's own meta functions, for fp16
   and bf16 activations, at Mistral-7B's layer shapes;
3. the fake torch_npu of that version agrees with the real meta functions on every probe in
   tests/support/npu_probes.py, apart from the documented limits listed there;
4. the fake's version-dependent surface (keywords, ``get_cann_version``, device properties)
   matches the wheel;
5. graph mode (``pytest_npuperf/devices/npu_graph.py``): the torchair and npugraph_ex names the
   project uses resolve in the wheel's ``torch_npu/dynamo`` sources (item 1), the mode strings
   each release accepts are the ones ``npu_api.GRAPH_MODE_SINCE`` expects (so a release where
   the project raises Unsupported really lacks the mode), the import proxies the project relies
   on exist, and tests/fakes/torchair.py has the release's options, modes and signatures.

Run every cached release with NPUPERF_TORCH_NPU_VERSIONS=2.1.0.post8,2.1.0.post10,... .

The meta functions run with the local torch, not the torch each wheel pins: what is checked is
the wheel's meta logic. Without network access to the package index the tests skip with the
reason; a wheel that cannot be read or parsed fails them.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import types
from typing import Any, Dict

import pytest
from fakes import npu_ops as fake_npu_ops
from fakes import torch_npu as fake_torch_npu
from fakes import torchair as fake_torchair
from packaging.version import Version
from support import npu_probes
from support import torch_npu_meta as meta
from support import torch_npu_wheels as wheels

from pytest_npuperf.model import quant
from pytest_npuperf.stack import npu_api

NEWEST = max(wheels.versions(), key=Version)


@pytest.fixture(scope="session")
def wheel_files() -> Dict[str, Any]:
    files = {}
    for version in wheels.versions():
        try:
            files[version] = wheels.download(version)
        except wheels.IndexUnreachable as exc:
            pytest.skip(str(exc))
    return files


@pytest.fixture(scope="session", params=wheels.versions())
def wheel(request: pytest.FixtureRequest, wheel_files: Dict[str, Any]) -> wheels.Wheel:
    return wheels.Wheel(request.param, wheel_files[request.param])


@pytest.fixture(scope="session")
def meta_ops(wheel: wheels.Wheel) -> meta.MetaOps:
    return meta.MetaOps(wheel)


def _check_use(wheel: wheels.Wheel, use: npu_api.ApiUse) -> str:
    """'' when the wheel has the name (and keywords), else what is missing."""
    if use.kind == "python":
        found = wheel.resolve(use.path)
        if found is None:
            return "missing"
        if use.keywords:
            if found.keywords is None:
                return "not callable"
            missing = [k for k in use.keywords if k not in found.keywords]
            if missing and not found.var_kw:
                return f"no keyword {', '.join(missing)}"
        return ""
    if use.kind == "op":
        schema = wheel.schemas().get(use.path.rpartition(".")[2])
        if schema is None:
            return "no op schema"
        names = {a.name for a in schema}
        missing = [k for k in use.keywords if k not in names]
        return f"no argument {', '.join(missing)}" if missing else ""
    if use.kind in ("compiled", "env"):
        return "" if wheel.binary_has(use.path.rpartition(".")[2]) else "not in any source or library"
    raise AssertionError(f"unknown kind {use.kind!r} of {use.path}")


@pytest.mark.npu_conformance
def test_every_name_the_project_uses_exists(wheel: wheels.Wheel, record_property: Any) -> None:
    problems, absent_optional = [], []
    for use in npu_api.USES + npu_api.ENV_USES:
        problem = _check_use(wheel, use)
        if not problem:
            continue
        if use.optional and wheel.version != NEWEST:
            absent_optional.append(use.path)
        else:
            problems.append(f"{use.path}: {problem}")
    record_property("absent_optional", ",".join(absent_optional))
    assert not problems, f"torch_npu {wheel.version}:\n" + "\n".join(problems)


@pytest.mark.npu_conformance
def test_error_phrases_the_project_recognises_are_raised_by_the_release(wheel: wheels.Wheel) -> None:
    """devices/__init__.py keys its hints on these phrases; a reworded error would lose its hint."""
    for phrase, since in npu_api.ERROR_PHRASES.items():
        present = any(phrase in wheel.read_text(m) for m in sorted(wheel.members)
                      if m.startswith("torch_npu/") and m.endswith("__init__.py"))
        if Version(wheel.version) >= Version(since):
            assert present, f"torch_npu {wheel.version} no longer raises {phrase!r}"


def _meta_torch_npu(ops: meta.MetaOps) -> types.ModuleType:
    """A torch_npu module whose int8 ops are the wheel's schema + meta functions."""
    mod = types.ModuleType("torch_npu")
    for name in ("npu_weight_quant_batchmatmul", "npu_dynamic_quant", "npu_quant_matmul"):
        setattr(mod, name, lambda *a, _name=name, **k: ops.call(_name, *a, **k))
    return mod


def _meta_decoder(dtype: Any) -> Any:
    """Mistral-7B's decoder linear shapes on the meta device, in the layout quantize_model expects."""
    import torch

    shapes = {"q_proj": (4096, 4096), "k_proj": (4096, 1024), "v_proj": (4096, 1024), "o_proj": (4096, 4096),
              "gate_proj": (4096, 14336), "up_proj": (4096, 14336), "down_proj": (14336, 4096)}
    layer = torch.nn.ModuleDict({name: torch.nn.Linear(k, n, bias=False, device="meta", dtype=dtype)
                                 for name, (k, n) in shapes.items()})
    inner = torch.nn.Module()
    inner.layers = torch.nn.ModuleList([layer])
    model = torch.nn.Module()
    model.model = inner
    return model


@pytest.mark.npu_conformance
@pytest.mark.parametrize("scheme", quant.SCHEMES)
@pytest.mark.parametrize("act", ["float16", "bfloat16"])
def test_project_int8_calls_pass_the_real_meta_functions(meta_ops: meta.MetaOps, monkeypatch: pytest.MonkeyPatch,
                                                         scheme: str, act: str) -> None:
    import torch

    dtype = getattr(torch, act)
    monkeypatch.setitem(sys.modules, "torch_npu", _meta_torch_npu(meta_ops))
    model = _meta_decoder(dtype)
    replaced = quant.quantize_model(model, scheme, "npu")
    assert len(replaced) == 7
    for name, linear in model.model.layers[0].items():
        for rows in (1, 8, 8 * 512):  # decode at batch 1 and 8, a batch-8 prefill
            x = torch.empty((rows, linear.in_features), dtype=dtype, device="meta")
            try:
                y = linear(x)
            except meta.Rejected as exc:
                pytest.fail(f"torch_npu {meta_ops.version} rejects model/quant.py's {scheme} call for {name} "
                            f"({rows}x{linear.in_features} {act}): {exc}", pytrace=False)
            assert (tuple(y.shape), y.dtype) == ((rows, linear.out_features), dtype), name


def _verdict(call: Any) -> str:
    try:
        call()
    except (meta.Rejected, fake_npu_ops.ContractError, TypeError):
        return "reject"
    return "accept"


@pytest.mark.npu_conformance
def test_fake_agrees_with_the_real_meta_functions(meta_ops: meta.MetaOps, record_property: Any) -> None:
    version = meta_ops.version
    fake = fake_torch_npu.build(version=version)
    generation = fake_npu_ops.generation(version)
    disagreements, verdicts = {}, set()
    for probe in npu_probes.PROBES:
        args, kwargs = probe.build()
        real = _verdict(lambda op=probe.op, a=args, kw=kwargs: meta_ops.call(op, *a, **kw))
        args, kwargs = probe.build()
        faked = _verdict(lambda op=probe.op, a=args, kw=kwargs: getattr(fake, op)(*a, **kw))
        verdicts.add(real)
        if real != faked:
            disagreements[probe.id] = f"real {real}s, fake {faked}s"
    allowed = {pid for pid, gen in npu_probes.DOCUMENTED_STRICTER if gen == generation}
    unexpected = {pid: why for pid, why in disagreements.items() if pid not in allowed or "fake accepts" in why}
    stale = allowed - set(disagreements)
    record_property("probes_agreeing", len(npu_probes.PROBES) - len(disagreements))
    assert verdicts == {"accept", "reject"}, "the probe table must contain calls the real op accepts and rejects"
    assert not unexpected, f"torch_npu {version}: fake and real meta functions disagree: {unexpected}"
    assert not stale, f"torch_npu {version}: DOCUMENTED_STRICTER lists probes that now agree: {sorted(stale)}"


_MODELLED_KEYWORDS = {
    "npu_weight_quant_batchmatmul": ("inner_precise", "weight_dtype"),
    "npu_dynamic_quant": ("group_index", "dst_type", "quant_mode"),
    "npu_quant_matmul": ("group_sizes",),
}


@pytest.mark.npu_conformance
def test_fake_surface_matches_the_release(wheel: wheels.Wheel) -> None:
    import torch

    fake = fake_torch_npu.build(version=wheel.version)
    x, w = torch.empty((4, 128), dtype=torch.float16, device="meta"), torch.empty((256, 128), dtype=torch.int8, device="meta").t()
    qx, w_kn = torch.empty((4, 128), dtype=torch.int8, device="meta"), torch.empty((128, 256), dtype=torch.int8, device="meta")
    calls = {
        "npu_weight_quant_batchmatmul": lambda **k: fake.npu_weight_quant_batchmatmul(
            x, w, torch.empty((256,), dtype=torch.float16, device="meta"), **k),
        "npu_dynamic_quant": lambda **k: fake.npu_dynamic_quant(x, **k),
        "npu_quant_matmul": lambda **k: fake.npu_quant_matmul(
            qx, w_kn, torch.empty((256,), device="meta"), output_dtype=torch.float16, **k),
    }
    defaults = {"inner_precise": 0, "weight_dtype": None, "group_index": None, "dst_type": None,
                "quant_mode": "pertoken", "group_sizes": None}
    mismatches = []
    for op, keywords in _MODELLED_KEYWORDS.items():
        schema = {a.name for a in wheel.schemas()[op]}
        for keyword in keywords:
            accepted = _verdict(lambda call=calls[op], k=keyword: call(**{k: defaults[k]})) == "accept"
            if accepted != (keyword in schema):
                mismatches.append(f"{op}({keyword}=...): schema {'has' if keyword in schema else 'lacks'} it, "
                                  f"fake {'accepts' if accepted else 'rejects'} it")
    real_cann = wheel.resolve("torch_npu.npu.utils.get_cann_version") is not None
    if hasattr(fake.npu.utils, "get_cann_version") != real_cann:
        mismatches.append(f"get_cann_version: real {'has' if real_cann else 'lacks'} it")
    props = fake.npu.get_device_properties(0)
    for attr in ("cube_core_num", "vector_core_num"):
        if hasattr(props, attr) != wheel.binary_has(attr):
            mismatches.append(f"device property {attr}: real {'has' if wheel.binary_has(attr) else 'lacks'} it")
    assert not mismatches, f"torch_npu {wheel.version}:\n" + "\n".join(mismatches)


# --- graph mode: torchair and npugraph_ex (devices/npu_graph.py) --------------------------------

_TA, _EX = "torch_npu.dynamo.torchair", "torch_npu.dynamo.npugraph_ex"


def _graph_modes(wheel: wheels.Wheel) -> Dict[str, bool]:
    """Which of the project's graph modes the release offers, read from its sources."""
    choices = wheel.option_choices(_TA + ".CompilerConfig.mode")
    ex = wheel.option_choices(_EX + ".CompilerConfig.mode")
    modes = {mode: bool(choices) and mode in choices[1] for mode in ("max-autotune", "reduce-overhead")}
    modes["npugraph_ex"] = (wheel.resolve(_EX + ".get_npu_backend") is not None and ex is not None
                            and "npugraph_ex" in ex[1])
    return modes


@pytest.mark.npu_conformance
def test_graph_modes_are_where_the_project_expects_them(wheel: wheels.Wheel) -> None:
    """npu_graph.py raises Unsupported for a mode before its GRAPH_MODE_SINCE release: the wheel must
    really lack it there, and really have it from there on."""
    offered = _graph_modes(wheel)
    expected = {mode: Version(wheel.version) >= Version(since) for mode, since in npu_api.GRAPH_MODE_SINCE.items()}
    assert offered == expected, f"torch_npu {wheel.version}: graph modes offered {offered}, expected {expected}"
    backend = wheel.resolve(_TA + ".get_npu_backend")
    assert backend is not None and isinstance(backend.node, ast.FunctionDef)
    assert "compiler_config" in [a.arg for a in backend.node.args.kwonlyargs], "get_npu_backend(*, compiler_config)"


@pytest.mark.npu_conformance
def test_torch_npu_makes_torchair_and_npugraph_ex_importable(wheel: wheels.Wheel) -> None:
    """npu_graph.py imports ``torchair`` / ``npugraph_ex`` by their top-level names, after
    ``torch._dynamo``: torch_npu must install the proxies, on that import where it defers them."""
    dynamo = wheel.read_text("torch_npu/dynamo/__init__.py")
    assert "_LazyTorchair" in dynamo and re.search(r"sys\.modules\[['\"]torchair['\"]\]\s*=", dynamo)
    if Version(wheel.version) >= Version(npu_api.GRAPH_MODE_SINCE["npugraph_ex"]):
        assert re.search(r"NPUGRAPH_EX_BACKEND\s*=\s*['\"]npugraph_ex['\"]", dynamo)
        assert re.search(r"sys\.modules\[NPUGRAPH_EX_BACKEND\]\s*=\s*_LazyNpuGraphEx", dynamo)
        # the reason npu_graph.py prefers npugraph_ex over reduce-overhead where both exist
        config = wheel.read_text("torch_npu/dynamo/torchair/configs/compiler_config.py")
        assert re.search(r'Please use the \\?"npugraph_ex\\?" backend', config)
    deferred = "torch_npu/utils/_dynamo.py"
    if deferred in wheel.members and "def _lazy_dynamo_setup" in wheel.read_text(deferred):
        assert '_target = "torch._dynamo"' in wheel.read_text(deferred)


def _fake_choices(package: Any) -> Any:
    mode = vars(package.CompilerConfig()).get("mode")
    return None if mode is None else (mode.default, tuple(mode.optional))


@pytest.mark.npu_conformance
def test_fake_torchair_matches_the_release(wheel: wheels.Wheel) -> None:
    fake = fake_torchair.build(wheel.version)
    mismatches = []
    for name, prefix in (("torchair", _TA), ("npugraph_ex", _EX)):
        real_attrs = {a for a in wheel.instance_attributes(prefix + ".CompilerConfig") if not a.startswith("_")}
        package = fake.get(name)
        fake_attrs = set(fake_torchair.compiler_config_attrs(wheel.version, name)) if package else set()
        if real_attrs != fake_attrs:
            mismatches.append(f"{name}.CompilerConfig options: real has {sorted(real_attrs - fake_attrs)} more, "
                              f"fake has {sorted(fake_attrs - real_attrs)} more")
        real_choices = wheel.option_choices(prefix + ".CompilerConfig.mode")
        fake_choices = _fake_choices(package) if package else None
        if real_choices != fake_choices:
            mismatches.append(f"{name}.CompilerConfig.mode: real {real_choices}, fake {fake_choices}")
        real_fn = wheel.resolve(prefix + ".get_npu_backend")
        real_kwonly = [a.arg for a in real_fn.node.args.kwonlyargs] if real_fn is not None else None
        fake_kwonly = ([n for n, p in inspect.signature(package.get_npu_backend).parameters.items()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY] if package else None)
        if real_kwonly != fake_kwonly:
            mismatches.append(f"{name}.get_npu_backend keyword-only arguments: real {real_kwonly}, fake {fake_kwonly}")
    assert not mismatches, f"torch_npu {wheel.version}:\n" + "\n".join(mismatches)


# --- the harness itself fails closed (no network needed) ------------------------------------

def test_an_unreadable_wheel_is_an_error(tmp_path: Any) -> None:
    bad = tmp_path / "torch_npu-0.0-cp310-cp310-manylinux2014_x86_64.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(wheels.WheelError):
        wheels.Wheel("0.0", bad)


def test_meta_code_that_needs_the_compiled_torch_npu_is_an_error_not_a_verdict() -> None:
    source = (
        "import torch\nfrom torch.library import Library, impl\nimport torch_npu\n"
        "from torch_npu.utils._error_code import ErrCode, ops_error\n"
        "m = Library('npu', 'IMPL', 'Meta')\n\n"
        "@impl(m, 'npu_checked')\n"
        "def checked(x):\n    torch._check(x.dim() == 2, lambda: 'x must be 2-D' + ops_error(ErrCode.VALUE))\n"
        "    return x.new_empty(x.shape)\n\n"
        "@impl(m, 'npu_needs_c')\n"
        "def needs_c(x):\n    return torch_npu._C.something(x)\n"
    )
    import torch

    functions = meta.load_meta_functions(source, "probe")
    assert sorted(functions) == ["npu_checked", "npu_needs_c"]
    with pytest.raises(RuntimeError, match="x must be 2-D"):
        functions["npu_checked"](torch.empty(3, device="meta"))
    with pytest.raises(meta.StubUsed):
        functions["npu_needs_c"](torch.empty(3, device="meta"))
    assert not issubclass(meta.StubUsed, (RuntimeError, ValueError, IndexError))  # never counted as a rejection


def test_a_meta_file_without_functions_is_an_error() -> None:
    with pytest.raises(wheels.WheelError):
        meta.load_meta_functions("import torch\nX = 1\n", "empty")


def test_unreachable_index_skips_and_other_pip_failures_fail(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def fake_run(output: str) -> Any:
        return lambda *a, **k: subprocess.CompletedProcess(a, 1, "", output)

    monkeypatch.setattr(subprocess, "run", fake_run("ERROR: Could not find a version that satisfies the requirement "
                                                     "torch-npu==2.5.1 (from versions: none)"))
    with pytest.raises(wheels.IndexUnreachable):
        wheels.download("2.5.1", tmp_path)
    monkeypatch.setattr(subprocess, "run", fake_run("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES"))
    with pytest.raises(wheels.WheelError):
        wheels.download("2.5.1", tmp_path)
