"""Multi-dataset re-sampling factors and the class-aware sampler: the resulting sampling frequencies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ValidationError
from workbench.methods.unidet.sampling import (
    RepeatFactorSampler,
    WeightedDatasetSampler,
    repeat_indices,
    sampling_probabilities,
)

IDS = np.array([0] * 6 + [1] * 3 + [2] * 2)   # three datasets of 6, 3 and 2 items


def test_integer_factors_repeat_every_item_exactly_f_times():
    g = torch.Generator().manual_seed(0)
    idx = repeat_indices(IDS, [4, 1, 8], g)       # the reference's COCO x4, OpenImages x1, Vistas x8
    counts = np.bincount(idx.numpy(), minlength=len(IDS))
    assert counts.tolist() == [4] * 6 + [1] * 3 + [8] * 2
    assert idx.tolist() != sorted(idx.tolist())    # shuffled


def test_fractional_factors_repeat_in_expectation_and_epochs_differ():
    sampler = RepeatFactorSampler(IDS, [0.5, 1.0, 2.5], seed=3)
    totals = np.zeros(len(IDS))
    epochs = 400
    orders = set()
    for e in range(epochs):
        sampler.set_epoch(e)
        idx = list(sampler)
        orders.add(tuple(idx))
        totals += np.bincount(idx, minlength=len(IDS))
    mean = totals / epochs
    assert np.allclose(mean[:6], 0.5, atol=0.08) and np.allclose(mean[6:9], 1.0) and np.allclose(mean[9:], 2.5, atol=0.08)
    assert len(orders) > epochs // 2
    sampler.set_epoch(7)
    assert list(sampler) == list(sampler)          # an epoch is reproducible


def test_weighted_probabilities_give_dataset_shares_f_times_n():
    p = sampling_probabilities(IDS, [4, 1, 8])
    shares = np.array([p[IDS == d].sum() for d in range(3)])
    expected = np.array([4 * 6, 1 * 3, 8 * 2]) / (24 + 3 + 16)
    assert np.allclose(shares, expected)
    assert np.allclose(p[IDS == 0], p[0])          # uniform within a dataset


def test_class_aware_probabilities_match_the_direct_formula_and_the_draws():
    ids = np.array([0, 0, 0, 0, 1, 1])
    classes = [np.array([0]), np.array([0, 0]), np.array([0, 1]), np.array([], int), np.array([2]), np.array([2, 3])]
    p = sampling_probabilities(ids, [1.0, 1.0], classes, class_aware=True)
    # dataset 0 (4 items, share 4/6): classes {0: items 0,1,2; 1: item 2}; dataset 1 (share 2/6): {2: 4,5; 3: 5}
    s0, s1 = 4 / 6, 2 / 6
    expected = [s0 * (1 / 2) / 3, s0 * (1 / 2) / 3, s0 * ((1 / 2) / 3 + 1 / 2), 0.0, s1 * (1 / 2) / 2,
                s1 * ((1 / 2) / 2 + 1 / 2)]
    assert np.allclose(p, expected)
    sampler = WeightedDatasetSampler(ids, [1.0, 1.0], classes, class_aware=True, num_samples=60000, seed=0)
    freq = np.bincount(list(sampler), minlength=6) / 60000
    assert np.allclose(freq, expected, atol=0.01)
    assert freq[3] == 0                            # an image without boxes is never drawn


def test_bad_factors_are_refused():
    with pytest.raises(ValidationError, match="one per dataset"):
        sampling_probabilities(IDS, [1, 1])
    with pytest.raises(ValidationError, match=">= 0"):
        RepeatFactorSampler(IDS, [1, -1, 1])
