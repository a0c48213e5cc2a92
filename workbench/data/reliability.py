"""Split-half reliability of neuroids over repeated presentations.

The repeats of each stimulus are split into two halves; per neuroid, the mean response of
one half is correlated (Pearson, across stimuli) with that of the other, and the correlation
is Spearman-Brown corrected, ``2 r / (1 + r)``, to estimate the reliability of the mean over
all repeats. Splits are either odd/even repeats or random (seeded) with the result averaged
over splits. With unequal repeat counts the available repeats of each stimulus are split;
stimuli with fewer than two repeats for a neuroid are left out of that neuroid's estimate.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr

from workbench.dims import NEUROID, REPETITION, STIMULUS
from workbench.errors import ValidationError
from workbench.validation import check_choice

METHODS = ("odd_even", "random")
DEFAULT_METHOD = "random"
DEFAULT_SPLITS = 50
DEFAULT_SEED = 0


def spearman_brown(r, factor: float = 2.0):
    """Spearman-Brown prediction ``factor * r / (1 + (factor - 1) * r)``."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1.0 + (factor - 1.0) * r)


def _as_repeats(repeats) -> np.ndarray:
    if isinstance(repeats, xr.DataArray):
        missing = {STIMULUS, NEUROID, REPETITION} - set(repeats.dims)
        if missing:
            raise ValidationError(
                f"repeats must have dims ({STIMULUS}, {NEUROID}, {REPETITION}), found "
                f"{repeats.dims}"
            )
        repeats = repeats.transpose(STIMULUS, NEUROID, REPETITION).values
    values = np.asarray(repeats, dtype=np.float64)
    if values.ndim != 3:
        raise ValidationError(
            "repeats must be a 3-D array (stimulus, neuroid, repetition), found shape "
            f"{values.shape}"
        )
    if values.shape[2] < 2:
        raise ValidationError(
            f"repeats has {values.shape[2]} repetition(s); at least 2 are needed to split"
        )
    return values


def split_half_means(repeats, *, method: str = DEFAULT_METHOD, n_splits: int = DEFAULT_SPLITS,
                     seed: int = DEFAULT_SEED) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(half_a, half_b)`` mean responses, each ``(stimulus, neuroid)``, per split.

    Parameters
    ----------
    repeats : array-like or DataArray, shape (stimulus, neuroid, repetition)
        Responses per repeat; NaN pads the end of the repetition axis.
    method : {"odd_even", "random"}, default: "random"
        ``"odd_even"``: one split, repeats 0, 2, 4, ... against 1, 3, 5, ... (of each
        stimulus's available repeats). ``"random"``: ``n_splits`` random splits of each
        stimulus's available repeats into halves of ``k // 2`` and ``k - k // 2``.
    n_splits : int, default: 50
        Number of random splits (ignored for ``"odd_even"``).
    seed : int, default: 0
        Seed of the random splits.

    Notes
    -----
    Entries where a stimulus has fewer than two repeats for a neuroid are NaN in both halves.
    """
    check_choice(method, "method", METHODS)
    values = _as_repeats(repeats)
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    n_rep = values.shape[2]
    counts = valid.sum(axis=2)  # (stimulus, neuroid)
    rng = np.random.default_rng(seed)
    for _ in range(1 if method == "odd_even" else int(n_splits)):
        if method == "odd_even":
            half_a = valid & (np.arange(n_rep) % 2 == 0)
        else:
            # one random permutation per stimulus, shared by neuroids; padding is trailing, so
            # a neuroid with k repeats of a stimulus puts the k // 2 first-ranked of its
            # repeats 0..k-1 in half a
            keys = rng.random((values.shape[0], n_rep))
            half_a = np.zeros(values.shape, dtype=bool)
            for k in np.unique(counts):
                ranks = np.argsort(np.argsort(np.where(np.arange(n_rep) < k, keys, np.inf), 1), 1)
                half_a |= (counts == k)[:, :, None] & (ranks < k // 2)[:, None, :]
            half_a &= valid
        half_b = valid & ~half_a
        n_a, n_b = half_a.sum(axis=2), half_b.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_a = np.where(n_a > 0, (filled * half_a).sum(axis=2) / n_a, np.nan)
            mean_b = np.where(n_b > 0, (filled * half_b).sum(axis=2) / n_b, np.nan)
        usable = (n_a > 0) & (n_b > 0)
        yield np.where(usable, mean_a, np.nan), np.where(usable, mean_b, np.nan)


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column over the rows where both are finite; NaN if a column is constant."""
    both = np.isfinite(a) & np.isfinite(b)
    n = both.sum(axis=0)
    a = np.where(both, a, 0.0)
    b = np.where(both, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.sum(0) / n, b.sum(0) / n
        da, db = np.where(both, a - ma, 0.0), np.where(both, b - mb, 0.0)
        r = (da * db).sum(0) / np.sqrt((da**2).sum(0) * (db**2).sum(0))
    return np.where(n >= 3, r, np.nan)


def split_half_reliability(repeats, *, method: str = DEFAULT_METHOD,
                           n_splits: int = DEFAULT_SPLITS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Spearman-Brown-corrected split-half reliability of each neuroid.

    Parameters
    ----------
    repeats, method, n_splits, seed
        As in :func:`split_half_means`.

    Returns
    -------
    ndarray, shape (neuroid,)
        For ``"random"``, the mean Pearson r over splits, then corrected. NaN for a neuroid
        whose half means do not vary across stimuli.
    """
    rs = [_columnwise_pearson(a, b) for a, b in
          split_half_means(repeats, method=method, n_splits=n_splits, seed=seed)]
    return spearman_brown(np.mean(rs, axis=0))


def reliable_neuroids(reliability: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of neuroids with reliability ``>= threshold`` (NaN never passes)."""
    reliability = np.asarray(reliability, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(reliability, nan=-np.inf) >= threshold
