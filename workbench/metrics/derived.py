"""Quantities derived from one side's Gram statistics, each computed at most once.

Every metric of :mod:`workbench.metrics` works on the stimulus-by-stimulus Gram matrix
``G = X @ X.T`` of a features matrix ``X`` (n_stimuli x n_features) and its row sums ``r``:

- the row-centred Gram ``C = G - r r^T / d`` gives the correlation-distance RDM;
- the double-centred Gram ``H G H`` (``H = I - 11^T/n``) gives linear CKA;
- the squared distances ``G_ii + G_jj - 2 G_ij`` give the RBF kernel;
- the top eigenpairs of ``G`` give the exact truncated SVD ``X V_k = U_k S_k``.

:class:`DerivedStats` wraps one :class:`~workbench.metrics.stats.GramStats` and caches these,
so :func:`workbench.metrics.compare` pays for each of them once.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import scipy.linalg

from workbench.errors import ValidationError
from workbench.metrics.blas import single_threaded_blas, submit_background
from workbench.metrics.eigen import top_eigenpairs
from workbench.metrics.stats import GramStats
from workbench.validation import check_array

#: Fewest stimuli for which any of the metrics is defined.
MIN_STIMULI = 3
#: Features per float32 product before it is added to the float64 Gram matrix (arrays given
#: whole; a streamed layer is accumulated per chunk anyway).
FLOAT32_CHUNK = 65536

# A row's variance counts as zero when it is below this fraction of its mean square: below
# that, the variance computed from the Gram statistics is dominated by rounding.
_ZERO_VARIANCE_RTOL = {"float32": 1e-6, "float64": 1e-12}


_MISSING = object()


def _check_gram_stats(stats: GramStats, name: str) -> None:
    stats.check_complete(name)
    if not (np.isfinite(stats.gram).all() and np.isfinite(stats.row_sums).all()):
        raise ValidationError(
            f"{name}: its GramStats hold NaN or inf (a chunk held NaN or inf, or X @ X.T "
            "overflowed); finite statistics expected"
        )


class DerivedStats:
    """Cached derived quantities of the Gram statistics of one features matrix.

    Parameters
    ----------
    stats : GramStats
        Statistics of ``X`` (n_stimuli x n_features).
    name : str, default: "X"
        The argument's name, used in error messages.
    array : ndarray of shape (n_stimuli, n_features), optional
        ``X`` itself, already validated (finite, the statistics computed from it); needed by
        the metrics that read the columns (the targets of :func:`tsvd_regression`).

    Notes
    -----
    Build instances with :meth:`from_input`, which also accepts arrays and torch tensors.
    """

    def __init__(self, stats: GramStats, name: str = "X", array: np.ndarray | None = None):
        if array is None:  # statistics from elsewhere: check them (from an array they are)
            _check_gram_stats(stats, name)
        if stats.n_stimuli < MIN_STIMULI:
            raise ValidationError(
                f"{name} has {stats.n_stimuli} stimuli; at least {MIN_STIMULI} required"
            )
        self.stats = stats
        self.name = name
        self.array = array
        self._cache: dict = {}

    @classmethod
    def from_input(cls, x, name: str = "X") -> "DerivedStats":
        """Wrap ``x``: a 2-D array or tensor (n_stimuli x n_features), a GramStats or a DerivedStats."""
        if isinstance(x, DerivedStats):
            return x
        if isinstance(x, GramStats):
            return cls(x, name)
        arr = check_array(x, name, min_rows=MIN_STIMULI, finite=False)
        # GramStats checks finiteness from the product, without a pass of np.isfinite; float32
        # products are accumulated in float64 every FLOAT32_CHUNK features
        chunk = FLOAT32_CHUNK if arr.dtype == np.float32 else None
        return cls(GramStats.from_array(arr, chunk_features=chunk, name=name), name, array=arr)

    def require_array(self, metric: str) -> np.ndarray:
        """The features matrix itself; raises if only its GramStats were given."""
        if self.array is None:
            raise ValidationError(
                f"{metric} needs {self.name} as an array (stimuli x columns), found GramStats; "
                "pass the responses themselves"
            )
        return self.array

    # -- basic statistics -----------------------------------------------------------------
    @property
    def n_stimuli(self) -> int:
        return self.stats.n_stimuli

    @property
    def n_features(self) -> int:
        return self.stats.n_features

    @property
    def gram(self) -> np.ndarray:
        """``X @ X.T``, float64, shape (n_stimuli, n_stimuli)."""
        return self.stats.gram

    def cached(self, key, compute):
        """Return ``compute()``, computed on the first call for ``key`` only.

        If :meth:`start` began computing ``key`` in the background, waits for that result;
        if the background computation raised, ``compute()`` runs here (and raises here).
        """
        value = self._cache.get(key, _MISSING)
        if isinstance(value, Future):
            try:
                value = value.result()
            except Exception:  # noqa: BLE001 - recomputed below, so the error is raised here
                value = _MISSING
                self._cache.pop(key, None)
            else:
                self._cache[key] = value
        if value is _MISSING:
            value = self._cache[key] = compute()
        return value

    def start(self, key, compute) -> None:
        """Begin computing the value of ``key`` in a background thread, unless it is known.

        :meth:`cached` for ``key`` then waits for it. For work that releases the GIL (numpy
        sorts, element-wise passes over n x n arrays), so that it overlaps with the linear
        algebra of the calling thread; ``compute`` must not call :meth:`cached` for ``key``.
        """
        if key not in self._cache:
            self._cache[key] = submit_background(compute)

    # -- RSA ------------------------------------------------------------------------------
    def row_centred_gram(self) -> np.ndarray:
        """``Xc @ Xc.T`` with each row of ``X`` centred on its own mean; shape (n, n), not cached."""
        r = self.stats.row_sums / np.sqrt(self.n_features)
        centred = self.gram.copy()
        _scale_rows_by_outer(centred, r, np.subtract)
        return centred

    def row_correlations(self) -> np.ndarray:
        """Pearson correlations between the rows (stimuli) of ``X``; shape (n, n), float64.

        Not cached (n x n); :func:`workbench.metrics.rsa.centred_rdm_ranks` caches what RSA needs.

        Raises
        ------
        ValidationError
            A row with zero variance, whose correlation is undefined; the message names it.
        """
        corr = self.row_centred_gram()
        scale = 1.0 / np.sqrt(self._checked_variances(np.diag(corr).copy()))
        _scale_rows_by_outer(corr, scale, np.multiply)
        np.fill_diagonal(corr, 1.0)
        return corr

    def upper_row_correlations(self, block: int = 256) -> np.ndarray:
        """The entries of :meth:`row_correlations` above the diagonal, row by row.

        Shape ``(n (n - 1) / 2,)``; equal to ``rsa.upper_triangle(self.row_correlations())``
        bit for bit (the same operations in the same order), computed a block of rows at a
        time without the n x n intermediates. Raises as :meth:`row_correlations` does.
        """
        n, gram = self.n_stimuli, self.gram
        r = self.stats.row_sums / np.sqrt(self.n_features)
        scale = 1.0 / np.sqrt(self._checked_variances(np.diag(gram) - r * r))
        out = np.empty(n * (n - 1) // 2)
        filled = 0
        for start in range(0, n, block):
            rows = slice(start, start + block)
            values = gram[rows] - np.outer(r[rows], r)
            values *= np.outer(scale[rows], scale)
            for i, row in enumerate(values, start + 1):  # row start + k keeps columns > its index
                out[filled:filled + n - i] = row[i:]
                filled += n - i
        return out

    def _checked_variances(self, variances: np.ndarray) -> np.ndarray:
        """The rows' variances times n_features; raises if a row has (numerically) none."""
        flat = self._flat_rows(variances)
        if self.n_features < 2 or flat.any():
            bad = np.flatnonzero(flat)
            raise ValidationError(
                f"{self.name}: stimulus (row) {int(bad[0]) if bad.size else 0} has zero "
                f"variance across its {self.n_features} feature(s) ({bad.size or self.n_stimuli}"
                " such row(s)); its correlation with other stimuli is undefined. Expected "
                "every row to vary across at least 2 features"
            )
        return variances

    def _flat_rows(self, row_variances: np.ndarray) -> np.ndarray:
        rtol = _ZERO_VARIANCE_RTOL[self.stats.dtype]
        return row_variances <= rtol * np.diag(self.gram)

    def zero_variance_rows(self) -> np.ndarray:
        """Positions of the stimuli (rows) whose pattern has zero variance across features.

        The rows that :meth:`row_correlations` (and so RSA) rejects, by the same tolerance;
        every row when ``X`` has fewer than 2 features. Returns an int array, ascending.
        """
        if self.n_features < 2:
            return np.arange(self.n_stimuli)
        r = self.stats.row_sums
        variances = np.diag(self.gram) - r * r / self.n_features
        return np.flatnonzero(self._flat_rows(variances))

    # -- CKA ------------------------------------------------------------------------------
    def centred_gram(self) -> np.ndarray:
        """``H G H`` with ``H = I - 11^T/n``: the Gram of column-centred ``X``; shape (n, n)."""
        return self.cached("centred_gram", lambda: double_centre(self.gram))

    def squared_distances(self) -> np.ndarray:
        """Squared Euclidean distances between rows, ``G_ii + G_jj - 2 G_ij``, clipped at 0."""

        def compute():
            sq = np.diag(self.gram)
            dist = self.gram * -2.0
            dist += sq[:, None]
            dist += sq[None, :]
            np.maximum(dist, 0.0, out=dist)
            np.fill_diagonal(dist, 0.0)
            return dist

        return self.cached("squared_distances", compute)

    # -- truncated SVD --------------------------------------------------------------------
    def check_n_components(self, n_components: int, argname: str = "n_components") -> int:
        """Validate a number of TSVD components for this matrix; return it as int."""
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
            raise ValidationError(
                f"{argname} must be an integer, found {n_components!r} ({type(n_components).__name__})"
            )
        k = int(n_components)
        limit = min(self.n_stimuli - 1, self.n_features)
        if not 1 <= k <= limit:
            raise ValidationError(
                f"{argname}={k} is out of range for {self.name} with {self.n_stimuli} stimuli "
                f"and {self.n_features} features; expected 1 <= {argname} <= "
                f"min(n_stimuli - 1, n_features) = {limit}"
            )
        return k

    def top_eigen(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` largest eigenvalues of ``G`` (descending) and their eigenvectors (n x k).

        From the thin SVD of ``X`` when ``X`` is at hand and has no more columns than rows
        (e.g. neural responses), else from ``G`` (:func:`~workbench.metrics.eigen.top_eigenpairs`).
        """
        cached = self._cache.get("eigen")
        if cached is None or cached[0].shape[0] < k:
            if self.array is not None and self.n_features <= self.n_stimuli:
                with single_threaded_blas():
                    u, s, _ = scipy.linalg.svd(
                        self.array.astype(np.float64), full_matrices=False, check_finite=False
                    )
                cached = (s**2, u)
            else:
                cached = top_eigenpairs(self.gram, k)
            self._cache["eigen"] = cached
        return cached[0][:k], cached[1][:, :k]

    def tsvd_components(self, k: int) -> np.ndarray:
        """The exact truncated SVD of ``X`` to ``k`` dimensions, ``U_k S_k``; shape (n, k).

        Equal to ``TruncatedSVD(k).fit_transform(X)`` (uncentred) up to the sign of each
        column. Raises if ``X`` has fewer than ``k`` non-zero singular values.
        """
        vals, vecs = self.top_eigen(k)
        tol = vals[0] * self.n_stimuli * np.finfo(np.float64).eps * 10 if vals[0] > 0 else 0.0
        if not vals[0] > 0 or vals[-1] <= tol:
            rank = int((vals > tol).sum()) if vals[0] > 0 else 0
            raise ValidationError(
                f"{self.name} has rank {rank} (numerically), fewer than the {k} TSVD components "
                f"requested; lower n_components to at most {max(rank, 1)}"
            )
        return vecs * np.sqrt(vals)[None, :]


def _scale_rows_by_outer(matrix: np.ndarray, v: np.ndarray, ufunc, block: int = 256) -> None:
    """In place, ``matrix = ufunc(matrix, outer(v, v))``, one block of rows at a time.

    Needs no n x n temporary, and ``v_i v_j == v_j v_i`` exactly, so a symmetric matrix stays
    exactly symmetric.
    """
    for start in range(0, matrix.shape[0], block):
        rows = slice(start, start + block)
        ufunc(matrix[rows], np.outer(v[rows], v), out=matrix[rows])


def double_centre(gram: np.ndarray) -> np.ndarray:
    """Return ``H K H`` with ``H = I - 11^T/n`` for a symmetric ``K`` (n x n), as a new array."""
    col_means = gram.mean(axis=0)
    out = gram - col_means[None, :]
    out -= col_means[:, None]
    out += col_means.mean()
    return out


def as_derived(x, name: str) -> DerivedStats:
    """Shorthand for :meth:`DerivedStats.from_input`."""
    return DerivedStats.from_input(x, name)


def prepare_pair(X, Y) -> tuple[DerivedStats, DerivedStats]:
    """Wrap model features ``X`` and responses ``Y``; raise unless their rows (stimuli) match."""
    x, y = as_derived(X, "X"), as_derived(Y, "Y")
    if x.n_stimuli != y.n_stimuli:
        raise ValidationError(
            "X and Y must have one row per stimulus, in the same order: found "
            f"{x.n_stimuli} stimuli in X ({x.n_features} features) and {y.n_stimuli} in Y "
            f"({y.n_features} columns)"
        )
    return x, y
