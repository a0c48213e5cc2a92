"""Resampling over stimuli: the workbench's only bootstrap code.

Why subsamples without replacement
----------------------------------
A classic bootstrap draws ``n`` stimuli with replacement, so about a third of each resample
are duplicates. Duplicated stimuli are harmless for a mean but not for our metrics: two
copies of one stimulus give a zero-distance pair in an RDM (a spurious perfect match that
inflates RSA) and land on both sides of a cross-validation split (leakage that inflates
regression scores). Each resample here therefore draws ``m = round(fraction * n)`` distinct
stimuli (``fraction=0.8`` by default): "delete-d" subsampling.

A score on ``m`` of ``n`` distinct stimuli varies less around the full-sample score than the
full-sample score varies around the truth: for a mean, by the factor ``(n - m) / m``. The
interval of :func:`subsample_interval` therefore rescales the resampled deviations by
``sqrt(m / (n - m))`` (the delete-d jackknife correction) and centres them on the full-sample
score, so that a 95% interval covers about 95% (checked in the tests on a mean).

For metrics computed from :class:`~workbench.metrics.GramStats`, a resample is just indexing
rows and columns of the Gram matrix and the row sums (:func:`take_stimuli`): no re-extraction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from workbench.dims import STIMULUS
from workbench.errors import ValidationError
from workbench.metrics.stats import GramStats


def subsample_indices(n_stimuli: int, n_resamples: int, *, fraction: float = 0.8, seed: int = 0) -> np.ndarray:
    """Indices of ``n_resamples`` subsamples of ``round(fraction * n_stimuli)`` distinct stimuli.

    Returns
    -------
    ndarray of shape (n_resamples, m), int
        Each row sorted ascending, without duplicates; reproducible for a given ``seed``.
    """
    if int(n_resamples) < 1:
        raise ValidationError(f"n_resamples must be >= 1, found {n_resamples}")
    if not 0 < fraction < 1:
        raise ValidationError(f"fraction must lie in (0, 1), found {fraction}")
    m = int(round(fraction * n_stimuli))
    if m < 3 or m >= n_stimuli:
        raise ValidationError(
            f"fraction={fraction} of n_stimuli={n_stimuli} gives subsamples of {m} stimuli; "
            f"expected between 3 and {n_stimuli - 1} (use more stimuli or another fraction)"
        )
    rng = np.random.default_rng(seed)
    return np.sort(np.stack([rng.choice(n_stimuli, size=m, replace=False) for _ in range(int(n_resamples))]), axis=1)


def take_stimuli(x, indices: np.ndarray):
    """The stimuli ``indices`` of ``x``, whatever holds them.

    Parameters
    ----------
    x : GramStats, DataArray or ndarray
        GramStats: rows and columns of the Gram and the row sums are taken. DataArray: the
        ``stimulus`` dim is indexed. ndarray: the rows. (RDMs: :func:`take_rdm`.)
    indices : ndarray of int
    """
    indices = np.asarray(indices)
    if isinstance(x, GramStats):
        out = GramStats(indices.size, dtype=x.dtype)
        out.gram = x.gram[np.ix_(indices, indices)]
        out.row_sums = x.row_sums[indices]
        out.n_features = x.n_features
        return out
    if isinstance(x, xr.DataArray):
        if STIMULUS not in x.dims:
            raise ValidationError(f"x has dims {x.dims}; expected a {STIMULUS!r} dim to resample")
        return x.isel({STIMULUS: indices})
    return np.asarray(x)[indices]


def take_rdm(rdm, indices: np.ndarray):
    """Rows and columns ``indices`` of a square RDM (ndarray or DataArray)."""
    indices = np.asarray(indices)
    if isinstance(rdm, xr.DataArray):
        return rdm.isel({rdm.dims[0]: indices, rdm.dims[1]: indices})
    return np.asarray(rdm)[np.ix_(indices, indices)]


def resample(statistic: Callable[[np.ndarray], object], n_stimuli: int, *, n_resamples: int,
             fraction: float = 0.8, seed: int = 0) -> np.ndarray:
    """Evaluate ``statistic(indices)`` on each subsample; returns an array (n_resamples, ...).

    ``statistic`` receives the sorted indices of one subsample and returns a number or an
    array (e.g. one score per metric).
    """
    indices = subsample_indices(n_stimuli, n_resamples, fraction=fraction, seed=seed)
    return np.stack([np.asarray(statistic(idx), dtype=float) for idx in indices])


def subsample_interval(samples, full, *, n_stimuli: int, fraction: float = 0.8,
                       level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of a full-sample score from its subsample scores.

    ``low, high = full + sqrt(m / (n - m)) * quantiles(samples - mean(samples))`` at
    ``(1 - level) / 2`` and ``(1 + level) / 2``, with ``m = round(fraction * n)``.

    Parameters
    ----------
    samples : array-like of shape (n_resamples, ...)
        Scores of the subsamples (from :func:`resample`).
    full : float or array-like of shape (...)
        The score on all stimuli.
    n_stimuli, fraction
        As passed to :func:`resample`.
    level : float, default: 0.95

    Returns
    -------
    low, high : ndarray of shape (...)
        NaN wherever a subsample score or ``full`` is NaN (never a silently narrower interval).
    """
    samples = np.asarray(samples, dtype=float)
    if samples.ndim < 1 or samples.shape[0] < 2:
        raise ValidationError(f"samples must hold >= 2 resamples along axis 0, found shape {samples.shape}")
    if not 0 < level < 1:
        raise ValidationError(f"level must lie in (0, 1), found {level}")
    m = int(round(fraction * n_stimuli))
    scale = np.sqrt(m / (n_stimuli - m))
    deviations = (samples - samples.mean(axis=0)) * scale
    q = np.quantile(deviations, [(1 - level) / 2, (1 + level) / 2], axis=0)
    full = np.asarray(full, dtype=float)
    return full + q[0], full + q[1]
