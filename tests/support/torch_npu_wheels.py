"""Published torch-npu wheels, unpacked without installing, as facts to test against.

- ``download``: ``pip download --no-deps`` of one version for an explicit platform (x86_64
  manylinux: the files checked are Python sources, YAML schemas and strings in the shared
  libraries), cached in
  ``$NPUPERF_WHEEL_CACHE`` or ``~/.cache/pytest-npuperf/wheels``;
- ``Wheel.resolve``: does a dotted name (``torch_npu.npu.Event.elapsed_time``) exist in the wheel's
  Python sources, following ``from .x import y`` chains and class bases; which keyword names
  does it take;
- ``Wheel.schema``: a custom operator's argument names and types from
  ``torch_npu/csrc/aten/npu_native_functions_by_codegen.yaml``;
- the wheel's meta functions are loaded and called by tests/support/torch_npu_meta.py.

Nothing from torch_npu is copied into this repository: the wheel's files are read at test time.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

# Oldest supported, one in the middle, newest checked. Override: NPUPERF_TORCH_NPU_VERSIONS=a,b,c
DEFAULT_VERSIONS = ("2.1.0.post8", "2.5.1", "2.14.0")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
PYTHON_TAG = "3.10"  # every release from 2.1.0.post8 to 2.14.0 has cp310 wheels
_UNREACHABLE = re.compile(
    r"from versions: none|NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|Connection refused|ConnectTimeout|ReadTimeout|No route to host|"
    r"Could not fetch URL|ProxyError|SSLError",
)


class IndexUnreachable(Exception):
    """The package index could not be reached: the conformance tests skip with this reason."""


class WheelError(Exception):
    """A wheel that cannot be read or parsed: a failure, never a pass."""


def versions() -> Tuple[str, ...]:
    env = os.environ.get("NPUPERF_TORCH_NPU_VERSIONS")
    if env:
        return tuple(v.strip() for v in env.split(",") if v.strip())
    return DEFAULT_VERSIONS


def cache_dir() -> Path:
    env = os.environ.get("NPUPERF_WHEEL_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "pytest-npuperf" / "wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(version: str, folder: Path) -> Optional[Path]:
    found = sorted(folder.glob(f"torch_npu-{version}-*.whl"))
    return found[0] if found else None


def download(version: str, folder: Optional[Path] = None, timeout: float = 600.0) -> Path:
    folder = cache_dir() if folder is None else folder
    wheel = _cached(version, folder)
    if wheel is not None:
        return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", PYTHON_TAG, "-d", str(folder), f"torch-npu=={version}"]
    for platform in PLATFORMS:
        cmd[4:4] = ["--platform", platform]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise IndexUnreachable(f"pip download torch-npu=={version} did not finish in {timeout:.0f} s") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        match = _UNREACHABLE.search(output)
        if match:
            raise IndexUnreachable(f"pip download torch-npu=={version}: the index cannot be reached ({match.group(0)})")
        raise WheelError(f"pip download torch-npu=={version} failed:\n{output[-2000:]}")
    wheel = _cached(version, folder)
    if wheel is None:
        raise WheelError(f"pip download torch-npu=={version} succeeded but left no wheel in {folder}")
    return wheel


# --- reading a wheel ---------------------------------------------------------------------------

_SCHEMA = re.compile(r"func:\s*(\w+)(?:\.\w+)?\((.*)\)\s*->")
OP_YAML = "torch_npu/csrc/aten/npu_native_functions_by_codegen.yaml"
# Packages shipped inside torch_npu/dynamo and imported by their top-level names.
BUNDLED_PACKAGES = ("torchair", "npugraph_ex")
META_FILES = ("torch_npu/op_plugin/meta/_meta_registrations.py", "torch_npu/meta/_meta_registrations.py")


class Arg:
    def __init__(self, name: str, type_: str, kwonly: bool, has_default: bool) -> None:
        self.name, self.type, self.kwonly, self.has_default = name, type_, kwonly, has_default

    def __repr__(self) -> str:
        return f"{self.type} {self.name}"


def _split_top(text: str) -> List[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def parse_schema(args_text: str) -> List[Arg]:
    args: List[Arg] = []
    kwonly = False
    for part in _split_top(args_text):
        if part == "*":
            kwonly = True
            continue
        decl, _, default = part.partition("=")
        type_, _, name = decl.strip().rpartition(" ")
        if not type_ or not name.isidentifier():
            raise WheelError(f"unreadable schema argument {part!r}")
        args.append(Arg(name, type_.strip(), kwonly, bool(default)))
    return args


class Found:
    """Where a dotted name was found: its AST node (or 'compiled'), and the keywords it takes."""

    def __init__(self, where: str, node: Optional[ast.AST], keywords: Optional[Tuple[str, ...]], var_kw: bool) -> None:
        self.where, self.node, self.keywords, self.var_kw = where, node, keywords, var_kw


class Wheel:
    def __init__(self, version: str, path: Path) -> None:
        self.version, self.path = version, path
        try:
            self._zip = zipfile.ZipFile(path)
            self.members = set(self._zip.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise WheelError(f"{path.name} is not a readable wheel: {exc}") from None
        self._trees: Dict[str, Optional[ast.Module]] = {}
        self._binaries: Optional[List[bytes]] = None
        self._schemas: Optional[Dict[str, List[Arg]]] = None

    def read_text(self, member: str) -> str:
        return self._zip.read(member).decode("utf-8", errors="replace")

    # -- Python sources --
    def _module_file(self, module: str) -> Optional[str]:
        base = module.replace(".", "/")
        for candidate in (base + "/__init__.py", base + ".py"):
            if candidate in self.members:
                return candidate
        return None

    def _tree(self, member: str) -> ast.Module:
        if member not in self._trees:
            try:
                self._trees[member] = ast.parse(self.read_text(member), filename=member)
            except SyntaxError as exc:
                raise WheelError(f"{self.version}: cannot parse {member}: {exc}") from None
        tree = self._trees[member]
        assert tree is not None
        return tree

    @staticmethod
    def _toplevel(body: List[ast.stmt]) -> List[ast.stmt]:
        """Statements of a module or class body, including those inside if/try blocks."""
        out: List[ast.stmt] = []
        for node in body:
            out.append(node)
            if isinstance(node, ast.If):
                out.extend(Wheel._toplevel(node.body) + Wheel._toplevel(node.orelse))
            elif isinstance(node, ast.Try):
                out.extend(Wheel._toplevel(node.body))
                for handler in node.handlers:
                    out.extend(Wheel._toplevel(handler.body))
                out.extend(Wheel._toplevel(node.orelse) + Wheel._toplevel(node.finalbody))
        return out

    def _binding(self, module: str, name: str, depth: int = 0) -> Optional[Tuple[str, Any]]:
        """('node', (member, ast node)) | ('module', module) | ('compiled', module) | None."""
        if depth > 20:  # an import cycle through star imports: this path binds nothing
            return None
        member = self._module_file(module)
        if member is None:
            return None
        for node in reversed(self._toplevel(self._tree(member).body)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                return "node", (member, node)
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return "node", (member, node)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                return "node", (member, node)
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        source = self._absolute(module, member, node)
                        return self._follow(source, alias.name, depth)
                    if alias.name == "*":
                        source = self._absolute(module, member, node)
                        if (source.startswith("torch_npu") and self._module_file(source) is not None
                                and self._exported(source, name)):
                            found = self._binding(source, name, depth + 1)
                            if found is not None:
                                return found
        sub = f"{module}.{name}"
        if self._module_file(sub) is not None:
            return "module", sub
        return None

    def _exported(self, module: str, name: str) -> bool:
        """Does ``from module import *`` bind ``name`` (its ``__all__``, else public names)?"""
        member = self._module_file(module)
        assert member is not None
        for node in self._toplevel(self._tree(member).body):
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                    and isinstance(node.value, (ast.List, ast.Tuple))):
                return any(isinstance(e, ast.Constant) and e.value == name for e in node.value.elts)
        return not name.startswith("_")

    def _absolute(self, module: str, member: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return self.bundled(node.module or "")
        package = module if member.endswith("__init__.py") else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{node.module}" if node.module else package

    def bundled(self, module: str) -> str:
        """``torchair.x`` -> ``torch_npu.dynamo.torchair.x`` (likewise npugraph_ex) where the wheel
        ships the package: torch_npu puts it in sys.modules under the top-level name, and its own
        modules import each other by that name."""
        head = module.partition(".")[0]
        if head in BUNDLED_PACKAGES and self._module_file(f"torch_npu.dynamo.{head}") is not None:
            return f"torch_npu.dynamo.{module}"
        return module

    def _follow(self, source: str, name: str, depth: int) -> Optional[Tuple[str, Any]]:
        if source.startswith("torch_npu._C") or source == "torch_npu._C":
            return "compiled", f"{source}.{name}"
        if not source.startswith("torch_npu"):
            return "external", f"{source}.{name}"
        if self._module_file(f"{source}.{name}") is not None:
            return "module", f"{source}.{name}"
        return self._binding(source, name, depth + 1)

    def _class_member(self, member: str, cls: ast.ClassDef, name: str, depth: int = 0) -> Optional[Found]:
        for node in self._toplevel(cls.body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return self._function(member, node)
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return Found(member, node, None, False)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                return Found(member, node, None, False)
        found = self._instance_attribute(member, cls, name)
        if found is not None:
            return found
        module = member[:-len("/__init__.py")] if member.endswith("/__init__.py") else member[:-3]
        module = module.replace("/", ".")
        for base in cls.bases:
            dotted = dotted_name(base)
            if dotted is None or depth > 10:
                continue
            head, _, rest = dotted.partition(".")
            bound = self._binding(module, head)
            if bound and bound[0] == "node" and isinstance(bound[1][1], ast.ClassDef) and not rest:
                found = self._class_member(bound[1][0], bound[1][1], name, depth + 1)
                if found:
                    return found
            if (bound and bound[0] == "compiled") or dotted.startswith("torch_npu._C"):
                if self.binary_has(name):
                    return Found("compiled", None, None, True)
        return None

    @staticmethod
    def _instance_attribute(member: str, cls: ast.ClassDef, name: str) -> Optional[Found]:
        """``self.<name> = ...`` in the class's ``__init__`` (torchair's config options)."""
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                for stmt in ast.walk(node):
                    if isinstance(stmt, ast.Assign) and any(
                            isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                            and t.attr == name for t in stmt.targets):
                        return Found(member, stmt, None, False)
        return None

    def instance_attributes(self, dotted_class: str) -> List[str]:
        """The names a class's ``__init__`` assigns on ``self``, in order; [] when the class is absent."""
        found = self.resolve(dotted_class)
        if found is None or not isinstance(found.node, ast.ClassDef):
            return []
        names: List[str] = []
        for node in found.node.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                for stmt in ast.walk(node):
                    if isinstance(stmt, ast.Assign):
                        for t in stmt.targets:
                            if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                                    and t.attr not in names):
                                names.append(t.attr)
        return names

    def option_choices(self, dotted_attribute: str) -> Optional[Tuple[Any, Tuple[Any, ...]]]:
        """(default, accepted values) of an option set as ``self.x = OptionValue(default, [a, b])``;
        None when the attribute is absent. A WheelError when it is set some other way."""
        found = self.resolve(dotted_attribute)
        if found is None:
            return None
        value = getattr(found.node, "value", None)
        if not (isinstance(value, ast.Call) and dotted_name(value.func) == "OptionValue" and len(value.args) == 2):
            raise WheelError(f"{self.version}: {dotted_attribute} is not set as OptionValue(default, [choices])")
        try:
            return ast.literal_eval(value.args[0]), tuple(ast.literal_eval(value.args[1]))
        except ValueError:
            raise WheelError(f"{self.version}: the choices of {dotted_attribute} are not literals") from None

    @staticmethod
    def _function(member: str, node: ast.AST) -> Found:
        assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        a = node.args
        names = tuple(x.arg for x in getattr(a, "posonlyargs", []) + a.args + a.kwonlyargs)
        return Found(member, node, names, a.kwarg is not None)

    def resolve(self, dotted: str) -> Optional[Found]:
        """The definition of a dotted torch_npu name, or None when the wheel lacks it."""
        parts = dotted.split(".")
        module = parts[0]
        i = 1
        while i < len(parts) and self._module_file(f"{module}.{parts[i]}") is not None:
            module = f"{module}.{parts[i]}"
            i += 1
        if i == len(parts):
            return Found(self._module_file(module) or module, None, None, False)
        bound = self._binding(module, parts[i])
        if bound is None:
            return None
        kind, value = bound
        if kind == "compiled":
            rest = parts[i + 1:]
            ok = self.binary_has(parts[i]) and all(self.binary_has(p) for p in rest)
            return Found("compiled", None, None, True) if ok else None
        if kind != "node":
            return None
        member, node = value
        rest = parts[i + 1:]
        if not rest:
            if isinstance(node, ast.ClassDef):
                for constructor in ("__new__", "__init__"):
                    init = self._class_member(member, node, constructor)
                    if init is not None and init.keywords is not None:
                        return Found(member, node, init.keywords, init.var_kw)
                return Found(member, node, (), False)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return self._function(member, node)
            return Found(member, node, None, False)
        if not isinstance(node, ast.ClassDef) or len(rest) != 1:
            return None
        return self._class_member(member, node, rest[0])

    # -- shared libraries and text --
    def _blobs(self) -> List[bytes]:
        if self._binaries is None:
            self._binaries = [self._zip.read(m) for m in sorted(self.members)
                              if m.endswith((".so", ".py", ".yaml")) or ".so." in m]
        return self._binaries

    def binary_has(self, name: str) -> bool:
        """The exact identifier appears in a shared library or source file of the wheel."""
        raw = name.encode()
        pattern = re.compile(rb"(?<![A-Za-z0-9_])" + re.escape(raw) + rb"(?![A-Za-z0-9_])")
        # a plain substring search first (fast); the word-boundary regex only where it hits
        return any(raw in blob and pattern.search(blob) for blob in self._blobs())

    # -- op schemas --
    def schemas(self) -> Dict[str, List[Arg]]:
        if self._schemas is None:
            if OP_YAML not in self.members:
                raise WheelError(f"{self.version}: no {OP_YAML}")
            out: Dict[str, List[Arg]] = {}
            for line in self.read_text(OP_YAML).splitlines():
                match = _SCHEMA.search(line)
                if match and "." not in line.split("func:")[1].split("(")[0]:
                    out.setdefault(match.group(1), parse_schema(match.group(2)))
            if not out:
                raise WheelError(f"{self.version}: no op schema could be read from {OP_YAML}")
            self._schemas = out
        return self._schemas


def dotted_name(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted_name(node.value)
        return f"{head}.{node.attr}" if head else None
    return None
