"""Which stacks can exist, from the version rules the project holds.

- torch_npu pins one torch (its package metadata's ``Requires-Dist``, as ``devices`` reads it for
  the import hint): an environment whose torch the pin refuses cannot import torch_npu;
- torch, transformers and numpy must fit each other (``stack.compat.stack_problems``);
- the CANN kernels (operator) package belongs to one toolkit release: a kernels package of another
  release than its toolkit is not a CANN installation.

Pure: versions in, reasons out (empty: the combination can exist).
"""

from __future__ import annotations

import re
from typing import Iterable, List, Mapping, Optional, Sequence

from ..stack.compat import stack_problems
from ..stack.versions import parse_version


def torch_pins(requires: Iterable[str]) -> List[str]:
    """The requirements on torch among torch_npu's declared ones (not torchvision, not extras)."""
    return [r for r in requires if re.match(r"torch\b(?!_|-)", r) and "extra ==" not in r.replace("extra==", "extra ==")]


def pin_problem(torch_npu: Optional[str], pins: Sequence[str], torch: Optional[str]) -> str:
    """Why this torch cannot carry this torch_npu ('' when it can, or when nothing is known)."""
    if not torch_npu or not torch or not pins:
        return ""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    for pin in pins:
        try:
            spec = Requirement(pin.split(";")[0]).specifier
            if not spec.contains(Version(torch), prereleases=True):
                return f"torch_npu {torch_npu} pins {pin.replace(' ', '')}, not torch {torch}"
        except (InvalidRequirement, InvalidVersion):
            continue
    return ""


def same_release(toolkit: str, kernels: str) -> bool:
    """Whether a kernels package version belongs to a toolkit version ('8.5.0' and '8.5.0';
    '8.0.RC1' and '8.0.RC1.alpha001' are one release: the first three dotted parts decide)."""
    def release(text: str) -> List[str]:
        return text.strip().lower().split(".")[:3]

    return release(toolkit) == release(kernels)


def kernels_problem(toolkit: Optional[str], kernels: Optional[str]) -> str:
    if toolkit and kernels and not same_release(toolkit, kernels):
        return f"the CANN kernels package {kernels} belongs to another release than the toolkit {toolkit}"
    return ""


def python_problems(versions: Mapping[str, Optional[str]], pins: Sequence[str], numpy: Optional[str]) -> List[str]:
    """Why an environment with these versions cannot run the suite (empty: it can, as far as known)."""
    problems = []
    pin = pin_problem(versions.get("torch_npu"), pins, versions.get("torch"))
    if pin:
        problems.append(pin)
    if versions.get("torch"):
        problems += stack_problems(parse_version(versions.get("torch")), parse_version(versions.get("transformers")),
                                   parse_version(numpy))
    return problems
