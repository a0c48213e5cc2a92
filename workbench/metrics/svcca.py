"""Singular vector canonical correlation analysis (Raghu et al. 2017), computed exactly."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from workbench.errors import ValidationError
from workbench.metrics.blas import single_threaded_blas
from workbench.metrics.derived import DerivedStats, prepare_pair


def svcca(X, Y, n_components: int = 40, reduce_y: bool = True) -> float:
    """SVCCA similarity: CCA between the truncated SVDs of model features and responses.

    ``X`` is reduced to its ``n_components`` leading singular directions with an exact,
    uncentred truncated SVD (``U_k S_k``, what scikit-learn's ``TruncatedSVD`` returns, up to
    signs); ``Y`` too when ``reduce_y`` and it has more than ``n_components`` columns. Both
    reduced sets are centred and their canonical correlations computed exactly, as the
    singular values of ``Qx^T Qy`` for orthonormal bases ``Qx``, ``Qy`` of their column spaces.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Model features.
    Y : array-like or torch.Tensor of shape (n_stimuli, n_neuroids)
        Neural responses to the same stimuli, in the same order (GramStats only when it
        is reduced).
    n_components : int, default: 40
        Number of TSVD components, ``1 <= n_components <= min(n_stimuli - 1, n_features)``.
    reduce_y : bool, default: True
        Also reduce ``Y`` when it has more than ``n_components`` columns.

    Returns
    -------
    float
        Mean of all ``min(k_x, k_y)`` canonical correlations, in [0, 1]; higher is more
        similar, 1 for identical inputs. Invariant to invertible linear maps of either
        reduced subspace and to the signs of singular vectors.

    Raises
    ------
    ValidationError
        Bad shapes or values; ``n_components`` out of range; a reduced set that is rank
        deficient after centring; ``k_x + k_y > n_stimuli - 1`` (then some canonical
        correlations are 1 whatever the data).
    """
    return svcca_from_stats(*prepare_pair(X, Y), n_components=n_components, reduce_y=reduce_y)


def svcca_from_stats(x: DerivedStats, y: DerivedStats, n_components: int = 40, reduce_y: bool = True) -> float:
    """:func:`svcca` on prepared statistics (used by :func:`workbench.metrics.compare`)."""
    k = x.check_n_components(n_components)
    components_x = x.tsvd_components(k)
    if reduce_y and y.n_features > k:
        components_y, what_y = y.tsvd_components(k), f"the {k} TSVD components of Y"
    else:
        components_y = y.require_array("svcca without reduction of Y").astype(np.float64)
        what_y = f"Y ({components_y.shape[1]} columns)"
    with single_threaded_blas():
        return _svcca_of_components(components_x, components_y, f"the {k} TSVD components of X", what_y)


def _svcca_of_components(components_x: np.ndarray, components_y: np.ndarray, what_x: str, what_y: str) -> float:
    n_stimuli = components_x.shape[0]
    kx, ky = components_x.shape[1], components_y.shape[1]
    if kx + ky > n_stimuli - 1:
        raise ValidationError(
            f"svcca: {kx} + {ky} canonical variables do not fit in the {n_stimuli - 1} "
            f"dimensions left by {n_stimuli} centred stimuli, so some canonical correlations "
            "would be 1 whatever the data; expected k_x + k_y <= n_stimuli - 1 (lower "
            "n_components or use more stimuli)"
        )
    basis_x = _centred_basis(components_x, what_x)
    basis_y = _centred_basis(components_y, what_y)
    correlations = scipy.linalg.svd(basis_x.T @ basis_y, compute_uv=False, check_finite=False)
    return float(np.clip(correlations, 0.0, 1.0).mean())


def _centred_basis(z: np.ndarray, what: str) -> np.ndarray:
    """Orthonormal basis (n x k) of the column space of ``z`` after centring each column.

    Uses a QR decomposition with column pivoting, whose ``|R_jj|`` reveal the rank.
    """
    centred = z - z.mean(axis=0, keepdims=True)
    q, r, _ = scipy.linalg.qr(centred, mode="economic", pivoting=True, check_finite=False)
    diag = np.abs(np.diag(r))
    tol = diag[0] * max(centred.shape) * np.finfo(np.float64).eps * 10 if diag[0] > 0 else np.inf
    rank = int((diag > tol).sum())
    if rank < z.shape[1]:
        raise ValidationError(
            f"svcca: {what} have rank {rank} after centring, fewer than their {z.shape[1]} "
            "columns; CCA needs linearly independent centred columns (lower n_components, or "
            "drop constant or redundant columns)"
        )
    return q
