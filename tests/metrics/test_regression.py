"""tsvd_regression against one scikit-learn Ridge fit per held-out stimulus."""

import numpy as np
import pytest
import scipy.stats
from sklearn.linear_model import Ridge

from workbench.errors import ValidationError
from workbench.metrics import GramStats, tsvd_regression


def _direct_protocol(x, y, k, alpha):
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    z = u[:, :k] * s[:k]
    held_out = np.empty_like(y)
    for i in range(len(y)):
        train = np.arange(len(y)) != i
        held_out[i] = Ridge(alpha=alpha, fit_intercept=True).fit(z[train], y[train]).predict(z[i : i + 1])[0]
    return np.mean([scipy.stats.pearsonr(held_out[:, j], y[:, j]).statistic for j in range(y.shape[1])])


@pytest.fixture
def pair():
    rng = np.random.default_rng(30)
    latent = rng.normal(size=(40, 5))
    x = latent @ rng.normal(size=(5, 90)) + 0.3 * rng.normal(size=(40, 90)) + 2.0
    y = latent @ rng.normal(size=(5, 7)) + rng.normal(size=(40, 7)) + 10.0
    return x, y


@pytest.mark.parametrize(("k", "alpha"), [(5, 1.0), (12, 0.1), (20, 30.0), (8, 0.0)])
def test_equals_per_fold_sklearn_ridge(pair, k, alpha):
    x, y = pair
    assert tsvd_regression(x, y, n_components=k, alpha=alpha) == pytest.approx(_direct_protocol(x, y, k, alpha), rel=1e-6)


def test_float32_input_is_close_to_float64(pair):
    x, y = pair
    assert tsvd_regression(x.astype(np.float32), y, n_components=5) == pytest.approx(
        tsvd_regression(x, y, n_components=5), abs=1e-4
    )


def test_gram_stats_input_equals_array_input(pair):
    x, y = pair
    stats = GramStats.from_array(x, chunk_features=11)
    assert tsvd_regression(stats, y, n_components=6) == pytest.approx(tsvd_regression(x, y, n_components=6), rel=1e-10)


def test_invariant_to_signs_and_rotations_of_features(pair):
    x, y = pair
    q, _ = np.linalg.qr(np.random.default_rng(31).normal(size=(x.shape[1], x.shape[1])))
    assert tsvd_regression(-x @ q, y, n_components=6) == pytest.approx(tsvd_regression(x, y, n_components=6), rel=1e-8)


def test_targets_in_the_retained_subspace_score_one():
    rng = np.random.default_rng(32)
    low_rank = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 30))
    assert tsvd_regression(low_rank, low_rank[:, :6], n_components=4, alpha=1e-8) == pytest.approx(1.0, abs=1e-6)


def test_independent_noise_scores_near_zero():
    rng = np.random.default_rng(33)
    x, y = rng.normal(size=(300, 80)), rng.normal(size=(300, 20))
    # leave-one-out r of pure noise is centred slightly below 0; its mean over 20 columns
    # has a spread of about 0.02
    assert abs(tsvd_regression(x, y, n_components=10)) < 0.1


def test_bad_inputs(pair):
    x, y = pair
    with pytest.raises(ValidationError, match=r"alpha must be a finite number >= 0, found -1"):
        tsvd_regression(x, y, n_components=5, alpha=-1)
    with pytest.raises(ValidationError, match=r"alpha must be a finite number >= 0, found nan"):
        tsvd_regression(x, y, n_components=5, alpha=float("nan"))
    flat = y.copy()
    flat[:, 4] = 3.0
    with pytest.raises(ValidationError, match=r"Y: column 4 is constant across stimuli"):
        tsvd_regression(x, flat, n_components=5)
    with pytest.raises(ValidationError, match=r"n_components=40 is out of range.*= 39"):
        tsvd_regression(x, y, n_components=40)
    with pytest.raises(ValidationError, match=r"n_components=91 is out of range.*= 90"):
        tsvd_regression(np.vstack([x] * 3), np.vstack([y] * 3), n_components=91)
    with pytest.raises(ValidationError, match=r"tsvd_regression needs Y as an array"):
        tsvd_regression(x, GramStats.from_array(y), n_components=5)
    nan_y = y.copy()
    nan_y[2, 3] = np.inf
    with pytest.raises(ValidationError, match=r"Y contains 1 NaN or inf value\(s\) \(first at index \(2, 3\)"):
        tsvd_regression(x, nan_y, n_components=5)
