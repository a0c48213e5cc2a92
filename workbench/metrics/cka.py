"""Centred kernel alignment (Kornblith et al. 2019), linear or RBF, optionally debiased."""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError
from workbench.metrics.derived import DerivedStats, double_centre, prepare_pair
from workbench.validation import check_choice

KERNELS = ("linear", "rbf")


def cka(X, Y, kernel: str = "linear", *, debiased: bool = False) -> float:
    """Centred kernel alignment between model features and neural responses.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Model features.
    Y : array-like or torch.Tensor of shape (n_stimuli, n_neuroids), or GramStats
        Neural responses to the same stimuli, in the same order.
    kernel : {"linear", "rbf"}, default: "linear"
        ``"linear"``: ``K = X X^T``. ``"rbf"``: ``K_ij = exp(-D_ij / (2 sigma^2))`` with
        ``D_ij`` the squared Euclidean distance between stimuli ``i`` and ``j`` and
        ``sigma^2`` the median of the non-zero off-diagonal ``D_ij``, chosen for each side
        separately.
    debiased : bool, default: False
        Use the unbiased HSIC estimator of Song et al. (2012) instead of the biased one
        (needs at least 4 stimuli).

    Returns
    -------
    float
        ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``; higher is more similar, 1 for
        identical inputs. Linear CKA is invariant to orthogonal transforms and isotropic
        scaling of either side.

    Raises
    ------
    ValidationError
        Bad shapes or values, a kernel with no variation across stimuli, or (debiased) a
        non-positive self-similarity estimate.
    """
    return cka_from_stats(*prepare_pair(X, Y), kernel=kernel, debiased=debiased)


def cka_from_stats(x: DerivedStats, y: DerivedStats, kernel: str = "linear", debiased: bool = False) -> float:
    """:func:`cka` on prepared statistics (used by :func:`workbench.metrics.compare`)."""
    check_choice(kernel, "kernel", KERNELS)
    if debiased and x.n_stimuli < 4:
        raise ValidationError(
            f"debiased CKA needs at least 4 stimuli, found {x.n_stimuli}; use debiased=False"
        )
    kx, hsic_kk = pairing_kernel(x, kernel, debiased)
    lc, hsic_ll = centred_kernel(y, kernel, debiased)
    for side, value in ((x, hsic_kk), (y, hsic_ll)):
        if not value > _rounding_floor(side, kernel):
            raise ValidationError(
                f"{side.name}: the {'debiased ' if debiased else ''}HSIC of its {kernel} kernel "
                f"with itself is {value:.3g}, zero up to rounding; a positive value is expected "
                "(the responses do not vary across stimuli)"
            )
    return float(_frobenius_dot(kx, lc) / np.sqrt(hsic_kk * hsic_ll))


# Relative size of the centred linear kernel below which it is rounding noise of the Gram.
_CENTRED_RTOL = {"float32": 1e-5, "float64": 1e-11}
# pairing_kernel pairs the uncentred Gram while its centred part holds at least this fraction
# of its squared norm, so that the norm's cancellation costs at most ~1e-10 relative.
_UNCENTRED_PAIRING_MIN = 1e-6


def _rounding_floor(side: DerivedStats, kernel: str) -> float:
    """Squared Frobenius norm below which a centred kernel is rounding noise (linear kernel)."""
    if kernel != "linear":
        return 0.0  # the RBF kernel is in [0, 1]; identical stimuli are caught by rbf_kernel
    return _CENTRED_RTOL[side.stats.dtype] ** 2 * _gram_moments(side)[0]


def _frobenius_dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()))


def _gram_moments(side: DerivedStats) -> tuple[float, float]:
    """``(||G||_F^2, ||H G H||_F^2)`` of the Gram matrix, from one pass over it (cached).

    ``||HGH||^2 = ||G||^2 - (2/n) ||G 1||^2 + (1^T G 1)^2 / n^2`` for a symmetric ``G``.
    """

    def compute():
        gram = side.gram
        squared = _frobenius_dot(gram, gram)
        row_sums = gram.sum(axis=1)
        n = side.n_stimuli
        return squared, squared - 2.0 / n * float(row_sums @ row_sums) + float(row_sums.sum()) ** 2 / n**2

    return side.cached("gram_moments", compute)


def centred_kernel(side: DerivedStats, kernel: str = "linear", debiased: bool = False) -> tuple[np.ndarray, float]:
    """The centred kernel of one side (n x n) and its squared Frobenius norm, cached on ``side``.

    Double-centred (``H K H``), or for ``debiased`` the centring of :func:`unbiased_centre`;
    the squared norm is the side's (scaled) HSIC with itself.
    """

    def compute():
        if kernel == "linear":
            gram = side.centred_gram() if not debiased else unbiased_centre(side.gram)
        else:
            gram = rbf_kernel(side)
            gram = unbiased_centre(gram) if debiased else double_centre(gram)
        return gram, _frobenius_dot(gram, gram)

    return side.cached(("cka_kernel", kernel, debiased), compute)


def pairing_kernel(side: DerivedStats, kernel: str = "linear", debiased: bool = False) -> tuple[np.ndarray, float]:
    """A matrix ``M`` whose Frobenius product with the other side's :func:`centred_kernel` is the
    HSIC, and the squared norm of this side's centred kernel; cached on ``side``.

    For the biased linear kernel ``M`` is the Gram matrix itself: ``<G, H L H> = <H G H, H L H>``
    because ``H`` is a projection, so the layer's kernel needs no centring (a pass over n x n
    values less), and its centred norm comes from :func:`_gram_moments`. Where the Gram's
    centred part is too small a fraction of it for that norm to be accurate (features with a
    large common offset), and for the other kernels, ``M`` is :func:`centred_kernel`.
    """
    if kernel == "linear" and not debiased:
        squared, centred_squared = _gram_moments(side)
        if centred_squared > _UNCENTRED_PAIRING_MIN * squared:
            return side.gram, centred_squared
    return centred_kernel(side, kernel, debiased)


def rbf_kernel(side: DerivedStats) -> np.ndarray:
    """RBF kernel with sigma^2 = median of the non-zero squared distances; shape (n, n)."""
    dist = side.squared_distances()
    off_diagonal = dist[~np.eye(dist.shape[0], dtype=bool)]
    nonzero = off_diagonal[off_diagonal > 0]
    if nonzero.size == 0:
        raise ValidationError(
            f"{side.name}: all {side.n_stimuli} stimuli have identical responses; the RBF "
            "bandwidth (median non-zero squared distance) is undefined"
        )
    sigma2 = float(np.median(nonzero))
    return np.exp(dist / (-2.0 * sigma2))


def unbiased_centre(kernel: np.ndarray) -> np.ndarray:
    """Centre a kernel matrix so that Frobenius products give the unbiased HSIC.

    With ``K~`` the kernel with its diagonal set to 0, the returned ``M`` satisfies
    ``<M_K, M_L> = n (n - 3) HSIC_u(K, L)`` (Song et al. 2012), the scale cancelling in CKA.
    """
    n = kernel.shape[0]
    out = kernel.copy()
    np.fill_diagonal(out, 0.0)
    means = out.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    out -= means[:, None]
    out -= means[None, :]
    np.fill_diagonal(out, 0.0)
    return out
