"""The failures every stage can raise and the fixture turns into a failed test.

They live below every stage so that a device backend, a flow and the judge can name the same
failure without importing each other.
"""

from __future__ import annotations


class MeasurementError(Exception):
    """The measurement itself is invalid (wrong output length, impossible numbers...)."""


class GraphError(MeasurementError):
    """Graph mode measured something other than the eager model (a break, a recompilation while
    timed, output that disagrees with eager): the test fails, it is never skipped."""


class BaselineError(Exception):
    """A baseline that cannot be read, written or used; the message names the file and the fix."""


class NpuPerfWarning(UserWarning):
    """A verdict worth reading that does not fail the test (drift, improvement, inconclusive)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
