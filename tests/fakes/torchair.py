"""A fake torchair (and npugraph_ex) with the real API's names, per torch_npu release.

What each release has (checked against the wheels by tests/stack/test_npu_api_conformance.py):

- ``torchair.CompilerConfig()``: the option attributes its ``__init__`` sets in that release
  (``aclgraph_config`` from 2.1.0.post17 and 2.8, ``npugraphex_config`` and the
  ``post_grad_custom_*_pass`` options from 2.11); ``mode`` from 2.1.0.post12 accepting
  "max-autotune" and "reduce-overhead", plus "npugraph_ex" from 2.11. Setting an option the
  release lacks, or a value its list lacks, raises ValueError, as the real ``NpuBaseConfig``
  and ``OptionValue`` do.
- ``torchair.get_npu_backend(*, compiler_config=None, custom_decompositions={})``: keyword-only,
  as in every release; from 2.11 it warns (DeprecationWarning) on "reduce-overhead".
- ``npugraph_ex`` (from 2.11): its own ``CompilerConfig`` (``mode`` accepts "npugraph_ex" only;
  ``unsafe_skip_npugraph_capture_validation`` from 2.14) and ``get_npu_backend``.

The backend object works with ``torch.compile`` on a CPU: it records what it was built with and
every graph dynamo hands it (the graph, the example inputs, whether any shape was symbolic,
the extra keyword arguments), then runs the FX graph eagerly (``gm.forward``). A release built
without torchair (``bundled=False``) leaves ``import torchair`` failing.

``install(monkeypatch, version=...)`` puts the modules in ``sys.modules`` under the names the
real ones are imported by (``torchair``, ``npugraph_ex``) and the paths of their files
(``torch_npu.dynamo.torchair``, ``torch_npu.dynamo.npugraph_ex``); ``installed(...)`` does the
same with a fake torch_npu (tests/fakes/torch_npu.py) for code without a monkeypatch.
"""

from __future__ import annotations

import contextlib
import sys
import types
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from packaging.version import Version

from fakes import torch_npu as fake_torch_npu

__all__ = ["build", "install", "installed", "module_entries", "torchair_modes", "has_npugraph_ex", "compiler_config_attrs"]

_BASE_ATTRS = ("debug", "aoe_config", "export", "dump_config", "fusion_config", "experimental_config",
               "inference_config", "ge_config")
_EX_ATTRS = ("force_eager", "use_graph_pool", "reuse_graph_pool_in_same_fx", "capture_limit", "clone_input",
             "clone_output", "disable_static_kernel_compile_cache", "static_kernel_compile", "frozen_parameter",
             "remove_noop_ops", "remove_cat_ops", "inplace_pass", "input_inplace_pass", "pattern_fusion_pass",
             "post_grad_custom_pre_pass", "post_grad_custom_post_pass", "dump_tensor_data", "data_dump_stage",
             "data_dump_dir", "super_kernel_optimize", "super_kernel_optimize_options", "super_kernel_debug_options",
             "deadlock_check", "capture_error_mode", "mode", "force_recapture", "record_statistics_debug_info")


def _in_21_line(v: Version) -> bool:
    return v < Version("2.2")


def torchair_modes(version: str) -> Optional[Tuple[str, ...]]:
    """The strings ``CompilerConfig.mode`` accepts; None where the option is absent."""
    v = Version(version)
    if _in_21_line(v) and v < Version("2.1.0.post12"):
        return None
    if v >= Version("2.11"):
        return ("max-autotune", "reduce-overhead", "npugraph_ex")
    return ("max-autotune", "reduce-overhead")


def has_npugraph_ex(version: str) -> bool:
    return Version(version) >= Version("2.11")


