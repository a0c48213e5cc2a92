"""Exceptions that callers may want to catch by kind.

Every error message names the argument or file at fault, what was found and what was
expected. Bad input raises a ``ValueError`` subclass so that ``except ValueError`` works.
"""


class WorkbenchError(Exception):
    """Base class of the workbench's own exceptions."""


class ValidationError(WorkbenchError, ValueError):
    """An argument's shape, values or type are not what the function expects."""


class DataError(WorkbenchError, ValueError):
    """A dataset file is missing, corrupt or not in the declared format."""


class ChecksumError(DataError):
    """A file's sha256 differs from the one its manifest pins."""


class WeightsUnavailableError(WorkbenchError, RuntimeError):
    """Published weights cannot be had (no network, no local copy)."""
