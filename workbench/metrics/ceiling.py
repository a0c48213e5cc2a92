"""Noise ceilings: how well a perfect model could score given the noise in the data.

- RSA on responses with repeats: :func:`rsa_split_half_ceiling`, the Spearman correlation of
  the RDMs of two halves of the repeats, Spearman-Brown corrected.
- RSA on per-subject RDMs: :func:`rsa_subject_ceiling`, the leave-one-subject-out bounds of
  Nili et al. (2014).
- Regression: :func:`regression_ceiling`, the neuroids' mean Spearman-Brown-corrected
  split-half reliability.
"""

from __future__ import annotations

import numpy as np

from workbench.data.reliability import (DEFAULT_METHOD, DEFAULT_SEED, DEFAULT_SPLITS,
                                        spearman_brown, split_half_means,
                                        split_half_reliability)
from workbench.errors import ValidationError
from workbench.metrics.rsa import compare_rdms, rdm
from workbench.validation import as_numpy


RSA_SPLITS = 10


def rsa_split_half_ceiling(repeats, *, method: str = DEFAULT_METHOD,
                           n_splits: int = RSA_SPLITS, seed: int = DEFAULT_SEED) -> float:
    """Split-half RSA noise ceiling of responses with repeats.

    For each split of the repeats (see :func:`workbench.data.reliability.split_half_means`),
    the correlation-distance RDMs of the two half means are compared with
    :func:`workbench.metrics.compare_rdms`; the mean over splits, ``r``, is Spearman-Brown
    corrected: ``2 r / (1 + r)``. Stimuli lacking two repeats for some neuroid are left out.

    Parameters
    ----------
    repeats : array-like or DataArray, shape (stimulus, neuroid, repetition)
        NaN-padded per-repeat responses.
    method, n_splits, seed
        As in :func:`workbench.data.reliability.split_half_means`; 10 random splits by
        default (each costs two RDMs and a Spearman correlation over all stimulus pairs).

    Returns
    -------
    float
    """
    rs = []
    for half_a, half_b in split_half_means(repeats, method=method, n_splits=n_splits, seed=seed):
        rows = np.isfinite(half_a).all(axis=1) & np.isfinite(half_b).all(axis=1)
        rs.append(compare_rdms(rdm(half_a[rows]), rdm(half_b[rows])))
    return float(spearman_brown(np.mean(rs)))


def rsa_subject_ceiling(subject_rdms) -> tuple[float, float]:
    """Leave-one-subject-out RSA noise ceiling (Nili et al., 2014), as ``(lower, upper)``.

    Parameters
    ----------
    subject_rdms : array-like, shape (subject, stimulus, stimulus)
        One RDM per subject (at least 2), same stimuli in the same order.

    Returns
    -------
    lower : float
        Mean over subjects of ``compare_rdms(subject RDM, mean RDM of the other subjects)``.
    upper : float
        Mean over subjects of ``compare_rdms(subject RDM, mean RDM of all subjects)``.
    """
    rdms = as_numpy(subject_rdms, "subject_rdms").astype(np.float64)
    if rdms.ndim != 3 or rdms.shape[1] != rdms.shape[2] or rdms.shape[0] < 2:
        raise ValidationError(
            "subject_rdms must have shape (subject >= 2, stimulus, stimulus), found "
            f"{rdms.shape}"
        )
    mean_all = rdms.mean(axis=0)
    n = rdms.shape[0]
    lower = [compare_rdms(rdms[s], (mean_all * n - rdms[s]) / (n - 1)) for s in range(n)]
    upper = [compare_rdms(rdms[s], mean_all) for s in range(n)]
    return float(np.mean(lower)), float(np.mean(upper))


def regression_ceiling(repeats, *, method: str = DEFAULT_METHOD, n_splits: int = DEFAULT_SPLITS,
                       seed: int = DEFAULT_SEED) -> float:
    """Regression noise ceiling: the mean over neuroids of the split-half reliability.

    The reliability of each neuroid is the Spearman-Brown-corrected split-half correlation
    of :func:`workbench.data.reliability.split_half_reliability`; neuroids whose reliability
    is undefined (constant halves) are ignored, and if none is defined an error is raised.
    """
    reliability = split_half_reliability(repeats, method=method, n_splits=n_splits, seed=seed)
    if not np.isfinite(reliability).any():
        raise ValidationError("repeats: no neuroid has a defined split-half reliability")
    return float(np.nanmean(reliability))
