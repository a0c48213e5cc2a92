"""Leave-one-stimulus-out ridge regression from TSVD components, in closed form."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from workbench.errors import ValidationError
from workbench.metrics.blas import single_threaded_blas
from workbench.metrics.derived import DerivedStats, prepare_pair


def tsvd_regression(X, Y, n_components: int = 40, alpha: float = 1.0) -> float:
    """Neural predictivity of the truncated SVD of ``X``, leave-one-stimulus-out.

    The exact uncentred truncated SVD of ``X`` to ``n_components`` dimensions is fitted once on
    all stimuli (it is unsupervised: ``Y`` is never seen). Each column of ``Y`` is then predicted
    from these components by ridge regression with penalty ``alpha`` and an unpenalised
    intercept (scikit-learn's ``Ridge(alpha, fit_intercept=True)``), fitted on all stimuli
    but one and evaluated on the held-out one, for every stimulus. The held-out predictions
    come from the closed form ``y_i - e_i / (1 - H_ii)`` with ``H`` the ridge hat matrix and
    ``e`` the in-sample residuals, which is exact, not an approximation.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_stimuli, n_features), or GramStats
        Model features.
    Y : array-like or torch.Tensor of shape (n_stimuli, n_neuroids)
        Neural responses to the same stimuli, in the same order.
    n_components : int, default: 40
        Number of TSVD components, ``1 <= n_components <= min(n_stimuli - 1, n_features)``.
    alpha : float, default: 1.0
        Ridge penalty, ``>= 0``, in the units of the squared TSVD components.

    Returns
    -------
    float
        Mean over the columns of ``Y`` of the Pearson r between held-out predictions and
        data; higher is better.

    Raises
    ------
    ValidationError
        Bad shapes or values, ``n_components`` or ``alpha`` out of range, a column of ``Y``
        (named) or of the held-out predictions with zero variance, or a stimulus whose
        leave-one-out fit is undefined (leverage 1).
    """
    return tsvd_regression_from_stats(*prepare_pair(X, Y), n_components=n_components, alpha=alpha)


def _check_alpha(alpha) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = np.nan
    if isinstance(alpha, bool) or not np.isfinite(value) or value < 0:
        raise ValidationError(f"alpha must be a finite number >= 0, found {alpha!r}")
    return value


def loo_ridge_operator(z: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of leave-one-out ridge regression with an unpenalised intercept.

    Parameters
    ----------
    z : ndarray of shape (n_stimuli, n_predictors)
        Predictors.
    alpha : float
        Penalty on the predictors' coefficients (not on the intercept).

    Returns
    -------
    design : ndarray of shape (n_stimuli, n_predictors + 1)
        ``[1, z]``.
    solved : ndarray of shape (n_predictors + 1, n_stimuli)
        ``(design^T design + alpha I')^-1 design^T``: the fitted values of targets ``y`` are
        ``design @ (solved @ y)``.
    one_minus_leverage : ndarray of shape (n_stimuli,)
        ``1 - h_i``; the held-out prediction of stimulus ``i`` is ``y_i - (y_i - fitted_i) / (1 - h_i)``.
    """
    n = z.shape[0]
    design = np.hstack([np.ones((n, 1)), z.astype(np.float64, copy=False)])
    normal = design.T @ design
    normal[np.diag_indices_from(normal)] += np.r_[0.0, np.full(z.shape[1], alpha)]
    try:
        factor = scipy.linalg.cho_factor(normal, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise ValidationError(
            f"the ridge normal equations are singular (alpha={alpha}, {z.shape[1]} predictors "
            f"of rank < {z.shape[1]}); use alpha > 0"
        ) from exc
    solved = scipy.linalg.cho_solve(factor, design.T, check_finite=False)  # (p+1) x n
    leverage = np.einsum("ij,ji->i", design, solved)
    one_minus = 1.0 - leverage
    if np.any(one_minus <= 1e-10):
        bad = int(np.argmin(one_minus))
        raise ValidationError(
            f"stimulus {bad} has leverage {leverage[bad]:.6g} in the ridge fit, so leaving it "
            "out is undefined; expected leverage < 1 (use alpha > 0)"
        )
    return design, solved, one_minus


def tsvd_loo_operator(side: DerivedStats, k: int, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`loo_ridge_operator` of the ``k`` TSVD components of ``side``, cached on ``side``
    (shared by the score and its permutation null)."""
    def compute():
        with single_threaded_blas():
            return loo_ridge_operator(side.tsvd_components(k), alpha)

    return side.cached(("loo_ridge_operator", k, float(alpha)), compute)


def loo_ridge_predictions(operator: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray) -> np.ndarray:
    """Held-out predictions of targets ``y`` (n x m, or n) from a :func:`loo_ridge_operator`:
    ``y - (y - fitted) / (1 - h)``, row ``i`` predicted from the fit on all other stimuli."""
    design, solved, one_minus = operator
    if y.ndim == 2:
        one_minus = one_minus[:, None]
    return y - (y - design @ (solved @ y)) / one_minus


def _centred_columns(a: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``a`` minus their means, and their norms; a constant column raises, named."""
    centred = a - a.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    scale = np.sqrt(np.einsum("ij,ij->j", a, a)) + np.finfo(np.float64).tiny
    flat = norms <= 1e-12 * scale
    if flat.any():
        bad = np.flatnonzero(flat)
        raise ValidationError(
            f"{name}: column {int(bad[0])} is constant across stimuli ({bad.size} such "
            "column(s)); its Pearson correlation is undefined. Expected varying columns"
        )
    return centred, norms


def columnwise_pearson(a: np.ndarray, b: np.ndarray, names=("a", "b")) -> np.ndarray:
    """Pearson r between matching columns of ``a`` and ``b`` (n x m each); shape (m,)."""
    ac, a_norms = _centred_columns(a, names[0])
    bc, b_norms = _centred_columns(b, names[1])
    return np.einsum("ij,ij->j", ac, bc) / (a_norms * b_norms)


def tsvd_regression_from_stats(
    x: DerivedStats, y: DerivedStats, n_components: int = 40, alpha: float = 1.0
) -> float:
    """:func:`tsvd_regression` on prepared statistics (used by :func:`workbench.metrics.compare`)."""
    k = x.check_n_components(n_components)
    alpha = _check_alpha(alpha)
    targets = y.require_array("tsvd_regression").astype(np.float64, copy=False)
    _centred_columns(targets, "Y")  # a constant column of Y fails before any fitting
    operator = tsvd_loo_operator(x, k, alpha)
    with single_threaded_blas():
        predictions = loo_ridge_predictions(operator, targets)
        r = columnwise_pearson(predictions, targets, names=("held-out predictions", "Y"))
    return float(r.mean())
