"""Singular vector canonical correlation analysis (Raghu et al. 2017), computed exactly."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg

from workbench.errors import ValidationError
from workbench.metrics.blas import single_threaded_blas
from workbench.metrics.derived import DerivedStats, prepare_pair

logger = logging.getLogger(__name__)

#: Numerical rank of a centred set of ``k`` columns over ``n`` stimuli: the number of
#: ``|R_jj|`` of its column-pivoted QR above ``RANK_RTOL * max(n, k) * eps * |R_11|``
#: (``eps`` of float64, about 2.2e-16), i.e. relative to its largest singular direction.
RANK_RTOL = 10.0


class RankDeficiencyWarning(UserWarning):
    """A side of SVCCA was rank deficient after centring and was reduced to its numerical rank."""


class SvccaScore(float):
    """An SVCCA score (a float) that also says how many canonical variables each side had.

    Attributes
    ----------
    rank_x, rank_y : int
        Numerical rank after centring of the reduced model and neural sides: the number of
        canonical variables used on each side (``min(rank_x, rank_y)`` correlations averaged).
    n_columns_x, n_columns_y : int
        Columns of the reduced sets before any rank reduction.
    """

    rank_x: int
    rank_y: int
    n_columns_x: int
    n_columns_y: int

    def __new__(cls, value: float, *, rank_x: int, rank_y: int, n_columns_x: int, n_columns_y: int):
        score = super().__new__(cls, value)
        score.rank_x, score.rank_y = int(rank_x), int(rank_y)
        score.n_columns_x, score.n_columns_y = int(n_columns_x), int(n_columns_y)
        return score

    @property
    def reduced(self) -> bool:
        """Whether either side was reduced to a lower numerical rank."""
        return self.rank_x < self.n_columns_x or self.rank_y < self.n_columns_y


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
    SvccaScore (a float)
        Mean of all ``min(k_x, k_y)`` canonical correlations, in [0, 1]; higher is more
        similar, 1 for identical inputs. Invariant to invertible linear maps of either
        reduced subspace and to the signs of singular vectors. Its ``rank_x`` and ``rank_y``
        give the number of canonical variables of each side.

    Raises
    ------
    ValidationError
        Bad shapes or values; ``n_components`` out of range; a reduced set that is constant
        (rank 0 after centring); ``k_x + k_y > n_stimuli - 1`` (then some canonical
        correlations are 1 whatever the data).

    Warns
    -----
    RankDeficiencyWarning
        A reduced set is rank deficient after centring (duplicate or constant columns, e.g. a
        unit listed twice in a recording): CCA is not defined on linearly dependent
        variables, so that side is reduced to its numerical rank ``r`` (an orthonormal basis
        of its centred column space) and ``k`` is ``r`` there. ``r`` counts the ``|R_jj|`` of
        a column-pivoted QR of the centred set above ``10 * max(n, k) * eps * |R_11|``
        (:data:`RANK_RTOL` = 10, ``eps`` = 2.2e-16, float64).
    """
    return svcca_from_stats(*prepare_pair(X, Y), n_components=n_components, reduce_y=reduce_y)


def svcca_from_stats(x: DerivedStats, y: DerivedStats, n_components: int = 40,
                     reduce_y: bool = True) -> SvccaScore:
    """:func:`svcca` on prepared statistics (used by :func:`workbench.metrics.compare`)."""
    k = x.check_n_components(n_components)
    reduced = reduce_y and y.n_features > k
    columns_y = k if reduced else y.n_features
    with single_threaded_blas():
        basis_x = centred_basis(x, k)
        basis_y = centred_basis(y, k if reduced else None)
        kx, ky = basis_x.shape[1], basis_y.shape[1]
        if kx + ky > x.n_stimuli - 1:
            ranks = "" if (kx, ky) == (k, columns_y) else " (ranks)"
            raise ValidationError(
                f"svcca: {kx} + {ky} canonical variables{ranks} do not fit in the {x.n_stimuli - 1} "
                f"dimensions left by {x.n_stimuli} centred stimuli, so some canonical correlations "
                "would be 1 whatever the data; expected k_x + k_y <= n_stimuli - 1 (lower "
                "n_components or use more stimuli)"
            )
        correlations = scipy.linalg.svd(basis_x.T @ basis_y, compute_uv=False, check_finite=False)
    return SvccaScore(np.clip(correlations, 0.0, 1.0).mean(), rank_x=kx, rank_y=ky,
                      n_columns_x=k, n_columns_y=columns_y)


def centred_basis(side: DerivedStats, k: int | None) -> np.ndarray:
    """The orthonormal basis SVCCA compares for one side, cached on ``side``.

    Of the side's ``k`` TSVD components, or (``k`` None) of its columns themselves (the
    array is needed), each column centred; shape (n_stimuli, rank), the rank numerical
    (:func:`_centred_basis`, which warns when it is below the number of columns).
    """
    def compute():
        if k is None:
            z, what = side.require_array("svcca without reduction of Y").astype(np.float64), \
                f"{side.name} ({side.n_features} columns)"
        else:
            z, what = side.tsvd_components(k), f"the {k} TSVD components of {side.name}"
        return _centred_basis(z, what)

    return side.cached(("svcca_basis", k), compute)


def numerical_rank(diag_r: np.ndarray, shape: tuple[int, int]) -> int:
    """Rank from the ``|R_jj|`` of a column-pivoted QR of an ``shape`` matrix (see RANK_RTOL)."""
    diag = np.abs(np.asarray(diag_r))
    if diag.size == 0 or not diag[0] > 0:
        return 0
    tol = diag[0] * max(shape) * np.finfo(np.float64).eps * RANK_RTOL
    return int((diag > tol).sum())


def _centred_basis(z: np.ndarray, what: str) -> np.ndarray:
    """Orthonormal basis (n x r) of the column space of ``z`` after centring each column.

    ``r`` is the numerical rank (:func:`numerical_rank`), from a QR decomposition with column
    pivoting; when it is below the number of columns a :class:`RankDeficiencyWarning` says so.
    """
    centred = z - z.mean(axis=0, keepdims=True)
    q, r, _ = scipy.linalg.qr(centred, mode="economic", pivoting=True, check_finite=False)
    rank = numerical_rank(np.diag(r), centred.shape)
    if rank == 0:
        raise ValidationError(
            f"svcca: {what} are constant across stimuli (rank 0 after centring); CCA needs at "
            "least one column that varies"
        )
    if rank < z.shape[1]:
        warnings.warn(RankDeficiencyWarning(
            f"svcca: {what} have rank {rank} after centring, fewer than their {z.shape[1]} "
            f"columns (duplicate, constant or linearly dependent columns); reduced to its "
            f"{rank}-dimensional centred column space (tolerance {RANK_RTOL:g} * max(n, k) * eps "
            "* largest |R_jj| of a pivoted QR)"), stacklevel=4)
    return q[:, :rank]
