"""pytest-npuperf: a performance gate for Mistral-7B inference on Ascend NPUs (and CUDA, CPU).

Importing the package imports nothing heavy: the fixture class is loaded on first use, so the
pure stages (judge, store, report) can be imported alone.
"""

from typing import Any

from .errors import NpuPerfWarning
from .model.workloads import Prompt  # what a pytest_npuperf_workloads hook returns (docs/hooks.md)

__version__ = "0.1.0"
__all__ = ["NpuPerf", "NpuPerfWarning", "Prompt", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "NpuPerf":
        from .fixture import NpuPerf

        return NpuPerf
    raise AttributeError(f"module 'pytest_npuperf' has no attribute {name!r}")