def compiler_config_attrs(version: str, package: str = "torchair") -> Tuple[str, ...]:
    """The option attributes ``CompilerConfig()`` has in this release."""
    v = Version(version)
    if package == "npugraph_ex":
        extra = ("unsafe_skip_npugraph_capture_validation",) if v >= Version("2.14") else ()
        return _EX_ATTRS + extra
    attrs = list(_BASE_ATTRS)
    if v >= Version("2.8") or (_in_21_line(v) and v >= Version("2.1.0.post17")):
        attrs.append("aclgraph_config")
    if v >= Version("2.11"):
        attrs += ["npugraphex_config", "post_grad_custom_pre_pass", "post_grad_custom_post_pass"]
    if torchair_modes(version) is not None:
        attrs.append("mode")
    return tuple(attrs)


class OptionValue:
    """One option: a default and, where the release restricts it, the accepted values."""

    def __init__(self, default: Any, optional: Optional[Sequence[Any]] = None) -> None:
        self._default, self._optional, self._value = default, optional, default

    @property
    def default(self) -> Any:
        return self._default

    @property
    def optional(self) -> Optional[Sequence[Any]]:
        return self._optional

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, v: Any) -> None:
        if isinstance(self._optional, (list, tuple)) and v not in self._optional:
            raise ValueError(f"Value {v!r} (type: {type(v)}) not in optional list {list(self._optional)!r}")
        self._value = v


class NpuBaseConfig:
    """Options are fixed once constructed: a new name or a value outside the list is a ValueError."""

    def __init__(self) -> None:
        self._fixed_attrs = [k for k, v in vars(self).items() if isinstance(v, (OptionValue, NpuBaseConfig))]

    def __setattr__(self, key: str, value: Any) -> None:
        if "_fixed_attrs" not in vars(self):
            object.__setattr__(self, key, value)
            return
        if key not in self._fixed_attrs:
            raise ValueError(f"{type(self).__name__} has no option {key}, all options {self._fixed_attrs}")
        current = getattr(self, key)
        if isinstance(current, OptionValue):
            current.value = value
        else:
            object.__setattr__(self, key, value)


class _Section(NpuBaseConfig):
    """A nested group of options (debug, ge_config, ...): present, contents not modelled."""


def _config_class(version: str, package: str) -> type:
    attrs = compiler_config_attrs(version, package)

    class CompilerConfig(NpuBaseConfig):
        def __init__(self) -> None:
            for name in attrs:
                if name == "mode":
                    modes = ("npugraph_ex",) if package == "npugraph_ex" else torchair_modes(version)
                    value: Any = OptionValue(modes[0], list(modes))  # type: ignore[index]
                elif name.endswith("_config") or name in ("debug", "export"):
                    value = _Section()
                else:
                    value = OptionValue(None)
                object.__setattr__(self, name, value)
            super().__init__()

    CompilerConfig.__module__ = f"{package}.configs.compiler_config"
    return CompilerConfig


class FakeBackend:
    """What ``get_npu_backend`` returns: a torch.compile backend that records and runs eagerly.

    ``FakeBackend.replay``, where a test sets it, is called once before every run of a compiled
    graph (the fake NPU session queues the step's device time there).
    """

    replay: Optional[Any] = None

    def __init__(self, package: str, compiler_config: Any, custom_decompositions: Dict[Any, Any]) -> None:
        self.package = package
        self.compiler_config = compiler_config
        self.mode = compiler_config.mode.value if "mode" in vars(compiler_config) else None
        self.custom_decompositions = custom_decompositions
        self.graphs: List[Dict[str, Any]] = []

    def __call__(self, gm: Any, example_inputs: List[Any], **kwargs: Any) -> Any:
        import torch

        symbolic = any(isinstance(x, torch.SymInt) or (isinstance(x, torch.Tensor) and any(
            isinstance(s, torch.SymInt) for s in x.shape)) for x in example_inputs)
        self.graphs.append({"graph": gm, "example_inputs": list(example_inputs), "symbolic": symbolic,
                            "kwargs": kwargs})
        replay = FakeBackend.replay
        if replay is None:
            return gm.forward

        def run(*args: Any) -> Any:
            replay()  # one launch for the whole graph, as a captured graph's replay
            return gm.forward(*args)

        return run


