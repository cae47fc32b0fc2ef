"""Skips for tests that exercise a feature the installed torch / transformers lacks.

The reason is the plugin's own (``pytest_npuperf.stack.compat``), so a test skips exactly where the
perf suite would skip the same feature, and runs everywhere else.
"""

from typing import Any, Callable

import pytest

from pytest_npuperf.stack.compat import Unsupported


def require(check: Callable[..., Any], *args: Any) -> None:
    """Skip the calling test with compat's reason when ``check(*args)`` says Unsupported."""
    try:
        check(*args)
    except Unsupported as exc:
        pytest.skip(str(exc))
