"""Permutation nulls from statistics against direct loops that permute Y and call the metric."""

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.metrics import GramStats, cka, rsa, svcca, tsvd_regression
from workbench.metrics.derived import DerivedStats
from workbench.metrics.regression import tsvd_loo_operator
from workbench.metrics.permutation import (
    PermutedQuadraticForms,
    PermutedRegressions,
    PermutedSVCCA,
    null_summary,
    permutation_null,
    stimulus_permutations,
)

CASES = {
    "svcca": (lambda x, y: svcca(x, y, n_components=6), {"n_components": 6}),
    "svcca_unreduced": (lambda x, y: svcca(x, y, n_components=6, reduce_y=False),
                        {"n_components": 6, "reduce_y": False}),
    "tsvd_regression": (lambda x, y: tsvd_regression(x, y, n_components=6, alpha=0.5),
                        {"n_components": 6, "alpha": 0.5}),
    "rsa": (rsa, {}),
    "cka": (cka, {}),
    "cka_rbf_debiased": (lambda x, y: cka(x, y, kernel="rbf", debiased=True), {"kernel": "rbf", "debiased": True}),
}


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(3)
    return rng.normal(size=(40, 90)), rng.normal(size=(40, 9))


@pytest.mark.parametrize("case", list(CASES))
def test_null_from_statistics_equals_a_loop_that_permutes_y(noise, case):
    x, y = noise
    direct_metric, parameters = CASES[case]
    metric = case.split("_unreduced")[0].split("_rbf")[0]
    perms = stimulus_permutations(len(x), 15, seed=1)
    from_stats = permutation_null(x, y, metric, perms=perms, **parameters)
    direct = np.array([direct_metric(x, y[perm]) for perm in perms])
    np.testing.assert_allclose(from_stats, direct, rtol=0, atol=1e-9)
    # GramStats of X give the same null where the metric accepts them
    if metric != "tsvd_regression" and case != "svcca_unreduced":
        again = permutation_null(GramStats.from_array(x), y, metric, perms=perms, **parameters)
        np.testing.assert_allclose(again, from_stats, rtol=0, atol=1e-12)


@pytest.mark.parametrize("workers", [1, 3])
def test_batched_nulls_equal_the_loop_whatever_the_batches_and_threads(noise, monkeypatch, workers):
    """Small batches, many tiles of the upper triangle and batch counts split for 1 or 3 threads change nothing."""
    from workbench.metrics import permutation

    monkeypatch.setattr(permutation, "batch_workers", lambda: workers)
    monkeypatch.setattr(permutation, "TILE_BYTES", 8)  # tiles of at most n pairs: rows of the triangle
    monkeypatch.setattr(permutation, "_BATCH_BYTES", 2 * 8 * 40 * 9)  # 2 permutations a batch
    x, y = noise
    perms = stimulus_permutations(len(x), 15, seed=4)
    for case in ("svcca", "tsvd_regression", "rsa", "cka"):
        direct_metric, parameters = CASES[case]
        direct = np.array([direct_metric(x, y[perm]) for perm in perms])
        np.testing.assert_allclose(permutation_null(x, y, case, perms=perms, **parameters), direct,
                                   rtol=0, atol=1e-9, err_msg=case)


def test_quadratic_forms_of_many_layers_in_small_buffers_equal_the_direct_sums():
    rng = np.random.default_rng(0)
    n = 11
    b = rng.normal(size=(n, n))
    b += b.T
    layers = [a + a.T for a in rng.normal(size=(5, n, n))]
    perms = stimulus_permutations(n, 7, seed=2)
    c = rng.normal(size=(n, n))
    c += c.T
    forms = PermutedQuadraticForms({"b": b, "c": c}, perms, capacity=2)  # evaluated in 3 batches
    iu, ju = np.triu_indices(n, k=1)
    for key, a in enumerate(layers):
        forms.add(key, "b", a[iu, ju], np.diag(a))
        forms.add(key, "c", a[iu, ju])  # no diagonal: zero
    for key, a in enumerate(layers):
        expected = [np.sum(a * b[np.ix_(perm, perm)]) for perm in perms]
        np.testing.assert_allclose(forms.pop(key, "b"), expected, rtol=1e-12)
        hollow = a - np.diag(np.diag(a))
        expected = [np.sum(hollow * c[np.ix_(perm, perm)]) for perm in perms]
        np.testing.assert_allclose(forms.pop(key, "c"), expected, rtol=1e-12)


