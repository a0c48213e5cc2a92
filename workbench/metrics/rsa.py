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


def check_rdm(matrix, name: str, min_stimuli: int = MIN_STIMULI) -> np.ndarray:
    """``matrix`` as a finite float array, checked to be a square RDM of at least ``min_stimuli`` stimuli."""
    matrix = check_array(matrix, name, min_rows=min_stimuli)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValidationError(
            f"{name} must be a square n_stimuli x n_stimuli RDM, found shape {matrix.shape}"
        )
    return matrix


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of a 1-D array, ties sharing their average rank.

    Equal to ``scipy.stats.rankdata(values, method="average")`` for finite values, and faster
    (about 1.5x at 5 million values): each value is mapped to an integer key by an affine map and rounding down (both
    monotone, so the keys are in the order of the values), and the key and the value's
    position are packed into one uint64 (key in the high bits), so that one direct sort of
    8-byte integers orders the values and carries their positions along (an ``argsort`` is
    an indirect, slower sort). With 2**41 keys for 5 million values, two values share a key
    only if they are equal or nearly so; those few runs are then ordered by their values
    exactly, and equal values get their average rank.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    ranks = np.empty(n, dtype=np.float64)
    if n == 0:
        return ranks
    position_bits = max(1, (n - 1).bit_length())
    # keys below 2**52 are exact in float64, so the rounding of the affine map moves the
    # largest key by less than the margin of 4 that keeps it below 2**key_bits
    key_bits = min(64 - position_bits, 52)
    low, high = values.min(), values.max()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scale = (2.0**key_bits - 4.0) / (high - low)
    packed = np.empty(n, dtype=np.uint64)
    if key_bits >= 8 and np.isfinite(scale) and scale > 0:
        keys = values - low
        keys *= scale
        np.copyto(packed, keys, casting="unsafe")  # truncation: the floor of keys >= 0
        del keys
        packed <<= np.uint64(position_bits)
    else:  # constant, non-finite or extreme values: one run, ordered exactly below
        packed[:] = 0
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64((1 << position_bits) - 1)).astype(np.intp)
    packed >>= np.uint64(position_bits)  # the keys, in order
    shared_key = packed[1:] == packed[:-1]
    del packed
    ranks[order] = np.arange(1.0, n + 1.0)
    if shared_key.any():
        _order_and_average_shared_keys(values, order, shared_key, ranks)
    return ranks


def _order_and_average_shared_keys(values, order, shared_key, ranks) -> None:
    """Within runs of equal keys (``shared_key[i]``: sorted items i and i + 1 share theirs),
    order the items by value and give equal values their average rank, in ``ranks``."""
    in_run = np.zeros(order.size, dtype=bool)
    in_run[1:] = shared_key
    in_run[:-1] |= shared_key
    where = np.flatnonzero(in_run)  # sorted positions of the items in a run
    run = np.cumsum(np.concatenate(([True], ~shared_key)))[where]
    members = order[where]
    member_values = values[members]
    by_value = np.lexsort((member_values, run))  # stable: equal values keep position order
    members, member_values = members[by_value], member_values[by_value]
    starts_group = np.ones(where.size, dtype=bool)  # a new group of equal values
    starts_group[1:] = (run[1:] != run[:-1]) | (member_values[1:] != member_values[:-1])
    first = np.flatnonzero(starts_group)
    counts = np.diff(np.append(first, where.size))
    ranks[members] = np.repeat(where[first] + (counts + 1) / 2.0, counts)


def centred_ranks(values: np.ndarray, name: str) -> np.ndarray:
    """Average ranks of ``values`` (1-D) minus their mean; a ValidationError naming ``name`` if all are equal."""
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


def spearman(a, b) -> float:
    """Spearman's rho of two paired samples, ties given their average ranks.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Paired values (e.g. the dissimilarities of the same stimulus pairs in two RDMs).

    Returns
    -------
    float
        The Pearson correlation of the two samples' average ranks, in [-1, 1]; NaN when
        either sample is constant (its ranks do not vary) or holds NaN or inf.

    Raises
    ------
    ValidationError
        ``a`` or ``b`` not 1-D, or of different lengths.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValidationError(f"spearman needs two 1-D samples of the same length; found shapes {a.shape} "
                              f"and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    if not (np.any(ra) and np.any(rb)):
        return float("nan")
    return _pearson_of_centred(ra, rb)


def spearman_upper(rdm_a: np.ndarray, rdm_b: np.ndarray, names=("rdm_a", "rdm_b")) -> float:
    """Spearman correlation of the upper triangles of two validated square RDMs.

    The two rankings (sorts of n(n-1)/2 values, the costliest step for large n) run in two
    threads.
    """
    ra, rb = _in_two_threads(
        lambda: centred_ranks(upper_triangle(rdm_a), names[0]), lambda: centred_ranks(upper_triangle(rdm_b), names[1])
    )
    return _pearson_of_centred(ra, rb)


def _compute_rdm_ranks(side: DerivedStats) -> np.ndarray:
    return centred_ranks(side.upper_row_correlations(), f"rdm({side.name})")


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
    rdm_a = check_rdm(rdm_a, "rdm_a")
    rdm_b = check_rdm(rdm_b, "rdm_b")
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
