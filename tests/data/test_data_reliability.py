import numpy as np
import pytest
import xarray as xr

from workbench.data import spearman_brown, split_half_means, split_half_reliability
from workbench.data.assemblies import check_repeat_padding
from workbench.data.reliability import reliable_neuroids
from workbench.errors import DataError, ValidationError


def _repeats(n_stim=30, n_neur=5, n_rep=6, noise=1.0, seed=1):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_stim, n_neur, 1))
    return signal + noise * rng.normal(size=(n_stim, n_neur, n_rep))


def _pad(values, counts):
    """NaN-pad each stimulus after counts[s] repeats (same for all neuroids)."""
    values = values.copy()
    for s, k in enumerate(counts):
        values[s, :, k:] = np.nan
    return values


def test_spearman_brown():
    assert spearman_brown(0.5) == pytest.approx(2 * 0.5 / 1.5)
    assert spearman_brown(0.5, factor=3) == pytest.approx(1.5 / 2.0)
    assert spearman_brown(1.0) == 1.0


def test_odd_even_matches_a_direct_computation_with_unequal_repeats():
    values = _pad(_repeats(), counts=[6, 5, 4, 3, 2] * 6)
    got = split_half_reliability(values, method="odd_even")
    for n in range(values.shape[1]):
        a = [np.mean([values[s, n, r] for r in range(0, 6, 2) if not np.isnan(values[s, n, r])])
             for s in range(values.shape[0])]
        b = [np.mean([values[s, n, r] for r in range(1, 6, 2) if not np.isnan(values[s, n, r])])
             for s in range(values.shape[0])]
        r = np.corrcoef(a, b)[0, 1]
        assert got[n] == pytest.approx(2 * r / (1 + r))


def test_random_splits_partition_the_available_repeats():
    values = _pad(_repeats(), counts=[6, 5, 3, 2, 4] * 6)
    valid_sum = np.nansum(values, axis=2)
    counts = (~np.isnan(values)).sum(axis=2)
    for a, b in split_half_means(values, method="random", n_splits=5, seed=3):
        # halves of k // 2 and k - k // 2 repeats whose sums add up to the total
        k_a = counts // 2
        np.testing.assert_allclose(a * k_a + b * (counts - k_a), valid_sum)


def test_random_splits_are_seeded_and_differ_from_odd_even():
    values = _repeats()
    one = split_half_reliability(values, n_splits=20, seed=7)
    assert np.array_equal(one, split_half_reliability(values, n_splits=20, seed=7))
    assert not np.array_equal(one, split_half_reliability(values, n_splits=20, seed=8))
    assert not np.allclose(one, split_half_reliability(values, method="odd_even"))


def test_reliability_orders_by_noise_and_noiseless_is_one():
    clean = split_half_reliability(np.repeat(_repeats(n_rep=1), 4, axis=2))
    np.testing.assert_allclose(clean, 1.0)
    low, high = (np.median(split_half_reliability(_repeats(noise=s))) for s in (3.0, 0.3))
    assert high > low


def test_stimuli_with_one_repeat_are_left_out():
    values = _pad(_repeats(), counts=[1] + [6] * 29)
    full = split_half_reliability(values[1:], method="odd_even")
    np.testing.assert_allclose(split_half_reliability(values, method="odd_even"), full)


def test_dataarray_input_and_bad_input():
    values = _repeats()
    da = xr.DataArray(values.transpose(2, 0, 1), dims=("repetition", "stimulus", "neuroid"))
    np.testing.assert_allclose(split_half_reliability(da, method="odd_even"),
                               split_half_reliability(values, method="odd_even"))
    with pytest.raises(ValidationError, match="3-D"):
        split_half_reliability(values[:, :, 0])
    with pytest.raises(ValidationError, match="at least 2"):
        split_half_reliability(values[:, :, :1])
    with pytest.raises(ValidationError, match="method='halves' is not valid"):
        split_half_reliability(values, method="halves")


def test_reliable_neuroids_threshold_and_nan():
    np.testing.assert_array_equal(reliable_neuroids([0.9, 0.8, 0.79, np.nan], 0.8),
                                  [True, True, False, False])


def test_padding_rule():
    values = _pad(_repeats(n_stim=4, n_neur=3, n_rep=4), counts=[4, 3, 2, 4])
    check_repeat_padding(values, "ok.npy")
    gap = values.copy()
    gap[0, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"gap.npy: NaN outside the repeat padding: 1 value\(s\) follow a NaN.*stimulus 0, neuroid 1, repeat 2"):
        check_repeat_padding(gap, "gap.npy")
    uneven = values.copy()
    uneven[1, 2, 2] = np.nan
    with pytest.raises(DataError, match="different number of repeats across neuroids"):
        check_repeat_padding(uneven, "u.npy")
    check_repeat_padding(uneven, "u.npy", same_across_neuroids=False)
    empty = values.copy()
    empty[2, 0, :] = np.nan
    with pytest.raises(DataError, match="no repeat at all"):
        check_repeat_padding(empty, "e.npy", same_across_neuroids=False)
    inf = values.copy()
    inf[0, 0, 0] = np.inf
    with pytest.raises(DataError, match="inf"):
        check_repeat_padding(inf, "i.npy")
