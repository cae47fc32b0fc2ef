"""A torch-npu wheel's own meta functions, run on meta tensors without the compiled torch_npu.

``meta_functions(wheel)`` loads ``_meta_registrations.py`` from the wheel (2.1.0.x:
``torch_npu/meta/``, later ``torch_npu/op_plugin/meta/``): the module's imports of torch_npu are
bound to stubs that fail loudly when a checked code path actually uses them, the registration
decorators and ``Library`` objects are dropped, and the functions run with the local torch. What
is checked is the wheel's meta logic (shape and dtype checks, plain Python), not its torch binary
(the wheels pin their own torch version). ``MetaOps`` calls an operator as ``torch.ops`` would:
arguments checked against the op schema, a ``torch.dtype`` converted for an ``int`` argument.

Nothing from torch_npu is copied into this repository: the wheel's files are read at test time.
"""

from __future__ import annotations

import ast
from typing import Any, Callable, Dict, List

from support.torch_npu_wheels import META_FILES, Arg, Wheel, WheelError, dotted_name


def meta_functions(wheel: Wheel) -> Dict[str, Callable[..., Any]]:
    for member in META_FILES:
        if member in wheel.members:
            return load_meta_functions(wheel.read_text(member), f"{wheel.version}:{member}")
    raise WheelError(f"{wheel.version}: none of {META_FILES} in the wheel")


class StubUsed(Exception):
    """A checked code path used a part of torch_npu that is not available without CANN."""


class _Stub:
    """Stands for a torch_npu object: comparable and hashable (dtype constants), nothing else."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> "_Stub":
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Stub(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise StubUsed(f"{self._name}() was called: not available without the compiled torch_npu")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Stub) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f"<stub {self._name}>"


def _message_only(*args: Any, **kwargs: Any) -> str:
    return ""


def load_meta_functions(source: str, label: str) -> Dict[str, Callable[..., Any]]:
    """{op name: meta function} from a _meta_registrations.py source, without registering anything."""
    import torch  # noqa: F401  (the functions' globals)

    try:
        tree = ast.parse(source, filename=label)
    except SyntaxError as exc:
        raise WheelError(f"cannot parse {label}: {exc}") from None
    namespace: Dict[str, Any] = {"__name__": "torch_npu_meta_under_test", "__builtins__": __builtins__}
    ops: Dict[str, str] = {}
    kept: List[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if (module or "").startswith("torch_npu"):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    # Error-message helpers only build strings; anything else fails when used.
                    if alias.name == "ops_error":
                        namespace[bound] = _message_only
                    else:
                        namespace[bound] = _Stub(f"{module}.{alias.name}" if isinstance(node, ast.ImportFrom) else bound)
                continue
            kept.append(node)
        elif isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and dotted_name(deco.func) in ("impl", "torch.library.impl")
                        and len(deco.args) >= 2 and isinstance(deco.args[1], ast.Constant)
                        and isinstance(deco.args[1].value, str)):
                    ops[deco.args[1].value] = node.name
            node.decorator_list = []
            kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            value = node.value
            if isinstance(value, ast.Call) and dotted_name(value.func) in ("Library", "torch.library.Library"):
                continue  # would register with the dispatcher
            kept.append(node)
    for node in kept:
        module_ast = ast.Module(body=[node], type_ignores=[])
        try:
            exec(compile(module_ast, label, "exec"), namespace)
        except Exception:
            # A constant built from a torch_npu stub or a newer torch: the functions that need it
            # raise NameError when called, which the probe runner reports as an error, not a verdict.
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
                raise WheelError(f"{label}: cannot load {ast.dump(node)[:120]}") from None
    functions = {op: namespace[name] for op, name in ops.items() if callable(namespace.get(name))}
    if not functions:
        raise WheelError(f"{label}: no meta function found")
    return functions


# --- calling a wheel's operator as torch.ops would, on meta tensors ---------------------------

class Rejected(Exception):
    """The wheel's schema or meta function rejects the call; the message says why."""


def _scalar_type_codes() -> Dict[Any, int]:
    """torch.dtype -> c10::ScalarType number, as torch.ops converts a dtype for an ``int`` argument."""
    import torch

    return {torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4, torch.float16: 5,
            torch.float32: 6, torch.float64: 7, torch.bool: 11, torch.bfloat16: 15}


class MetaOps:
    """One wheel's custom operators: its schema for the arguments, its meta function for the rest."""

    def __init__(self, wheel: Wheel) -> None:
        self.version = wheel.version
        self._schemas = wheel.schemas()
        self._functions = meta_functions(wheel)

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        import torch

        if op not in self._schemas:
            raise WheelError(f"{self.version}: no schema for {op}")
        if op not in self._functions:
            raise WheelError(f"{self.version}: no meta function for {op}")
        schema = self._schemas[op]
        positional = [a for a in schema if not a.kwonly]
        if len(args) > len(positional):
            raise Rejected(f"{op}() takes {len(positional)} positional arguments but {len(args)} were given")
        by_name = {a.name: a for a in schema}
        for name in kwargs:
            if name not in by_name:
                raise Rejected(f"{op}() got an unexpected keyword argument {name!r}")
        codes = _scalar_type_codes()

        def convert(arg: Arg, value: Any) -> Any:
            if isinstance(value, torch.dtype) and arg.type.rstrip("?") in ("int", "SymInt"):
                return codes[value]
            return value

        args = tuple(convert(positional[i], v) for i, v in enumerate(args))
        kwargs = {k: convert(by_name[k], v) for k, v in kwargs.items()}
        try:
            return self._functions[op](*args, **kwargs)
        except (RuntimeError, ValueError, IndexError) as exc:  # torch._check raises RuntimeError
            raise Rejected(f"{type(exc).__name__}: {exc}") from None
