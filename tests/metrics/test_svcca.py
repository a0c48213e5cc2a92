"""svcca against an exact SVD + textbook CCA written here."""

import warnings

import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD

from workbench.errors import ValidationError
from workbench.metrics import GramStats, svcca
from workbench.metrics.svcca import RankDeficiencyWarning, SvccaScore, numerical_rank


def _tsvd(x, k):
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :k] * s[:k]


def _textbook_cca(a, b):
    """Canonical correlations from the covariance blocks: eig of Sxx^-1 Sxy Syy^-1 Syx."""
    a, b = a - a.mean(0), b - b.mean(0)
    sxx, syy, sxy = a.T @ a, b.T @ b, a.T @ b
    m = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    eig = np.sort(np.real(np.linalg.eigvals(m)))[::-1][: min(a.shape[1], b.shape[1])]
    return np.sqrt(np.clip(eig, 0, 1))


def _direct_svcca(x, y, k, reduce_y=True):
    zy = _tsvd(y, k) if reduce_y and y.shape[1] > k else y
    return _textbook_cca(_tsvd(x, k), zy).mean()


@pytest.fixture
def pair():
    rng = np.random.default_rng(20)
    latent = rng.normal(size=(80, 6))
    x = latent @ rng.normal(size=(6, 150)) + 0.5 * rng.normal(size=(80, 150)) + 0.3
    y = latent @ rng.normal(size=(6, 40)) + rng.normal(size=(80, 40))
    return x, y


@pytest.mark.parametrize("k", [5, 10, 30])
def test_equals_exact_svd_and_textbook_cca(pair, k):
    x, y = pair
    assert svcca(x, y, n_components=k) == pytest.approx(_direct_svcca(x, y, k), rel=1e-6)


def test_without_reducing_y(pair):
    x, y = pair
    assert svcca(x, y[:, :15], n_components=10) == pytest.approx(_direct_svcca(x, y[:, :15], 10), rel=1e-6)
    assert svcca(x, y, n_components=10, reduce_y=False) == pytest.approx(
        _direct_svcca(x, y, 10, reduce_y=False), rel=1e-6
    )


def test_tsvd_matches_sklearn_truncated_svd_up_to_signs(pair):
    x, _ = pair
    # the exact TSVD this metric uses spans the same space as sklearn's (arpack, exact)
    z = TruncatedSVD(8, algorithm="arpack", random_state=0).fit_transform(x)
    np.testing.assert_allclose(np.abs(z), np.abs(_tsvd(x, 8)), rtol=1e-6, atol=1e-8)
    assert svcca(x, z, n_components=8, reduce_y=False) == pytest.approx(1.0, abs=1e-10)


def test_identical_inputs_and_sign_flips_score_one(pair):
    x, _ = pair
    assert svcca(x, x, n_components=12) == pytest.approx(1.0, abs=1e-10)
    assert svcca(x, -x, n_components=12) == pytest.approx(1.0, abs=1e-10)


def test_invariant_to_invertible_maps_of_the_retained_subspace():
    rng = np.random.default_rng(21)
    k = 5
    x = rng.normal(size=(60, k)) @ rng.normal(size=(k, 40))  # rank k: TSVD keeps all of it
    y = x[:, :25] + rng.normal(size=(60, 25))
    mixed = x @ rng.normal(size=(40, 40))  # invertible map of the feature space
    assert svcca(mixed, y, n_components=k) == pytest.approx(svcca(x, y, n_components=k), rel=1e-8)


def test_gram_stats_input_equals_array_input(pair):
    x, y = pair
    stats = GramStats.from_array(x, chunk_features=17)
    assert svcca(stats, y, n_components=10) == pytest.approx(svcca(x, y, n_components=10), rel=1e-10)


def test_independent_noise_scores_low():
    rng = np.random.default_rng(22)
    x, y = rng.normal(size=(400, 100)), rng.normal(size=(400, 60))
    # mean canonical correlation of two independent 5-dimensional subspaces of R^400:
    # about 0.06 here, always below 0.2
    assert svcca(x, y, n_components=5) < 0.2


def test_bad_inputs(pair):
    x, y = pair
    with pytest.raises(ValidationError, match=r"n_components=80 is out of range for X with 80 stimuli.*= 79"):
        svcca(x, y, n_components=80)
    with pytest.raises(ValidationError, match=r"n_components=0 is out of range"):
        svcca(x, y, n_components=0)
    with pytest.raises(ValidationError, match=r"n_components must be an integer, found 2.5"):
        svcca(x, y, n_components=2.5)
    with pytest.raises(ValidationError, match=r"40 \+ 40 canonical variables do not fit in the 79 dimensions"):
        svcca(x, y, n_components=40)
    low_rank = np.random.default_rng(23).normal(size=(80, 3)) @ np.ones((3, 50))
    with pytest.raises(ValidationError, match=r"X has rank 1 \(numerically\), fewer than the 4 TSVD components"):
        svcca(low_rank, y, n_components=4)
    with pytest.raises(ValidationError, match=r"Y \(3 columns\) are constant across stimuli \(rank 0"):
        svcca(x, np.ones((80, 3)), n_components=10)
    with pytest.raises(ValidationError, match=r"svcca without reduction of Y needs Y as an array"):
        svcca(x, GramStats.from_array(y[:, :5]), n_components=10)
    with pytest.raises(ValidationError, match=r"X has 2 row"):
        svcca(x[:2], y[:2], n_components=1)


def test_rank_deficient_neural_side_is_reduced_to_its_rank(pair):
    """A unit listed twice (rank 147 of 148 after centring, as in merged sessions)."""
    x, y = pair
    rng = np.random.default_rng(5)
    y = rng.normal(size=(80, 20))
    duplicated = np.hstack([y, y[:, 3:4]])  # 21 columns, rank 20
    with pytest.warns(RankDeficiencyWarning, match=r"Y \(21 columns\) have rank 20 after centring"):
        score = svcca(x, duplicated, n_components=10, reduce_y=False)
    assert isinstance(score, SvccaScore) and isinstance(score, float)
    assert (score.rank_x, score.rank_y, score.n_columns_y) == (10, 20, 21) and score.reduced
    # CCA depends only on the centred column spaces: dropping the copy gives the same value
    assert score == pytest.approx(svcca(x, y, n_components=10, reduce_y=False), abs=1e-12)
    # a constant column adds nothing either
    constant = np.hstack([y, np.full((80, 1), 3.0)])
    with pytest.warns(RankDeficiencyWarning, match="rank 20 after centring"):
        assert svcca(x, constant, n_components=10, reduce_y=False) == pytest.approx(float(score), abs=1e-12)
    # full rank: no warning, ranks are the column counts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = svcca(x, y, n_components=10, reduce_y=False)
    assert (full.rank_x, full.rank_y) == (10, 20) and not full.reduced


def test_numerical_rank_tolerance():
    eps = np.finfo(np.float64).eps
    # |R_jj| above 10 * max(n, k) * eps * |R_11| count, at or below do not
    assert numerical_rank([2.0, 1.0, 2.0 * 10 * 50 * eps * 1.01], (50, 3)) == 3
    assert numerical_rank([2.0, 1.0, 2.0 * 10 * 50 * eps * 0.99], (50, 3)) == 2
    assert numerical_rank([0.0, 0.0], (5, 2)) == 0
