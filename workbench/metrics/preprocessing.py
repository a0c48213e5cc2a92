"""The reference study's preprocessing of a layer's features: one global z-score."""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError
from workbench.metrics.stats import GramStats
from workbench.validation import check_array


def zscore_features(X):
    """Z-score all entries of ``X`` with one global mean and one global std (ddof=0).

    The metric functions do no preprocessing; the reference study (arXiv 2303.06060) applies
    this to each layer's features before scoring.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Features. For GramStats the result is :meth:`GramStats.zscored`.

    Returns
    -------
    ndarray of the same shape (float32 stays float32, anything else float64), or GramStats
        ``(X - X.mean()) / X.std()``, the mean and std computed in float64.

    Raises
    ------
    ValidationError
        Not 2-D, NaN or inf, or every entry equal (std = 0).
    """
    if isinstance(X, GramStats):
        return X.zscored()
    arr = check_array(X, "X")
    mean = arr.mean(dtype=np.float64)
    std = arr.std(dtype=np.float64)
    if not std > 0:
        raise ValidationError(
            f"X (shape={arr.shape}) is constant (every entry is {mean:.6g}); it cannot be z-scored"
        )
    return ((arr - arr.dtype.type(mean)) / arr.dtype.type(std)).astype(arr.dtype, copy=False)
