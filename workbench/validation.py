"""Input checks shared by every public entry point (one checker per concern).

Each check raises :class:`workbench.errors.ValidationError` (a ``ValueError``) whose message
names the argument, the shape or value found, and what was expected.
"""

from __future__ import annotations

import difflib

import numpy as np

from workbench.errors import ValidationError

_FLOAT_TYPES = (np.float32, np.float64)


def as_numpy(x, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise ValidationError(f"{name}: cannot convert {type(x).__name__} to an array ({exc})") from exc


def check_array(
    x,
    name: str,
    *,
    ndim: int = 2,
    min_rows: int = 1,
    min_cols: int = 1,
    dtype: str = "float",
    finite: bool = True,
) -> np.ndarray:
    """Validate a numeric array and return it as numpy.

    Parameters
    ----------
    x : array-like or torch.Tensor
        The input.
    name : str
        The argument's name, used in error messages.
    ndim : int, default: 2
        The required number of dimensions.
    min_rows, min_cols : int, default: 1
        Minimum sizes of the first and (for 2-D) second axis.
    dtype : {"float", "keep"}, default: "float"
        ``"float"`` keeps float32 and float64 and converts anything else to float64.
    finite : bool, default: True
        Check for NaN and inf. Pass False only where the caller checks finiteness more
        cheaply itself (e.g. from a product of the array) and then calls :func:`check_finite`.

    Raises
    ------
    ValidationError
        Wrong number of dimensions, too few rows or columns, NaN or inf values.
    """
    arr = as_numpy(x, name)
    if arr.ndim != ndim:
        raise ValidationError(
            f"{name} must be a {ndim}-D array, found {arr.ndim}-D with shape {arr.shape}"
        )
    if dtype == "float" and arr.dtype.type not in _FLOAT_TYPES:
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValidationError(f"{name} must be numeric, found dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if arr.shape[0] < min_rows:
        raise ValidationError(
            f"{name} has {arr.shape[0]} row(s) (shape={arr.shape}); at least {min_rows} required"
        )
    if ndim >= 2 and arr.shape[1] < min_cols:
        raise ValidationError(
            f"{name} has {arr.shape[1]} column(s) (shape={arr.shape}); at least {min_cols} required"
        )
    if finite:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise if ``arr`` holds NaN or inf, saying how many and where the first one is."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValidationError(
            f"{name} contains {bad.shape[0]} NaN or inf value(s) (first at index "
            f"{tuple(int(i) for i in bad[0])}, shape={arr.shape}); finite values expected"
        )


def check_same_rows(x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("X", "Y")) -> None:
    """Raise unless ``x`` and ``y`` have the same number of rows (aligned stimuli)."""
    if x.shape[0] != y.shape[0]:
        raise ValidationError(
            f"{names[0]} and {names[1]} must have one row per stimulus, in the same order: "
            f"found {x.shape[0]} rows in {names[0]} (shape={x.shape}) and {y.shape[0]} rows in "
            f"{names[1]} (shape={y.shape})"
        )


def did_you_mean(value, choices) -> str:
    """The hint ``"; did you mean 'a', 'b'?"`` naming up to 3 of ``choices`` close to ``value``.

    Returns ``""`` when none is close (``difflib`` similarity below 0.6), so that an error
    message reads ``f"unknown model {name!r}{did_you_mean(name, names)}; ..."`` either way.

    Examples
    --------
    >>> did_you_mean("resnet19", ["resnet18", "alexnet"])
    "; did you mean 'resnet18'?"
    >>> did_you_mean("mnist", ["cifar10", "digits32"])
    ''
    """
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_choice(value, name: str, allowed) -> None:
    """Raise unless ``value`` is one of ``allowed``, listing the valid values and the close ones."""
    if value not in allowed:
        raise ValidationError(
            f"{name}={value!r} is not valid; expected one of {sorted(allowed)}{did_you_mean(value, allowed)}"
        )
