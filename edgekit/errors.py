"""Error types. Every user-facing failure is one line that names the thing and the fix."""

from __future__ import annotations


class EdgekitError(Exception):
    """A failure the user can fix. The CLI prints the message alone and exits with ``exit_code``."""

    exit_code = 2


class BudgetExceededError(EdgekitError):
    """The artifact was built but misses an accuracy or size budget. ``report`` is the report of the job that
    missed it (written beside the files, which are kept aside under names that say so), when there is one."""

    exit_code = 1

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report


class VerificationError(EdgekitError):
    """An exported artifact disagrees with its source beyond the stated tolerance."""

    exit_code = 1


class MissingDependencyError(EdgekitError):
    """An optional extra (TensorRT, OpenVINO) is not installed."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type), for one-line errors."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__
