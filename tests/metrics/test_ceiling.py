import numpy as np
import pytest
import scipy.stats

from workbench.errors import ValidationError
from workbench.metrics.ceiling import (regression_ceiling, rsa_split_half_ceiling,
                                       rsa_subject_ceiling)


def _corr_distance(x):
    return 1.0 - np.corrcoef(x)


def _spearman_upper(a, b):
    iu = np.triu_indices(a.shape[0], k=1)
    return scipy.stats.spearmanr(a[iu], b[iu])[0]


def _repeats(noise=1.0, n_stim=25, n_neur=12, n_rep=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_stim, n_neur, 1)) + noise * rng.normal(size=(n_stim, n_neur, n_rep))


def test_subject_ceiling_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    shared = rng.normal(size=(10, 20))
    rdms = np.stack([_corr_distance(shared + rng.normal(size=(10, 20))) for _ in range(4)])
    lower, upper = rsa_subject_ceiling(rdms)
    direct_lower = np.mean([_spearman_upper(rdms[s], np.delete(rdms, s, 0).mean(0)) for s in range(4)])
    direct_upper = np.mean([_spearman_upper(rdms[s], rdms.mean(0)) for s in range(4)])
    assert lower == pytest.approx(direct_lower) and upper == pytest.approx(direct_upper)
    assert lower < upper


def test_identical_subjects_have_ceiling_one():
    rdm = _corr_distance(np.random.default_rng(0).normal(size=(8, 5)))
    assert rsa_subject_ceiling(np.stack([rdm, rdm, rdm])) == pytest.approx((1.0, 1.0))


def test_subject_ceiling_bad_input():
    with pytest.raises(ValidationError, match=r"subject_rdms must have shape \(subject >= 2"):
        rsa_subject_ceiling(np.zeros((1, 5, 5)))
    with pytest.raises(ValidationError, match="subject_rdms"):
        rsa_subject_ceiling(np.zeros((3, 5, 4)))


def test_split_half_rsa_ceiling_odd_even_matches_a_direct_computation():
    values = _repeats()
    odd, even = values[:, :, 0::2].mean(2), values[:, :, 1::2].mean(2)
    r = _spearman_upper(_corr_distance(odd), _corr_distance(even))
    got = rsa_split_half_ceiling(values, method="odd_even")
    assert got == pytest.approx(2 * r / (1 + r))


def test_split_half_rsa_ceiling_behaviour():
    noiseless = np.repeat(_repeats(n_rep=1), 4, axis=2)
    assert rsa_split_half_ceiling(noiseless) == pytest.approx(1.0)
    assert rsa_split_half_ceiling(_repeats(noise=0.3)) > rsa_split_half_ceiling(_repeats(noise=3.0))
    seeded = rsa_split_half_ceiling(_repeats(), seed=4)
    assert seeded == rsa_split_half_ceiling(_repeats(), seed=4)


def test_split_half_rsa_ceiling_skips_stimuli_with_one_repeat():
    values = _repeats()
    padded = values.copy()
    padded[0, :, 1:] = np.nan
    assert rsa_split_half_ceiling(padded, method="odd_even") == pytest.approx(
        rsa_split_half_ceiling(values[1:], method="odd_even"))


def test_regression_ceiling_is_the_mean_corrected_reliability():
    values = _repeats()
    rs = [np.corrcoef(values[:, n, 0::2].mean(1), values[:, n, 1::2].mean(1))[0, 1]
          for n in range(values.shape[1])]
    direct = np.mean([2 * r / (1 + r) for r in rs])
    assert regression_ceiling(values, method="odd_even") == pytest.approx(direct)
    with pytest.raises(ValidationError, match="no neuroid has a defined split-half reliability"):
        regression_ceiling(np.ones((5, 2, 4)))
