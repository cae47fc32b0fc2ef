"""Graph mode on an Ascend NPU: torchair's torch.compile backends, chosen per release and chip.

What the installed torch_npu offers was read in the torchair sources shipped inside the published
torch-npu wheels (``torch_npu/dynamo/torchair`` and ``torch_npu/dynamo/npugraph_ex``; releases
2.1.0.post8/10/12/13/17, 2.5.1, 2.6.0, 2.8.0, 2.11.0, 2.14.0), and is checked against them by
``tests/stack/test_npu_api_conformance.py``:

- Import. Every one of those wheels ships torchair inside torch_npu, and torch_npu makes it
  importable as the top-level ``torchair`` through a lazy proxy in ``sys.modules``
  (``torch_npu/dynamo/__init__.py``, ``_LazyTorchair``); the documented use is
  ``import torch_npu, torchair``. Up to 2.11.0 the proxy is installed by ``import torch_npu``;
  2.14.0 installs it when ``torch._dynamo`` is first imported (``torch_npu/utils/_dynamo.py``,
  ``_lazy_dynamo_setup``), so this module imports ``torch._dynamo`` first. A torch_npu built
  without torchair registers an eager ``npu`` backend and warns instead.
- ``torchair.get_npu_backend(*, compiler_config=None, custom_decompositions={})``
  (``torchair/npu_fx_compiler.py``) returns the backend object for ``torch.compile``;
  ``torchair.CompilerConfig()`` (``torchair/configs/compiler_config.py``) holds the options.
- ``CompilerConfig.mode``: absent in 2.1.0.post8 and 2.1.0.post10, whose torchair only builds GE
  (Ascend IR) graphs; ``OptionValue("max-autotune", ["max-autotune", "reduce-overhead"])`` from
  2.1.0.post12 and in 2.5.1, 2.6.0, 2.8.0; 2.11.0 and 2.14.0 add ``"npugraph_ex"``. An unknown
  option or value raises ``ValueError`` (``configs/_option_base.py``, ``NpuBaseConfig.__setattr__``
  and ``OptionValue.value``). ``max-autotune`` compiles a GE graph (``_ge_concrete_graph``),
  ``reduce-overhead`` captures an aclgraph (``_acl_concrete_graph``, ``AclConcreteGraph``).
- npugraph_ex: a separate package, ``torch_npu/dynamo/npugraph_ex`` (2.11.0 and 2.14.0; absent
  in 2.8.0 and older), importable as ``npugraph_ex`` once torch_npu registered its dynamo
  backends. torch_npu registers it as the torch.compile backend ``"npugraph_ex"``, which runs
  ``npugraph_ex.get_npu_backend(compiler_config=npugraph_ex.CompilerConfig())`` with
  ``mode = "npugraph_ex"`` (``torch_npu/dynamo/__init__.py``, ``_exec``); its
  ``CompilerConfig.mode`` accepts only ``"npugraph_ex"``.
- Chips. No source gates a mode by chip; torchair's user guide (hiascend.com, PyTorch 7.0.0
  ``torchair_0008`` and 7.2.0 ``torchair_00015``, "reduce-overhead" constraints) limits aclgraph
  to Atlas A2 (SoC ``Ascend910B*``) and Atlas A3 (``Ascend910_93*``), and vllm-ascend documents
  npugraph_ex as unsupported on the Atlas 300I DUO (``Ascend310P*``). An aclgraph on another
  chip would fail at capture, so the gate is here. GE graphs have no such limit.

Preference, first that the release and chip support: npugraph_ex, reduce-overhead, max-autotune.
Both aclgraph modes launch the captured decode step with one host call, which is what graph mode
is for on a host-bound decode; torchair 2.11.0 and 2.14.0 warn on ``reduce-overhead``: "The
"reduce-overhead" mode configuration will be deprecated. Please use the "npugraph_ex" backend."
(``configs/compiler_config.py``, ``_check_config_support``), so where npugraph_ex exists it is
the maintained aclgraph path and is preferred, built exactly as torch_npu's own ``"npugraph_ex"``
backend builds it but as an object, so the config it got is ours to describe. GE graphs
(``max-autotune``) remain for older releases and other chips.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

from ..errors import GraphError, first_line
from ..stack.compat import Unsupported
from ..stack.fingerprint import torchair_version
from ..stack.npu_api import ACLGRAPH_CHIPS, GRAPH_MODE_SINCE
from .base import GraphBackend

# Preference order (module docstring).
GRAPH_MODES: Tuple[str, ...] = ("npugraph_ex", "reduce-overhead", "max-autotune")
# Static shapes, one graph for the whole decode step: a graph break would hand parts back to
# eager mode and measure something else.
COMPILE_OPTIONS: Dict[str, Any] = {"fullgraph": True, "dynamic": False}
_EAGER_FIX = "or run --npuperf-mode eager"


def aclgraph_product(device_name: str) -> Optional[str]:
    """'Atlas A2' / 'Atlas A3' for a chip that runs aclgraphs, else None."""
    for prefix, product in ACLGRAPH_CHIPS:
        if device_name.startswith(prefix):
            return product
    return None


def _import_torchair() -> Tuple[Any, Any]:
    """(torch_npu, torchair), or Unsupported with the reason and the fix."""
    try:
        import torch._dynamo  # noqa: F401  - torch_npu 2.14 installs the torchair proxy on this import
        import torch_npu
    except Exception as exc:  # torch_npu's import failures are ImportError, OSError or RuntimeError
        raise Unsupported(f"graph mode on an NPU needs torch_npu, whose import failed: {_first_line(exc)}") from None
    try:
        import torchair

        torchair.CompilerConfig()  # the proxy imports the package on first use: fail here, not later
    except Exception as exc:
        raise Unsupported(
            f"graph mode on an NPU needs torchair, which torch_npu {_release(torch_npu)} does not provide "
            f"({_first_line(exc)}): install a torch-npu wheel built with torchair (every published one from "
            f"2.1.0.post8 ships it under torch_npu/dynamo/torchair) {_EAGER_FIX}"
        ) from None
    return torch_npu, torchair


def _release(torch_npu: Any) -> str:
    return str(torch_npu.__version__)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc) if str(exc).strip() else ''}"


def _require_chip(mode: str, device_name: str) -> str:
    product = aclgraph_product(device_name)
    if product is None:
        chips = ", ".join(f"{name} ({prefix}*)" for prefix, name in ACLGRAPH_CHIPS)
        raise Unsupported(f"torchair's {mode} mode captures an aclgraph, which torchair documents for {chips} "
                          f"only, not {device_name}: use max-autotune (GE graph) {_EAGER_FIX}")
    return product


class _Broken(GraphError):
    """The release has the backend and it does not load: the test fails (a broken install is a
    regression, not a missing feature), never replaced by another mode."""


def _npugraph_ex(release: str) -> Any:
    """The backend of the npugraph_ex package, as torch_npu's "npugraph_ex" backend makes it."""
    if sys.modules.get("npugraph_ex") is None:  # torch_npu registers it with its dynamo backends
        raise Unsupported(f"the npugraph_ex backend is not in torch_npu {release} (it arrived in "
                          f"{GRAPH_MODE_SINCE['npugraph_ex']}): upgrade torch-npu to use it")
    try:
        import npugraph_ex

        ex_config = npugraph_ex.CompilerConfig()
        ex_config.mode = "npugraph_ex"
        return npugraph_ex.get_npu_backend(compiler_config=ex_config)
    except Exception as exc:  # the release has it and it is broken: say so, never fall back silently
        raise _Broken(f"torch_npu {release} ships npugraph_ex, but it failed to load: {_first_line(exc)}") from None


