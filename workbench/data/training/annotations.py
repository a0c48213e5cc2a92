"""Reading the plain-text annotation files of image benchmarks (CUB-200-2011, FGVC-Aircraft, ...).

Every error names the file, the line and what was expected.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def read_fields(path: Path, what: str, fields: int, *, maxsplit: int | None = None) -> list[list[str]]:
    """The non-empty lines of ``path`` split on whitespace into ``fields`` fields each.

    ``what`` describes the file and its line format for the errors (e.g. ``"CUB-200-2011
    images.txt ('<id> <path>')"``); ``maxsplit`` (default ``fields - 1``) lets the last field
    hold spaces.

    Raises
    ------
    DataError
        The file does not exist, or a line has another number of fields (its number is given).
    """
    from workbench.errors import DataError

    if not path.is_file():
        raise DataError(f"{path} does not exist; expected the {what} file")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=fields - 1 if maxsplit is None else maxsplit)
        if len(parts) != fields:
            raise DataError(f"{path} line {lineno}: {line!r}; expected {fields} fields ({what})")
        rows.append(parts)
    return rows


def parse_int(value: str, path: Path, what: str) -> int:
    """``int(value)``, or a DataError naming ``path`` and ``what`` the value should be."""
    from workbench.errors import DataError

    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}: {what} {value!r} is not an integer") from None


def hash_files(*paths: Path | None) -> str:
    """SHA-256 over the names and bytes of the existing files among ``paths`` (a fingerprint)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is not None and path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
