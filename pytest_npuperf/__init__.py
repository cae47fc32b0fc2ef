"""pytest-npuperf: a performance gate for Mistral-7B inference on Ascend NPUs (and CUDA, CPU)."""

from .fixture import NpuPerf, NpuPerfWarning

__version__ = "0.1.0"
__all__ = ["NpuPerf", "NpuPerfWarning", "__version__"]
