"""cka against direct centred-Gram, feature-space and Song et al. (2012) computations."""

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

from workbench.errors import ValidationError
from workbench.metrics import GramStats, cka


def _centring(n):
    return np.eye(n) - np.ones((n, n)) / n


def _direct_linear_feature_space(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def _direct_cka_from_kernels(k, l):
    h = _centring(k.shape[0])
    kc, lc = h @ k @ h, h @ l @ h
    return np.sum(kc * lc) / np.sqrt(np.sum(kc * kc) * np.sum(lc * lc))


def _direct_rbf(x):
    d = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x, "sqeuclidean"))
    sigma2 = np.median(d[(d > 0) & ~np.eye(len(d), dtype=bool)])
    return np.exp(-d / (2 * sigma2))


def _song_unbiased_hsic(k, l):
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    term = np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term -= 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return term / (n * (n - 3))


def _direct_debiased(k, l):
    return _song_unbiased_hsic(k, l) / np.sqrt(_song_unbiased_hsic(k, k) * _song_unbiased_hsic(l, l))


@pytest.fixture
def pair():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(30, 70)) + 1.5
    y = np.tanh(x[:, :20]) @ rng.normal(size=(20, 12)) + rng.normal(size=(30, 12))
    return x, y


def test_linear_cka_equals_feature_space_and_centred_gram_formulas(pair):
    x, y = pair
    expected = _direct_linear_feature_space(x, y)
    assert expected == pytest.approx(_direct_cka_from_kernels(x @ x.T, y @ y.T), rel=1e-10)
    assert cka(x, y) == pytest.approx(expected, rel=1e-8)


def test_rbf_cka_with_median_bandwidth(pair):
    x, y = pair
    assert cka(x, y, kernel="rbf") == pytest.approx(_direct_cka_from_kernels(_direct_rbf(x), _direct_rbf(y)), rel=1e-8)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_debiased_cka_equals_song_unbiased_hsic(pair, kernel):
    x, y = pair
    if kernel == "linear":
        k, l = x @ x.T, y @ y.T
    else:
        k, l = _direct_rbf(x), _direct_rbf(y)
    assert cka(x, y, kernel=kernel, debiased=True) == pytest.approx(_direct_debiased(k, l), rel=1e-8)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_identical_inputs_score_one(pair, kernel, debiased):
    x, _ = pair
    assert cka(x, x, kernel=kernel, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(pair, kernel):
    x, y = pair
    q, _ = np.linalg.qr(np.random.default_rng(11).normal(size=(x.shape[1], x.shape[1])))
    assert cka(3.7 * x @ q, y, kernel=kernel) == pytest.approx(cka(x, y, kernel=kernel), rel=1e-9)


def test_not_invariant_to_anisotropic_scaling(pair):
    # guards the invariance test above against a metric that ignores X altogether
    x, y = pair
    scale = np.linspace(0.1, 10, x.shape[1])
    assert abs(cka(x * scale, y) - cka(x, y)) > 1e-3


def test_gram_stats_input_equals_array_input(pair):
    x, y = pair
    for kernel in ("linear", "rbf"):
        assert cka(GramStats.from_array(x, chunk_features=9), y, kernel=kernel, debiased=True) == pytest.approx(
            cka(x, y, kernel=kernel, debiased=True), rel=1e-10
        )


def test_debiased_cka_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(200, 100)), rng.normal(size=(200, 60))
    # the unbiased estimator has mean 0 under independence; its spread here is about 0.005
    assert abs(cka(x, y, debiased=True)) < 0.03
    # the biased estimator is not centred on 0 (why the debiased option exists)
    assert cka(x, y) > 0.1


def test_bad_inputs(pair):
    x, y = pair
    with pytest.raises(ValidationError, match=r"kernel='poly' is not valid; expected one of \['linear', 'rbf'\]"):
        cka(x, y, kernel="poly")
    with pytest.raises(ValidationError, match=r"debiased CKA needs at least 4 stimuli, found 3"):
        cka(x[:3], y[:3], debiased=True)
    with pytest.raises(ValidationError, match=r"Y: the HSIC of its linear kernel with itself is 0, zero up to rounding"):
        cka(x, np.ones_like(y))
    # 0.3 is not exact in binary: the centred kernel of a constant is rounding noise, not 0
    for debiased in (False, True):
        with pytest.raises(ValidationError, match=r"Y: the (debiased )?HSIC .* zero up to rounding"):
            cka(x, np.full_like(y, 0.3) * np.linspace(1, 1.5, y.shape[1]), debiased=debiased)
        with pytest.raises(ValidationError, match=r"X: the (debiased )?HSIC .* zero up to rounding"):
            cka(np.full((30, 70), 0.7, dtype=np.float32), y, debiased=debiased)
    with pytest.raises(ValidationError, match=r"X: all 30 stimuli have identical responses"):
        cka(np.ones_like(x), y, kernel="rbf")
    with pytest.raises(ValidationError, match=r"found 30 stimuli in X .* and 29 in Y"):
        cka(x, y[1:])
    with pytest.raises(ValidationError, match=r"Y must be a 2-D array.*found 3-D"):
        cka(x, y[:, :, None])
