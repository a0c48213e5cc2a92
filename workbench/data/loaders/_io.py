"""File readers shared by the loaders; every error names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.errors import DataError


def read_mat(path: Path, variables: tuple[str, ...]) -> dict:
    """Read a MATLAB (v5) file and return it, checking that ``variables`` are present."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise DataError(
            f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [v for v in variables if v not in data]
    if missing:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DataError(f"{path}: variable(s) {missing} missing; the file holds {found}")
    return data


NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: Path, ndim: int | None) -> np.ndarray:
    """Read a numeric ``.npy`` array (no pickles) of ``ndim`` dimensions when given.

    Raises
    ------
    DataError
        Naming the file: it is missing, is not a valid .npy array (no NPY header, a damaged
        header, fewer data bytes than the header's shape needs), or has the wrong shape or
        dtype.
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc
    if magic != NPY_MAGIC:
        raise DataError(f"{path}: not a valid .npy array: the file does not start with the NPY "
                        f"header (found {magic!r}); expected a file written by numpy.save")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a valid .npy array, the file is damaged or truncated "
                        f"({type(exc).__name__}: {exc}); expected a file written by numpy.save"
                        ) from exc
    if ndim is not None and array.ndim != ndim:
        raise DataError(f"{path}: expected a {ndim}-D array, found shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: expected numbers, found dtype {array.dtype}")
    return array.astype(np.float64)


def mat_string(value) -> str:
    """A MATLAB char array as read by scipy (possibly nested in 1x1 arrays) as ``str``."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            if value.dtype.kind == "U":
                return "".join(value.ravel())
            raise DataError(f"expected a MATLAB string, found an array of shape {value.shape}")
        value = value.ravel()[0]
    return str(value)


def check_options(options: dict, allowed, where: str) -> None:
    """Raise naming the unknown loader options and the valid ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(f"{where}: unknown option(s) {unknown}; expected some of {sorted(allowed)}")