def _torchair_backend(torchair: Any, mode: str, release: str) -> Any:
    """torchair's backend in ``mode``."""
    ta_config = torchair.CompilerConfig()
    has_modes = getattr(ta_config, "mode", None) is not None
    if has_modes or mode != "max-autotune":  # without the option, GE (max-autotune) is all there is
        try:
            ta_config.mode = mode
        except ValueError:
            what = "has no mode option" if not has_modes else f"does not accept mode {mode!r}"
            raise Unsupported(f"torchair in torch_npu {release} {what} ({mode} arrived in "
                              f"{GRAPH_MODE_SINCE[mode]}): upgrade torch-npu {_EAGER_FIX}") from None
    return torchair.get_npu_backend(compiler_config=ta_config)


def _build(mode: str, device_name: str, torch_npu: Any, torchair: Any) -> GraphBackend:
    release = _release(torch_npu)
    if mode != "max-autotune":
        _require_chip(mode, device_name)
    if mode == "npugraph_ex":
        backend = _npugraph_ex(release)
        entry, name = "npugraph_ex.get_npu_backend", "npugraph_ex"
    else:
        backend = _torchair_backend(torchair, mode, release)
        entry, name = "torchair.get_npu_backend", f"torchair-{mode}"
    # Only what this module sets: every other CompilerConfig field stays at the release's default,
    # and the release is part of the stack fingerprint (a change there is what the gate measures).
    # A release without the mode option builds GE graphs, which is max-autotune: the same work.
    options = ", ".join(f"{k}={v}" for k, v in COMPILE_OPTIONS.items())
    description = f"torch.compile(backend={entry}(compiler_config=CompilerConfig(mode={mode})), {options})"
    versions = {"torch_npu": release, "torchair": torchair_version(torchair, release)}
    return GraphBackend(name, dict(backend=backend, **COMPILE_OPTIONS), description, versions)


def npu_backend(device_name: str, mode: Optional[str] = None) -> GraphBackend:
    """The torchair backend for this chip and the installed torch_npu.

    ``mode`` None picks the first of GRAPH_MODES that the release and the chip support; a mode
    that they do not support raises Unsupported with the reason and the fix.
    """
    if mode is not None and mode not in GRAPH_MODES:
        raise ValueError(f"unknown NPU graph mode {mode!r}: one of {', '.join(GRAPH_MODES)}")
    torch_npu, torchair = _import_torchair()
    reasons: List[str] = []
    for candidate in (mode,) if mode else GRAPH_MODES:
        try:
            return _build(candidate, device_name, torch_npu, torchair)
        except _Broken:
            raise
        except Unsupported as exc:
            reasons.append(str(exc))
    raise Unsupported("; ".join(reasons))
