"""The top eigenpairs of a stimulus-by-stimulus Gram matrix, exactly and fast.

A dense ``eigh`` of an n x n matrix costs a memory-bound tridiagonal reduction (at n = 3,200
about as long as the Gram product itself). The truncated SVD needs only the ``k`` largest
eigenpairs, which a block Krylov method (block Lanczos with full reorthogonalisation and
Rayleigh-Ritz extraction) finds with a few matrix-matrix products. It stops when every wanted
Ritz pair has a residual ``||G v - theta v|| <= rtol * lambda_1``, the backward error of a
dense eigensolver, and falls back to ``scipy.linalg.eigh`` if that does not happen within its
budget (e.g. for a flat spectrum), so the result is exact either way.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import scipy.linalg

from workbench.metrics.blas import large_product_threads, single_threaded_blas
from workbench.validation import check_choice

logger = logging.getLogger(__name__)

#: Below this size a dense eigendecomposition is cheap; the Krylov method is not tried.
KRYLOV_MIN_SIZE = 768
#: Residual tolerance relative to the largest eigenvalue.
RESIDUAL_RTOL = 1e-12
_METHODS = ("auto", "krylov", "eigh")


def top_eigenpairs(
    gram: np.ndarray, k: int, *, method: str = "auto", max_basis: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) of a symmetric PSD matrix and their eigenvectors.

    Parameters
    ----------
    gram : ndarray of shape (n, n), float64
        Symmetric positive semi-definite matrix (a Gram matrix).
    k : int
        Number of eigenpairs, ``1 <= k <= n``.
    method : {"auto", "krylov", "eigh"}, default: "auto"
        ``"eigh"``: dense ``scipy.linalg.eigh`` restricted to the top ``k``. ``"krylov"``:
        block Krylov with residual control, falling back to ``"eigh"``. ``"auto"``:
        ``"krylov"`` for ``n >= 768`` and ``k <= n / 8``, else ``"eigh"``.
    max_basis : int, optional
        Largest Krylov basis before falling back; default ``min(n // 2, 12 * block)``.
    seed : int, default: 0
        Seed of the Krylov start block (results do not depend on it beyond rounding).

    Returns
    -------
    eigenvalues : ndarray of shape (k,)
    eigenvectors : ndarray of shape (n, k)
        Orthonormal columns, in the order of ``eigenvalues``; signs are arbitrary.
    """
    check_choice(method, "method", _METHODS)
    n = gram.shape[0]
    if method == "auto":
        method = "krylov" if n >= KRYLOV_MIN_SIZE and 8 * k <= n else "eigh"
    if method == "krylov":
        found = _block_krylov(gram, k, max_basis=max_basis, seed=seed)
        if found is not None:
            return found
        logger.info("block Krylov did not converge for the top %d of %d eigenpairs; using eigh", k, n)
    # small problems run faster on one thread than on contending ones
    threads = single_threaded_blas() if n < KRYLOV_MIN_SIZE else contextlib.nullcontext()
    with threads:
        vals, vecs = scipy.linalg.eigh(gram, subset_by_index=(n - k, n - 1), driver="evr", check_finite=False)
    return vals[::-1].copy(), np.ascontiguousarray(vecs[:, ::-1])


def _orthonormalise_against(block: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning ``block`` minus its projection on ``basis`` (orthonormal)."""
    for _ in range(2):  # classical Gram-Schmidt twice is numerically orthogonal
        if basis.shape[1]:
            block = block - basis @ (basis.T @ block)
        block = scipy.linalg.qr(block, mode="economic", check_finite=False)[0]
    return block


def _steps_to_converge(history: list[tuple[int, float]], tol: float) -> int:
    """Krylov steps until the next Rayleigh-Ritz check, from the residuals seen so far.

    ``history`` holds ``(step, worst relative residual)`` of the checks done. Far from
    convergence (above :data:`_PREDICT_BELOW`) or with fewer than two checks, check at the
    next step (those checks are on small bases and cheap). Closer, the residuals fall
    geometrically (faster as the basis grows): the rate between the last two checks gives
    the steps needed, and the check is made one step before that estimate, so that it is
    rarely made later than needed. The Rayleigh-Ritz step on the largest bases costs as
    much as the Krylov products, so skipping the checks that cannot succeed saves time;
    the result does not depend on it (every return is checked).
    """
    if len(history) < 2 or history[-1][1] > _PREDICT_BELOW:
        return 1
    (step0, res0), (step1, res1) = history[-2], history[-1]
    if not 0 < res1 < res0:
        return 1
    rate = (res1 / res0) ** (1.0 / (step1 - step0))
    needed = int(np.ceil(np.log(tol / res1) / np.log(rate)))
    return max(1, needed - 1)


#: Relative residual below which the next convergence check is predicted from the rate.
_PREDICT_BELOW = 1e-4


def _block_krylov(gram: np.ndarray, k: int, *, max_basis: int | None, seed: int):
    n = gram.shape[0]
    block_size = min(k + max(16, k // 2), n)
    if max_basis is None:
        max_basis = min(n // 2, 12 * block_size)
    if max_basis < 2 * block_size:
        return None
    basis = np.empty((n, max_basis))
    products = np.empty((n, max_basis))  # gram @ basis
    projected = np.empty((max_basis, max_basis))  # basis.T @ gram @ basis
    start = np.random.default_rng(seed).standard_normal((n, block_size))
    with large_product_threads():
        block = gram @ start
    used = step = 0
    history: list[tuple[int, float]] = []  # (step, worst relative residual) of each check
    check_at = 1
    while used + block_size <= max_basis:
        new = slice(used, used + block_size)
        with single_threaded_blas():
            block = _orthonormalise_against(block, basis[:, :used])
        basis[:, new] = block
        with large_product_threads():  # the one large product per step, on every free thread
            products[:, new] = gram @ block
        used += block_size
        step += 1
        with single_threaded_blas():
            column = basis[:, :used].T @ products[:, new]
            projected[:used, new] = column
            projected[new, :used] = column.T
        block = products[:, new]
        last = used + block_size > max_basis
        if step < check_at and not last:
            continue
        with single_threaded_blas():
            b, gb = basis[:, :used], products[:, :used]
            small = (projected[:used, :used] + projected[:used, :used].T) / 2.0
            theta, s = scipy.linalg.eigh(small, subset_by_index=(used - k, used - 1), check_finite=False)
            # reversed into a contiguous array: a negative stride would keep the products below
            # out of BLAS (numpy's own loop, 10x slower)
            theta, s = theta[::-1].copy(), np.ascontiguousarray(s[:, ::-1])
            vectors = b @ s
            residual = gb @ s - vectors * theta
            worst = float(np.sqrt(np.einsum("ij,ij->j", residual, residual)).max())
        if theta[0] <= 0 or worst <= RESIDUAL_RTOL * theta[0]:
            logger.debug("block Krylov: top %d of %d in a basis of %d (%d checks)", k, n, used, len(history) + 1)
            return theta.copy(), vectors
        history.append((step, worst / theta[0]))
        check_at = step + _steps_to_converge(history, RESIDUAL_RTOL)
    return None
