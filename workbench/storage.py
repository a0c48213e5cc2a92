"""Atomic file writes, and payloads whose integrity is checked when they are read back.

Every cache entry, fetched file and result in the workbench is written through
:func:`atomic_path`, so any file found under its final name is complete. A payload that is
read back later (checkpoints and weights, committed sweep units, processed Allen sessions,
activation-cache entries) is written with :func:`write_verified`, which puts a *record*
beside it: a JSON object holding the payload's sha256 and size and any fields that say what
the payload is. :func:`read_verified` refuses a payload whose record is missing, unreadable,
names something else, or holds another sha256, with a :class:`~workbench.errors.DataError`
naming the file and the problem; each caller then decides whether that is fatal (a
checkpoint) or means "compute it again" (a cache entry).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The temporary file lives in the same directory (so the rename is atomic on POSIX) and is
    removed if the block raises. Parent directories are created.

    Examples
    --------
    >>> with atomic_path("out/scores.nc") as tmp:  # doctest: +SKIP
    ...     dataset.to_netcdf(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def record_path(path: str | os.PathLike) -> Path:
    """The default record of a payload: ``<path>.sha256`` beside it."""
    return Path(f"{path}.sha256")


def write_verified(path: str | os.PathLike, write: Callable[[Path], Any], *, fields: dict | None = None,
                   record: str | os.PathLike | None = None) -> str:
    """Write a payload atomically through ``write(tmp_path)``, then its record; return its sha256.

    Parameters
    ----------
    path : path
        The payload's final name.
    write : callable
        ``write(tmp)`` writes the whole payload to the temporary path ``tmp`` (beside ``path``).
    fields : dict, optional
        What the payload is (a key, the unit it holds, ...), stored in the record beside
        ``sha256`` and ``bytes``; :func:`read_verified` can require some of them.
    record : path, optional
        The record's name; default :func:`record_path`.

    Notes
    -----
    The old record is removed first and the new one written last, so a crash in between
    leaves a payload without a record, which :func:`read_verified` refuses, never a
    valid-looking pair.
    """
    path = Path(path)
    record = record_path(path) if record is None else Path(record)
    record.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        write(tmp)
        content = {"sha256": sha256_file(tmp), "bytes": tmp.stat().st_size}
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps({**(fields or {}), **content}, sort_keys=True, indent=1, default=str) + "\n")
    return content["sha256"]


def read_verified(path: str | os.PathLike, *, expect: dict | None = None,
                  record: str | os.PathLike | None = None, what: str = "file") -> dict:
    """Check a payload written by :func:`write_verified` against its record; return the record.

    Parameters
    ----------
    path : path
        The payload.
    expect : dict, optional
        Fields the record must hold with these values (e.g. the key the caller looks up).
    record : path, optional
        The record's name; default :func:`record_path`.
    what : str, default: "file"
        What the payload is, the first word of error messages (``"checkpoint"``).

    Raises
    ------
    DataError
        The payload or its record is missing, the record is unreadable or holds other
        ``expect`` values, or the payload's sha256 differs from the record's; the message
        names the payload, the record and what is wrong.
    """
    path = Path(path)
    record = record_path(path) if record is None else Path(record)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    if not record.is_file():
        raise DataError(f"{what} {path} has no checksum record {record.name}: it was not completely "
                        "written (a crash?)")
    content = _read_record(record, path, what)
    for name, value in (expect or {}).items():
        if content.get(name) != value:
            raise DataError(f"{what} {path}: its record {record.name} holds {name}={content.get(name)!r}, "
                            f"expected {value!r}")
    actual = sha256_file(path)
    if actual != content["sha256"]:
        raise DataError(f"{what} {path} is truncated or was modified: its sha256 is {actual[:12]}..., "
                        f"{record.name} says {content['sha256'][:12]}...")
    return content


def _read_record(record: Path, path: Path, what: str) -> dict:
    """The JSON record, or ``{"sha256": ...}`` from a record holding only the hex digest
    (the checkpoint sidecars written before records were JSON)."""
    text = record.read_text()
    if re.fullmatch(r"[0-9a-f]{64}\s*", text):
        return {"sha256": text.strip()}
    try:
        content = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{what} {path}: its record {record.name} is not valid JSON ({exc})") from None
    if not isinstance(content, dict) or not isinstance(content.get("sha256"), str):
        raise DataError(f"{what} {path}: its record {record.name} holds no sha256")
    return content
