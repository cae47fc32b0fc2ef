"""Declarative stack descriptions: a Python environment, a CANN ``set_env.sh`` and environment
variables, read from a TOML or JSON file.

A file describes one stack (keys ``python``, ``cann``, ``env``), or several as tables ``good``,
``bad`` and ``candidates`` (``python`` and ``cann`` lists of further environments and CANN
installations that may separate components one environment or installation carries together).
Every problem raises :class:`StackError` naming the file, the key and the fix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

STACK_KEYS = ("python", "cann", "env")
FILE_KEYS = ("good", "bad", "candidates")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StackError(ValueError):
    """A stack description that cannot be used; the message names where and the fix."""


@dataclass(frozen=True)
class StackSpec:
    """One stack: the interpreter of a Python environment, the CANN ``set_env.sh`` to source (None:
    the CANN environment this process inherited, as it is) and environment variables (a value of
    None: the variable is unset)."""

    name: str
    python: str
    cann: Optional[str] = None
    env: Tuple[Tuple[str, Optional[str]], ...] = ()

    @property
    def env_map(self) -> Dict[str, Optional[str]]:
        return dict(self.env)


@dataclass(frozen=True)
class Candidates:
    """Further environments and CANN installations that mixes may use."""

    python: Tuple[str, ...] = ()
    cann: Tuple[str, ...] = ()


@dataclass(frozen=True)
class StackFile:
    good: Optional[StackSpec] = None
    bad: Optional[StackSpec] = None
    candidates: Candidates = field(default_factory=Candidates)


def read_document(path: Path) -> Dict[str, Any]:
    """A TOML (``.toml``) or JSON file as a mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StackError(f"{path}: cannot read the stack description ({exc})") from None
    if str(path).endswith(".toml"):
        try:
            import tomllib  # Python 3.11+
        except ImportError:  # Python 3.9 and 3.10: tomli, the same parser, a dependency there
            try:
                import tomli as tomllib
            except ImportError:
                raise StackError(f"{path}: reading TOML before Python 3.11 needs tomli (pip install tomli); "
                                 "or write the description as JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise StackError(f"{path}: not valid TOML ({exc})") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StackError(f"{path}: not valid JSON ({exc}); a .toml file is read as TOML") from None
    if not isinstance(data, dict):
        raise StackError(f"{path}: expected a table of keys ({', '.join(STACK_KEYS)}), got {type(data).__name__}")
    return data


def interpreter(value: Any, where: str, base: Path) -> str:
    """The interpreter of a Python environment: the file itself, or ``<folder>/bin/python``."""
    if not isinstance(value, str) or not value.strip():
        raise StackError(f"{where}: 'python' must be the path of an interpreter or of an environment folder, "
                         f"got {value!r}")
    path = _absolute(value, base)
    if path.is_dir():
        path = path / "bin" / "python"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise StackError(f"{where}: python {path} is not an executable file; give the environment's interpreter "
                         "(e.g. /opt/envs/torch26/bin/python) or its folder")
    return str(path)


def set_env_script(value: Any, where: str, base: Path) -> str:
    """CANN's ``set_env.sh``: the file, or the one in a CANN home (or its parent: ``ascend-toolkit/latest``)."""
    if not isinstance(value, str) or not value.strip():
        raise StackError(f"{where}: 'cann' must be the path of a CANN set_env.sh or of a toolkit home, got {value!r}")
    path = _absolute(value, base)
    if path.is_dir():
        found = next((p for p in (path / "set_env.sh", path.parent / "set_env.sh") if p.is_file()), None)
        if found is None:
            raise StackError(f"{where}: cann {path} holds no set_env.sh (nor does its parent folder); give the "
                             "set_env.sh of the CANN installation, e.g. /usr/local/Ascend/cann-8.5.0/set_env.sh")
        return str(found)
    if not path.is_file():
        raise StackError(f"{where}: cann {path} does not exist; give the set_env.sh of a CANN installation")
    return str(path)


def _absolute(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value.strip()))
    return path if path.is_absolute() else base / path


def env_items(value: Any, where: str) -> Tuple[Tuple[str, Optional[str]], ...]:
    """``{NAME: "value" | null}``: the variables a stack sets (null: unset)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise StackError(f"{where}: 'env' must be a table of NAME = \"value\", got {type(value).__name__}")
    items = []
    for name, setting in value.items():
        if not _ENV_NAME.match(str(name)):
            raise StackError(f"{where}: env {name!r} is not a valid environment variable name")
        if setting is not None and not isinstance(setting, (str, int, float)) or isinstance(setting, bool):
            raise StackError(f"{where}: env {name} must be a string (or null to unset it), got {setting!r}")
        items.append((str(name), None if setting is None else str(setting)))
    return tuple(sorted(items))


def stack_from(data: Mapping[str, Any], name: str, where: str, base: Path) -> StackSpec:
    """One stack from its table; unknown keys are refused (a typo would silently drop a setting)."""
    if not isinstance(data, Mapping):
        raise StackError(f"{where}: expected a table with keys {', '.join(STACK_KEYS)}")
    unknown = sorted(set(data) - set(STACK_KEYS))
    if unknown:
        raise StackError(f"{where}: unknown key(s) {', '.join(unknown)}; a stack takes {', '.join(STACK_KEYS)}")
    if "python" not in data:
        raise StackError(f"{where}: 'python' is missing: the interpreter of the stack's Python environment")
    cann = data.get("cann")
    return StackSpec(name, interpreter(data["python"], where, base),
                     None if cann is None else set_env_script(cann, where, base), env_items(data.get("env"), where))


def load_stack_file(path: Path) -> StackFile:
    """A file of one stack (returned as ``good`` and ``bad`` None: the caller names it) or of
    ``good`` / ``bad`` / ``candidates`` tables."""
    path = Path(path)
    data = read_document(path)
    base = path.resolve().parent
    if not set(data) & set(FILE_KEYS):
        return StackFile(good=stack_from(data, "stack", str(path), base))
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise StackError(f"{path}: unknown table(s) {', '.join(unknown)}; a stacks file holds "
                         f"{', '.join(FILE_KEYS)} (or the keys {', '.join(STACK_KEYS)} of one stack)")
    good = stack_from(data["good"], "good", f"{path} [good]", base) if "good" in data else None
    bad = stack_from(data["bad"], "bad", f"{path} [bad]", base) if "bad" in data else None
    return StackFile(good, bad, candidates_from(data.get("candidates") or {}, f"{path} [candidates]", base))


def candidates_from(data: Any, where: str, base: Path) -> Candidates:
    if not isinstance(data, Mapping):
        raise StackError(f"{where}: expected a table with lists 'python' and 'cann'")
    unknown = sorted(set(data) - {"python", "cann"})
    if unknown:
        raise StackError(f"{where}: unknown key(s) {', '.join(unknown)}; candidates take 'python' and 'cann' lists")
    lists: Dict[str, List[str]] = {}
    for key, check in (("python", interpreter), ("cann", set_env_script)):
        values = data.get(key) or []
        if not isinstance(values, list):
            raise StackError(f"{where}: '{key}' must be a list of paths")
        lists[key] = [check(v, f"{where} {key}", base) for v in values]
    return Candidates(tuple(lists["python"]), tuple(lists["cann"]))
