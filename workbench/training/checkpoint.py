"""Checkpoints and weight files: written atomically, each with a sha256 sidecar, verified on load.

A file ``X.pt`` is valid only when ``X.pt.sha256`` exists and matches its content; a file
without a sidecar (a crash between the two renames), truncated, or changed by hand is refused
with an error naming it, and is never loaded half.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from workbench.errors import DataError
from workbench.storage import atomic_path, sha256_file


def sidecar(path: Path) -> Path:
    return Path(f"{path}.sha256")


def save_verified(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save`` ``obj`` to ``path`` atomically and write its sha256 sidecar; return the hash."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    # The old sidecar goes first and the new one last: a crash in between leaves a file
    # without a sidecar, never a valid-looking pair.
    digest = hashlib.sha256(data).hexdigest()
    sidecar(path).unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(sidecar(path)) as tmp:
        tmp.write_text(digest + "\n")
    return digest


def verify(path: str | os.PathLike, *, what: str = "checkpoint") -> str:
    """Return the sha256 of ``path`` after checking it against its sidecar, or raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist; restore it, or train again with --force")
    side = sidecar(path)
    if not side.is_file():
        raise DataError(f"{what} {path} has no checksum file {side.name}: it was not completely "
                        "written (a crash?) and is not loaded; restore it, or train again with --force")
    expected = side.read_text().strip()
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"{what} {path} is truncated or was modified: its sha256 is {actual[:12]}..., "
                        f"{side.name} says {expected[:12]}...; it is not loaded; restore it, or train again with --force")
    return actual


def load_verified(path: str | os.PathLike, *, what: str = "checkpoint", weights_only: bool = True) -> Any:
    """Verify ``path`` against its sidecar, then ``torch.load`` it on the CPU."""
    verify(path, what=what)
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # a matching hash but unreadable content: written by something else
        raise DataError(f"{what} {path} cannot be read by torch.load ({type(exc).__name__}: {exc})") from None
