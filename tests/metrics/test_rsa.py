"""rdm / compare_rdms / rsa against direct numpy and scipy computations."""

import numpy as np
import pytest
import scipy.stats
import torch

from workbench.errors import ValidationError
from workbench.metrics import GramStats, compare_rdms, rdm, rsa


def _direct_rdm(x):
    return 1.0 - np.corrcoef(x)


def _direct_spearman(a, b):
    iu = np.triu_indices(a.shape[0], k=1)
    return scipy.stats.spearmanr(a[iu], b[iu]).statistic


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 60))
    y = x[:, :40] @ rng.normal(size=(40, 30)) + 3.0 * rng.normal(size=(25, 30))
    return x, y


def test_rdm_equals_one_minus_corrcoef(pair):
    x, _ = pair
    got = rdm(x)
    np.testing.assert_allclose(got, _direct_rdm(x), rtol=1e-10, atol=1e-12)
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_array_equal(got, got.T)


def test_rdm_from_gram_stats_and_torch_equal_array_path(pair):
    x, _ = pair
    x = x + 5.0  # a mean offset: the row centring from statistics must handle it
    expected = _direct_rdm(x)
    np.testing.assert_allclose(rdm(GramStats.from_array(x, chunk_features=7)), expected, atol=1e-10)
    np.testing.assert_allclose(rdm(torch.from_numpy(x)), expected, atol=1e-10)


def test_rdm_float32_input_matches_float64_within_float32_precision(pair):
    x, _ = pair
    np.testing.assert_allclose(rdm(x.astype(np.float32)), _direct_rdm(x), atol=1e-5)


def test_compare_rdms_equals_scipy_spearman_with_ties(pair):
    x, y = pair
    a, b = _direct_rdm(x), _direct_rdm(y)
    assert compare_rdms(a, b) == pytest.approx(_direct_spearman(a, b), rel=1e-10)
    # coarse rounding creates many ties: average ranks must match scipy's
    a_tied, b_tied = np.round(a, 1), np.round(b, 1)
    assert compare_rdms(a_tied, b_tied) == pytest.approx(_direct_spearman(a_tied, b_tied), rel=1e-10)


def test_spearman_of_samples_equals_scipy_with_ties_and_is_nan_when_constant():
    from workbench.metrics.rsa import spearman

    rng = np.random.default_rng(3)
    a, b = np.round(rng.normal(size=200), 1), np.round(rng.normal(size=200), 1)
    b = b + 0.5 * a
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic, rel=1e-12)
    assert np.isnan(spearman(a, np.ones(200)))
    assert np.isnan(spearman(np.append(a[:-1], np.nan), b))
    with pytest.raises(ValidationError, match=r"same length; found shapes \(200,\) and \(199,\)"):
        spearman(a, b[:-1])


def test_compare_rdms_reads_only_the_upper_triangle(pair):
    x, y = pair
    a, b = _direct_rdm(x), _direct_rdm(y)
    scrambled = a.copy()
    scrambled[np.tril_indices(a.shape[0])] = np.random.default_rng(1).normal(size=a.shape[0] * (a.shape[0] + 1) // 2)
    assert compare_rdms(scrambled, b) == pytest.approx(compare_rdms(a, b), rel=1e-12)


def test_rsa_equals_direct_protocol_and_is_one_for_identical_inputs(pair):
    x, y = pair
    assert rsa(x, y) == pytest.approx(_direct_spearman(_direct_rdm(x), _direct_rdm(y)), rel=1e-8)
    assert rsa(x, x) == pytest.approx(1.0, abs=1e-12)


def test_rsa_is_invariant_to_per_stimulus_affine_changes(pair):
    x, y = pair
    rng = np.random.default_rng(2)
    x_affine = x * rng.uniform(0.5, 2.0, size=(x.shape[0], 1)) + rng.normal(size=(x.shape[0], 1))
    assert rsa(x_affine, y) == pytest.approx(rsa(x, y), rel=1e-8)


def test_rsa_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 200)), rng.normal(size=(60, 80))
    # 1770 RDM entries: rho has a null standard deviation of roughly 0.03 or less
    assert abs(rsa(x, y)) < 0.1


def test_rdm_zero_variance_row_is_named():
    x = np.random.default_rng(4).normal(size=(6, 10))
    x[3] = 2.5
    with pytest.raises(ValidationError, match=r"stimulus \(row\) 3 has zero variance"):
        rdm(x)


def test_rdm_bad_inputs():
    with pytest.raises(ValidationError, match=r"X must be a 2-D array.*found 1-D with shape \(5,\)"):
        rdm(np.arange(5.0))
    with pytest.raises(ValidationError, match=r"X has 2 row\(s\).*at least 3 required"):
        rdm(np.ones((2, 4)))
    bad = np.random.default_rng(5).normal(size=(5, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValidationError, match=r"X contains 1 NaN or inf.*\(1, 2\)"):
        rdm(bad)
    with pytest.raises(ValidationError, match=r"across its 1 feature"):
        rdm(np.random.default_rng(6).normal(size=(5, 1)))


def test_compare_rdms_bad_inputs(pair):
    x, y = pair
    a = _direct_rdm(x)
    with pytest.raises(ValidationError, match=r"rdm_a must be a square.*found shape \(25, 24\)"):
        compare_rdms(a[:, :-1], a)
    with pytest.raises(ValidationError, match=r"same stimuli: found shapes \(25, 25\) and \(24, 24\)"):
        compare_rdms(a, a[:-1, :-1])
    with pytest.raises(ValidationError, match=r"rdm_b: all 300 dissimilarities above the diagonal are equal"):
        compare_rdms(a, np.ones_like(a))
    inf = a.copy()
    inf[0, 1] = np.inf
    with pytest.raises(ValidationError, match=r"rdm_b contains 1 NaN or inf"):
        compare_rdms(a, inf)
    with pytest.raises(ValidationError, match=r"rdm_a has 2 row"):
        compare_rdms(np.ones((2, 2)), np.ones((2, 2)))


def test_rsa_mismatched_rows(pair):
    x, y = pair
    with pytest.raises(ValidationError, match=r"found 25 stimuli in X .* and 24 in Y"):
        rsa(x, y[:-1])