def test_svcca_and_regression_nulls_of_many_layers_in_small_buffers_equal_the_loop(noise, monkeypatch):
    """Layers of different widths, buffered together and evaluated in several flushes, each get
    the null of a direct loop that permutes Y and calls the metric."""
    from workbench.metrics import permutation

    x, y = noise
    rng = np.random.default_rng(7)
    layers = [x[:, :20], rng.normal(size=(40, 30)), x[:, 50:] @ rng.normal(size=(40, 5))]  # 20, 30, 5 features
    perms = stimulus_permutations(len(x), 9, seed=3)
    monkeypatch.setattr(permutation, "BUFFER_BYTES", 2 * 8 * 3 * 7 * 40)  # about two layers a flush
    yd = DerivedStats.from_input(y, "Y")
    svccas = PermutedSVCCA(permutation.svcca_basis_y(yd, 4), perms)
    regressions = PermutedRegressions(y, perms)
    for key, layer in enumerate(layers):
        xd = DerivedStats.from_input(layer, "X")
        k = min(4, layer.shape[1])
        svccas.add(key, permutation.svcca_basis(xd, k))
        regressions.add(key, tsvd_loo_operator(xd, k, 0.5))
    for key, layer in enumerate(layers):
        k = min(4, layer.shape[1])
        direct = [svcca(layer, y[perm], n_components=k) for perm in perms]
        np.testing.assert_allclose(svccas.pop(key), direct, rtol=0, atol=1e-9, err_msg=f"svcca {key}")
        direct = [tsvd_regression(layer, y[perm], n_components=k, alpha=0.5) for perm in perms]
        np.testing.assert_allclose(regressions.pop(key), direct, rtol=0, atol=1e-9, err_msg=f"regression {key}")


def test_regression_null_scored_from_the_predictions_themselves_is_the_same(noise, monkeypatch):
    """The path for nearly constant predictions (every column sent through it) gives the loop's values."""
    from workbench.metrics import permutation

    monkeypatch.setattr(permutation, "_SPREAD_RTOL", np.inf)
    x, y = noise
    perms = stimulus_permutations(len(x), 6, seed=8)
    direct = [tsvd_regression(x, y[perm], n_components=6, alpha=0.5) for perm in perms]
    np.testing.assert_allclose(permutation_null(x, y, "tsvd_regression", perms=perms, n_components=6, alpha=0.5),
                               direct, rtol=0, atol=1e-9)


def test_permutations_are_seeded_and_are_permutations():
    perms = stimulus_permutations(30, 12, seed=5)
    assert perms.shape == (12, 30)
    assert (np.sort(perms, axis=1) == np.arange(30)).all()
    np.testing.assert_array_equal(perms, stimulus_permutations(30, 12, seed=5))
    assert not np.array_equal(perms, stimulus_permutations(30, 12, seed=6))
    assert len({tuple(p) for p in perms}) == 12
    with pytest.raises(ValidationError, match="n_permutations must be >= 1"):
        stimulus_permutations(30, 0)


def test_summary_counts_ties_as_exceeding_and_never_gives_zero():
    null = np.array([0.1, 0.2, 0.3, 0.5, np.nan])
    mean, p95, p = null_summary(null, 0.3)
    assert mean == pytest.approx(0.275)
    assert p95 == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.5], 95))
    assert p == pytest.approx((1 + 2) / (1 + 4))  # 0.3 and 0.5 are >= 0.3; the NaN is left out
    assert null_summary(null, 9.0)[2] == pytest.approx(1 / 5)
    assert np.isnan(null_summary(null, np.nan)).all()


def _mean_canonical_correlation(a, b):
    """Textbook CCA (covariance blocks) written here: mean of the canonical correlations."""
    a, b = a - a.mean(0), b - b.mean(0)
    sxx, syy, sxy = a.T @ a, b.T @ b, a.T @ b
    m = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    eig = np.sort(np.real(np.linalg.eigvals(m)))[::-1][: min(a.shape[1], b.shape[1])]
    return np.sqrt(np.clip(eig, 0, 1)).mean()


