import numpy as np
import pytest
import xarray as xr

from workbench.analysis import resample, subsample_indices, subsample_interval, take_rdm, take_stimuli
from workbench.errors import ValidationError
from workbench.metrics.stats import GramStats


def test_subsample_indices_are_distinct_sorted_and_reproducible():
    idx = subsample_indices(50, 20, fraction=0.8, seed=1)
    assert idx.shape == (20, 40)
    for row in idx:
        assert len(set(row)) == 40 and np.all(np.diff(row) > 0)
    np.testing.assert_array_equal(idx, subsample_indices(50, 20, fraction=0.8, seed=1))
    assert not np.array_equal(idx, subsample_indices(50, 20, fraction=0.8, seed=2))


@pytest.mark.parametrize(
    "args, match",
    [((10, 0), "n_resamples must be >= 1"), ((3, 5), "subsamples of 2 stimuli"), ((10, 5, 1.5), r"fraction must lie")],
)
def test_subsample_indices_errors(args, match):
    n, r, *f = args
    with pytest.raises(ValidationError, match=match):
        subsample_indices(n, r, fraction=f[0] if f else 0.8)


def test_take_stimuli_on_gram_stats_equals_stats_of_the_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 30))
    idx = np.array([0, 3, 4, 9, 11])
    taken = take_stimuli(GramStats.from_array(x), idx)
    direct = GramStats.from_array(x[idx])
    np.testing.assert_allclose(taken.gram, direct.gram)
    np.testing.assert_allclose(taken.row_sums, direct.row_sums)
    assert taken.n_features == 30
    # also equal after global z-scoring of the full matrix, then subsampling
    z = (x - x.mean()) / x.std()
    np.testing.assert_allclose(take_stimuli(GramStats.from_array(x).zscored(), idx).gram, z[idx] @ z[idx].T)


def test_take_stimuli_and_rdm_on_arrays():
    y = xr.DataArray(np.arange(24.0).reshape(6, 4), dims=("stimulus", "neuroid"))
    idx = np.array([1, 5])
    np.testing.assert_array_equal(take_stimuli(y, idx).values, y.values[idx])
    np.testing.assert_array_equal(take_stimuli(y.values, idx), y.values[idx])
    rdm = np.arange(36.0).reshape(6, 6)
    np.testing.assert_array_equal(take_rdm(rdm, idx), [[7, 11], [31, 35]])
    with pytest.raises(ValidationError, match="expected a 'stimulus' dim"):
        take_stimuli(y.rename(stimulus="image"), idx)


def test_interval_of_a_mean_matches_normal_theory():
    """Rescaled subsample intervals of a mean have the width of the textbook interval."""
    rng = np.random.default_rng(0)
    n = 400
    data = rng.normal(size=n)
    samples = resample(lambda idx: data[idx].mean(), n, n_resamples=2000, fraction=0.8, seed=0)
    low, high = subsample_interval(samples, data.mean(), n_stimuli=n, fraction=0.8)
    expected_half = 1.96 * data.std(ddof=1) / np.sqrt(n)
    assert (high - low) / 2 == pytest.approx(expected_half, rel=0.1)
    assert low < data.mean() < high


def test_interval_coverage_of_a_mean():
    rng = np.random.default_rng(1)
    n, covered, trials = 100, 0, 200
    for trial in range(trials):
        data = rng.normal(loc=3.0, size=n)
        samples = resample(lambda idx: data[idx].mean(), n, n_resamples=200, seed=trial)
        low, high = subsample_interval(samples, data.mean(), n_stimuli=n)
        covered += low <= 3.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_interval_per_metric_and_nan_propagation():
    samples = np.array([[0.1, np.nan], [0.2, 0.5], [0.3, 0.4]])
    low, high = subsample_interval(samples, [0.2, 0.45], n_stimuli=10)
    assert low.shape == (2,) and np.isfinite(low[0]) and np.isnan(low[1]) and np.isnan(high[1])
    with pytest.raises(ValidationError, match=">= 2 resamples"):
        subsample_interval(samples[:1], 0.2, n_stimuli=10)
