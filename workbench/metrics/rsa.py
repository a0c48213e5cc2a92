"""Representational similarity analysis: correlation-distance RDMs compared by Spearman's rho.

Definitions follow Kriegeskorte et al. (2008) as used by the reference study
(arXiv 2303.06060): the dissimilarity of two stimuli is ``1 - Pearson r`` between their
response patterns, and two RDMs are compared by the Spearman correlation of their upper
triangles (diagonal excluded; ties get average ranks).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from workbench.errors import ValidationError
from workbench.metrics.derived import MIN_STIMULI, DerivedStats, as_derived, prepare_pair
from workbench.validation import check_array


def rdm(X) -> np.ndarray:
    """Correlation-distance representational dissimilarity matrix.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Responses, one row per stimulus (at least 3 stimuli).

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
        ``1 - r_ij``, where ``r_ij`` is the Pearson correlation between rows ``i`` and ``j``;
        symmetric, zero diagonal, values in [0, 2].

    Raises
    ------
    ValidationError
        Not 2-D, fewer than 3 rows, NaN or inf, or a row with zero variance (named).
    """
    dissim = as_derived(X, "X").row_correlations()
    np.subtract(1.0, dissim, out=dissim)
    np.fill_diagonal(dissim, 0.0)
    return dissim


@functools.lru_cache(maxsize=2)
def _upper_mask(n: int) -> np.ndarray:
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)
    mask.setflags(write=False)
    return mask


def upper_triangle(matrix: np.ndarray) -> np.ndarray:
    """The entries above the diagonal of a square matrix, row by row; shape (n(n-1)/2,)."""
    return matrix[_upper_mask(matrix.shape[0])]


def _check_rdm(matrix, name: str) -> np.ndarray:
    matrix = check_array(matrix, name, min_rows=MIN_STIMULI)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValidationError(
            f"{name} must be a square n_stimuli x n_stimuli RDM, found shape {matrix.shape}"
        )
    return matrix


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of a 1-D array, ties sharing their average rank.

    Equal to ``scipy.stats.rankdata(values, method="average")``, about twice as fast: the
    values and their positions are sorted together as complex numbers (numpy sorts those
    lexicographically, by value and then by position), a direct sort of 16-byte items that is
    faster than the indirect ``argsort`` and leaves the sorted values in place for the tie
    check (an ``argsort`` needs a second, random-access pass to read them).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    pairs = np.empty(values.size, dtype=np.complex128)
    pairs.real = values
    pairs.imag = np.arange(values.size, dtype=np.float64)  # exact below 2**53 positions
    pairs.sort()
    ordered = pairs.real
    first_of_run = np.empty(values.size, dtype=bool)
    first_of_run[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first_of_run[1:])
    order = pairs.imag.astype(np.intp)
    del pairs, ordered
    ranks = np.empty(values.size, dtype=np.float64)
    if first_of_run.all():  # no ties, the usual case for correlations: ranks are positions
        ranks[order] = np.arange(1.0, values.size + 1.0)
        return ranks
    starts = np.flatnonzero(first_of_run)
    del first_of_run
    counts = np.diff(np.append(starts, values.size))
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def _ranks(values: np.ndarray, name: str) -> np.ndarray:
    ranks = average_ranks(values)
    ranks -= ranks.mean()
    if not np.any(ranks):
        raise ValidationError(
            f"{name}: all {values.size} dissimilarities above the diagonal are equal; their "
            "Spearman correlation with anything is undefined. Expected varying dissimilarities"
        )
    return ranks


def _in_two_threads(first, second):
    """Run two callables concurrently; return both results (numpy releases the GIL to sort)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = pool.submit(second)
        return first(), pending.result()


def _pearson_of_centred(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def spearman_upper(rdm_a: np.ndarray, rdm_b: np.ndarray, names=("rdm_a", "rdm_b")) -> float:
    """Spearman correlation of the upper triangles of two validated square RDMs.

    The two rankings (sorts of n(n-1)/2 values, the costliest step for large n) run in two
    threads.
    """
    ra, rb = _in_two_threads(
        lambda: _ranks(upper_triangle(rdm_a), names[0]), lambda: _ranks(upper_triangle(rdm_b), names[1])
    )
    return _pearson_of_centred(ra, rb)


def _compute_rdm_ranks(side: DerivedStats) -> np.ndarray:
    return _ranks(upper_triangle(side.row_correlations()), f"rdm({side.name})")


def centred_rdm_ranks(side: DerivedStats) -> np.ndarray:
    """Centred average ranks of the between-stimulus correlations above the diagonal, cached.

    Spearman's rho is unchanged when both sides go through the same decreasing map, so the
    correlations are ranked instead of the dissimilarities ``1 - r``. Cached on ``side``,
    so responses reused across layers are ranked once; waits for :func:`start_rdm_ranks`.
    Shape ``(n (n - 1) / 2,)``, float64, summing to 0.
    """
    return side.cached("rdm_ranks", functools.partial(_compute_rdm_ranks, side))


def start_rdm_ranks(*sides: DerivedStats) -> None:
    """Begin :func:`centred_rdm_ranks` of each side in a background thread (if not known yet).

    The ranking (a sort of n(n-1)/2 values, the costliest step of RSA for large n) then
    overlaps with other work, e.g. the eigenpairs that SVCCA and TSVD-regression need.
    An error (a zero-variance stimulus) is raised by :func:`centred_rdm_ranks` later.
    """
    for side in sides:
        side.start("rdm_ranks", functools.partial(_compute_rdm_ranks, side))


def compare_rdms(rdm_a, rdm_b) -> float:
    """Spearman correlation between the upper triangles of two RDMs.

    Parameters
    ----------
    rdm_a, rdm_b : array-like or torch.Tensor of shape (n_stimuli, n_stimuli)
        Dissimilarity matrices over the same stimuli, in the same order (n_stimuli >= 3).
        Only the entries above the diagonal are read.

    Returns
    -------
    float
        Spearman's rho in [-1, 1] (ties get average ranks); higher is more similar.

    Raises
    ------
    ValidationError
        Not square, different sizes, fewer than 3 stimuli, NaN or inf, or an RDM whose
        upper triangle is constant.
    """
    rdm_a = _check_rdm(rdm_a, "rdm_a")
    rdm_b = _check_rdm(rdm_b, "rdm_b")
    if rdm_a.shape != rdm_b.shape:
        raise ValidationError(
            f"rdm_a and rdm_b must describe the same stimuli: found shapes {rdm_a.shape} and "
            f"{rdm_b.shape}"
        )
    return spearman_upper(rdm_a, rdm_b)


def rsa(X, Y) -> float:
    """Representational similarity: Spearman correlation of the two correlation-distance RDMs.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Model features.
    Y : array-like or torch.Tensor of shape (n_stimuli, n_neuroids), or GramStats
        Neural responses to the same stimuli, in the same order.

    Returns
    -------
    float
        ``compare_rdms(rdm(X), rdm(Y))``; higher is more similar, 1 for identical inputs.

    See Also
    --------
    rdm, compare_rdms
    """
    return rsa_from_stats(*prepare_pair(X, Y))


def rsa_from_stats(x: DerivedStats, y: DerivedStats) -> float:
    """:func:`rsa` on prepared statistics (used by :func:`workbench.metrics.compare`)."""
    start_rdm_ranks(x, y)  # both sides in parallel, unless known or already started
    return _pearson_of_centred(centred_rdm_ranks(x), centred_rdm_ranks(y))
