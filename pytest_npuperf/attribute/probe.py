"""What each stack holds: its environment's package versions, its CANN's versions and environment.

The Python environment is asked through its own interpreter (package metadata only, nothing is
imported but this package's version reader, so an environment whose torch_npu cannot import is
still read). CANN's ``set_env.sh`` is sourced in a clean copy of this process's environment
(``bash -c 'source set_env.sh && env -0'``) and its versions are read from the files CANN
installs, as the fingerprint reads them.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from ..stack.fingerprint import ascend_versions
from .plan import CANN, PYTHON, Option, env_option
from .rules import kernels_problem, python_problems, torch_pins
from .stacks import StackSpec

# Read in the stack's own interpreter: its versions from package metadata, without importing them.
_VERSIONS = (
    "import json, sys\n"
    "from pytest_npuperf.stack.versions import package_requires, package_version\n"
    "print(json.dumps({'torch': package_version('torch'), 'torch_npu': package_version('torch-npu', 'torch_npu'),\n"
    "    'transformers': package_version('transformers'), 'numpy': package_version('numpy'),\n"
    "    'requires': package_requires('torch-npu') or package_requires('torch_npu'),\n"
    "    'python': sys.version.split()[0]}))\n"
)
PROBE_TIMEOUT_S = 120
# Variables CANN's set_env.sh sets: removed (with every value and PATH entry under a CANN
# installation) before another set_env.sh is sourced, so that two CANN releases never mix.
CANN_VARIABLES = ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "ASCEND_OPP_PATH", "ASCEND_AICPU_PATH", "TOOLCHAIN_HOME")
PATH_LISTS = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH")


class ProbeError(Exception):
    """A stack that cannot be read; the message says why."""


def python_versions(python: str, environ: Mapping[str, str]) -> Dict[str, object]:
    """The versions an environment holds, read by its own interpreter."""
    try:
        done = subprocess.run([python, "-c", _VERSIONS], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              env=dict(environ))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"{python} cannot run: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        hint = " (is pytest-npuperf installed in this environment?)" if "pytest_npuperf" in done.stderr else ""
        raise ProbeError(f"{python} could not read its package versions: {last}{hint}")
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        raise ProbeError(f"{python} printed no versions: {done.stdout.strip()[:200]!r}") from None


def python_option(python: str, origin: str, environ: Mapping[str, str]) -> Option:
    """The environment as an option of the 'python' carrier (with its problems, if it cannot run)."""
    try:
        found = python_versions(python, environ)
    except ProbeError as exc:
        return Option(PYTHON, origin, (("torch_npu", None), ("torch", None), ("transformers", None)), python, (str(exc),))
    versions = {"torch_npu": found.get("torch_npu"), "torch": found.get("torch"), "transformers": found.get("transformers")}
    pins = tuple(torch_pins(found.get("requires") or []))
    problems = python_problems(versions, pins, found.get("numpy"))  # type: ignore[arg-type]
    return Option(PYTHON, origin, tuple(versions.items()), python, tuple(problems), pins)


def cann_roots(environ: Mapping[str, str], scripts: Iterable[str]) -> List[str]:
    """The CANN installations in play: where this environment's CANN lives, and each set_env.sh's folder."""
    roots = [environ.get(name, "") for name in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH")]
    roots += [os.path.dirname(os.path.abspath(s)) for s in scripts]
    return sorted({os.path.realpath(r) for r in roots if r})


def without_cann(environ: Mapping[str, str], roots: Iterable[str]) -> Dict[str, str]:
    """``environ`` with every trace of a CANN installation removed."""
    roots = [r.rstrip("/") + "/" for r in roots]

    def under(value: str) -> bool:
        path = os.path.realpath(value) + "/" if value else ""
        return any(path.startswith(r) or value.startswith(r) for r in roots)

    out = {}
    for key, value in environ.items():
        if key in CANN_VARIABLES:
            continue
        if key in PATH_LISTS:
            value = os.pathsep.join(p for p in value.split(os.pathsep) if p and not under(p))
        elif under(value):
            continue
        out[key] = value
    return out


def sourced(script: str, environ: Mapping[str, str]) -> Dict[str, str]:
    """The environment after ``source script`` in bash, starting from ``environ``."""
    try:
        done = subprocess.run(["bash", "-c", 'source "$0" >/dev/null 2>&1 && env -0', script], capture_output=True,
                              timeout=PROBE_TIMEOUT_S, env=dict(environ))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"source {script} failed: {exc}") from None
    if done.returncode != 0:
        raise ProbeError(f"source {script} failed (exit status {done.returncode})")
    out = {}
    for item in done.stdout.decode("utf-8", "replace").split("\0"):
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return out


def cann_option(script: Optional[str], origin: str, clean: Mapping[str, str],
                inherited: Mapping[str, str]) -> Tuple[Option, Optional[Dict[str, str]]]:
    """A CANN installation as an option, and the environment its set_env.sh makes (None for the
    inherited CANN: the environment as it is)."""
    try:
        environ = dict(inherited) if script is None else sourced(script, clean)
    except ProbeError as exc:
        return Option(CANN, origin, (("cann_toolkit", None), ("cann_kernels", None)), script or "", (str(exc),)), None
    found = ascend_versions(environ)
    toolkit, kernels = found.get("cann_version"), found.get("cann_ops_version")
    problem = kernels_problem(toolkit, kernels)
    option = Option(CANN, origin, (("cann_toolkit", toolkit), ("cann_kernels", kernels)), script or "",
                    (f"{script}: {problem}",) if problem else ())
    return option, (None if script is None else environ)


def fixed_versions(environ: Mapping[str, str]) -> Dict[str, Optional[str]]:
    """The driver and firmware of this machine: the same for every stack."""
    found = ascend_versions(environ)
    return {"driver": found.get("driver_version"), "firmware": found.get("firmware_version")}


def stack_options(spec: StackSpec, origin: str, clean: Mapping[str, str], inherited: Mapping[str, str],
                  names: Iterable[str]) -> Tuple[Dict[str, Option], Optional[Dict[str, str]]]:
    """A stack's option of every carrier (``names``: the variables either stack sets; one this
    stack does not declare keeps its inherited value) and its CANN environment."""
    cann, environ = cann_option(spec.cann, origin, clean, inherited)
    options = {CANN: cann, PYTHON: python_option(spec.python, origin, environ or inherited)}
    declared = spec.env_map
    for name in names:
        value = declared[name] if name in declared else inherited.get(name)
        options[env_option(name, value, origin).carrier] = env_option(name, value, origin)
    return options, environ
