"""Checkpoints and weight files: written atomically, each with a sha256 record, verified on load.

A file ``X.pt`` is valid only when its record ``X.pt.sha256`` (:func:`workbench.storage.write_verified`)
exists and matches its content; a file without a record (a crash between the two renames),
truncated, or changed by hand is refused with an error naming it, and is never loaded half.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch

from workbench.errors import DataError
from workbench.storage import read_verified, write_verified

_ADVICE = "restore it, or train again with --force"


def save_verified(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save`` ``obj`` to ``path`` atomically and write its sha256 record; return the hash."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_verified(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def verify(path: str | os.PathLike, *, what: str = "checkpoint") -> str:
    """Return the sha256 of ``path`` after checking it against its record, or raise DataError."""
    try:
        return read_verified(path, what=what)["sha256"]
    except DataError as exc:
        raise DataError(f"{exc}; {_ADVICE}") from None


def load_verified(path: str | os.PathLike, *, what: str = "checkpoint", weights_only: bool = True) -> Any:
    """Verify ``path`` against its record, then ``torch.load`` it on the CPU."""
    verify(path, what=what)
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # a matching hash but unreadable content: written by something else
        raise DataError(f"{what} {path} cannot be read by torch.load ({type(exc).__name__}: {exc})") from None