def _package(version: str, name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = f"/fake/site-packages/torch_npu/dynamo/{name}/__init__.py"
    config_class = _config_class(version, name)
    mod.CompilerConfig = config_class  # type: ignore[attr-defined]
    mod.backends = []  # type: ignore[attr-defined]  # test helper: every backend made, in order

    def get_npu_backend(*, compiler_config: Any = None, custom_decompositions: Optional[Dict[Any, Any]] = None) -> Any:
        if compiler_config is None:
            compiler_config = config_class()
        if (name == "torchair" and Version(version) >= Version("2.11")
                and "mode" in vars(compiler_config) and compiler_config.mode.value == "reduce-overhead"):
            warnings.warn('The "reduce-overhead" mode configuration will be deprecated. '
                          'Please use the "npugraph_ex" backend.', DeprecationWarning, stacklevel=2)
        backend = FakeBackend(name, compiler_config, dict(custom_decompositions or {}))
        mod.backends.append(backend)  # type: ignore[attr-defined]
        return backend

    mod.get_npu_backend = get_npu_backend  # type: ignore[attr-defined]
    return mod


def build(version: str = "2.14.0") -> Dict[str, types.ModuleType]:
    """The fake packages of a torch_npu release: {'torchair': ..., 'npugraph_ex': ... (2.11+)}."""
    mods = {"torchair": _package(version, "torchair")}
    if has_npugraph_ex(version):
        mods["npugraph_ex"] = _package(version, "npugraph_ex")
    return mods


def module_entries(version: str, bundled: bool) -> Dict[str, Optional[types.ModuleType]]:
    """sys.modules entries; None makes an import fail (torch_npu built without torchair)."""
    mods = build(version) if bundled else {}
    dynamo = types.ModuleType("torch_npu.dynamo")
    entries: Dict[str, Optional[types.ModuleType]] = {"torch_npu.dynamo": dynamo}
    for name in ("torchair", "npugraph_ex"):
        mod = mods.get(name)
        entries[name] = mod
        entries[f"torch_npu.dynamo.{name}"] = mod
        if mod is not None:
            setattr(dynamo, name, mod)
    return entries


def install(monkeypatch: Any, version: str = "2.14.0", bundled: bool = True,
            torch_npu: Optional[types.ModuleType] = None) -> Dict[str, types.ModuleType]:
    """Put the fake torchair (and npugraph_ex) of ``version`` in sys.modules; returns them by name."""
    entries = module_entries(version, bundled)
    for name, mod in entries.items():
        monkeypatch.setitem(sys.modules, name, mod)
    if torch_npu is not None:
        monkeypatch.setattr(torch_npu, "dynamo", entries["torch_npu.dynamo"], raising=False)
    return {name: mod for name, mod in entries.items() if name in ("torchair", "npugraph_ex") and mod is not None}


@contextlib.contextmanager
def installed(version: str = "2.14.0", soc: str = "Ascend910B3", bundled: bool = True,
              **npu_kwargs: Any) -> Iterator[Tuple[types.ModuleType, Dict[str, types.ModuleType]]]:
    """A fake torch_npu (exposed as torch.npu) with its fake torchair, removed on exit."""
    import torch

    torch_npu = fake_torch_npu.build(version=version, soc=soc, **npu_kwargs)
    entries: Dict[str, Optional[types.ModuleType]] = {"torch_npu": torch_npu, "torch_npu.npu": torch_npu.npu}
    entries.update(module_entries(version, bundled))
    torch_npu.dynamo = entries["torch_npu.dynamo"]  # type: ignore[attr-defined]
    missing = object()
    saved = {name: sys.modules.get(name, missing) for name in entries}
    saved_attr = getattr(torch, "npu", missing)
    sys.modules.update(entries)  # type: ignore[arg-type]
    torch.npu = torch_npu.npu  # type: ignore[attr-defined]
    try:
        yield torch_npu, {n: m for n, m in entries.items() if n in ("torchair", "npugraph_ex") and m is not None}
    finally:
        for name, mod in saved.items():
            if mod is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod  # type: ignore[assignment]
        if saved_attr is missing:
            if hasattr(torch, "npu"):
                delattr(torch, "npu")
        else:
            torch.npu = saved_attr  # type: ignore[attr-defined]