def _agree(null, fresh):
    """Means equal within 4 standard errors of their difference."""
    se = np.hypot(np.std(null) / np.sqrt(len(null)), np.std(fresh) / np.sqrt(len(fresh)))
    return abs(np.mean(null) - np.mean(fresh)) < 4 * se


def test_null_of_independent_noise_sits_where_each_metric_puts_chance():
    rng = np.random.default_rng(11)
    n, k = 60, 8
    x, y = rng.normal(size=(n, 120)), rng.normal(size=(n, 30))
    perms = stimulus_permutations(n, 200, seed=0)
    # RSA: exactly 0 in expectation over permutations (both rank vectors are centred)
    null = permutation_null(x, y, "rsa", perms=perms)
    assert abs(null.mean()) < 4 * null.std() / np.sqrt(null.size)
    # TSVD regression: near 0, slightly negative (a leave-one-out prediction is pulled away
    # from its held-out value); the same as on fresh independent noise
    null = permutation_null(x, y, "tsvd_regression", perms=perms, n_components=k)
    fresh = [tsvd_regression(rng.normal(size=(n, 120)), rng.normal(size=(n, 30)), n_components=k)
             for _ in range(60)]
    assert -0.15 < null.mean() < 0 and _agree(null, fresh)
    # SVCCA: the mean canonical correlation of two unrelated k-dimensional sets over n
    # stimuli, a clear positive bias, computed here from fresh independent Gaussian sets
    null = permutation_null(x, y, "svcca", perms=perms, n_components=k)
    fresh = [_mean_canonical_correlation(rng.normal(size=(n, k)), rng.normal(size=(n, k))) for _ in range(300)]
    assert np.mean(fresh) > 0.2 and _agree(null, fresh)


@pytest.mark.parametrize("metric", ["svcca", "tsvd_regression", "rsa", "cka"])
def test_a_planted_signal_is_far_above_its_null(metric):
    rng = np.random.default_rng(4)
    latent = rng.normal(size=(50, 5))
    x = latent @ rng.normal(size=(5, 80)) + 0.5 * rng.normal(size=(50, 80))
    y = latent @ rng.normal(size=(5, 12)) + 0.5 * rng.normal(size=(50, 12))
    parameters = {"n_components": 5} if metric in ("svcca", "tsvd_regression") else {}
    observed = {"svcca": svcca, "tsvd_regression": tsvd_regression, "rsa": rsa, "cka": cka}[metric](x, y, **parameters)
    null = permutation_null(x, y, metric, 200, seed=0, **parameters)
    mean, p95, p = null_summary(null, observed)
    assert p < 0.01 and observed > p95 > mean
    # the same responses, shuffled, are at chance
    shuffled = y[np.random.default_rng(9).permutation(50)]
    shuffled_score = {"svcca": svcca, "tsvd_regression": tsvd_regression, "rsa": rsa,
                      "cka": cka}[metric](x, shuffled, **parameters)
    assert null_summary(null, shuffled_score)[2] > 0.01


def test_a_pair_the_metric_cannot_score_raises_its_reason():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 30)), rng.normal(size=(12, 4))
    y[:, 1] = 1.0
    with pytest.raises(ValidationError, match="column 1 is constant"):
        permutation_null(x, y, "tsvd_regression", 5, n_components=3)
    with pytest.raises(ValidationError, match="perms must have shape"):
        permutation_null(x, y, "rsa", perms=np.zeros((3, 5), int))
    with pytest.raises(ValidationError, match=r"8 \+ 4 canonical variables do not fit .*lower n_components or use more stimuli"):
        permutation_null(x, rng.normal(size=(12, 4)), "svcca", 5, n_components=8, reduce_y=False)
    with pytest.raises(ValidationError, match="alpha must be a finite number >= 0"):
        permutation_null(x, rng.normal(size=(12, 4)), "tsvd_regression", 5, n_components=3, alpha=-1)
    with pytest.raises(ValidationError, match="unknown metric"):
        permutation_null(x, y, "psnr", 5)
