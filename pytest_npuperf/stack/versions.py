"""Installed package versions, read from package metadata (never by importing the package).

The one reader of versions: the fingerprint, the version rules (compat) and the device hints
all ask here, so torch_npu's version is known even where ``import torch_npu`` fails.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

Version = Tuple[int, ...]


def package_version(*names: str) -> Optional[str]:
    """The installed version of the first of ``names`` that is installed (spellings of one
    distribution, e.g. 'torch-npu', 'torch_npu'); None when none is."""
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except Exception:  # PackageNotFoundError, or broken metadata: unknown, never a failure
            continue
    return None


def package_requires(name: str) -> List[str]:
    """The requirements a distribution declares ([] when it is absent or declares none)."""
    from importlib import metadata

    try:
        return list(metadata.requires(name) or [])
    except Exception:
        return []


def parse_version(text: Optional[str]) -> Version:
    """'2.1.2+cpu' -> (2, 1, 2); '4.57.0.dev0' -> (4, 57, 0); unparsable -> ()."""
    numbers = re.findall(r"\d+", (text or "").split("+")[0])[:3]
    return tuple(int(n) for n in numbers)
