"""Threshold schedules: S-LATS, LATS, linear, constant-lambda ISTA."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.methods.lats import schedules


@pytest.mark.parametrize("T", [400, 2000])
def test_slats_equals_normalised_cumulative_cosine_learning_rate(T):
    D = 0.7
    d = np.array([schedules.slats_threshold(t, T, D) for t in range(T + 1)])
    # midpoint-sampled cosine: the sum is the integral up to O(1/T^2)
    lr_mid = 0.5 * (1 + np.cos(np.pi * (np.arange(T) + 0.5) / T))
    expected = D * np.concatenate([[0], np.cumsum(lr_mid)]) / lr_mid.sum()
    np.testing.assert_allclose(d, expected, atol=2 * D / T**2)
    # the framework's left-point cosine (lr at step t): equal up to one step's share, O(1/T)
    lr_left = 0.5 * (1 + np.cos(np.pi * np.arange(T) / T))
    left = D * np.concatenate([[0], np.cumsum(lr_left)]) / lr_left.sum()
    np.testing.assert_allclose(d, left, atol=2 * D / T)
    assert d[0] == 0 and d[-1] == pytest.approx(D)
    assert np.all(np.diff(d) >= 0)


def test_lats_matches_the_closed_form_of_the_epoch_wise_cosine():
    N, spe, D = 7, 13, 1.3
    epoch_lrs = [0.1 * 0.5 * (1 + math.cos(math.pi * n / N)) for n in range(N)]
    for n in range(N + 1):
        closed = 0.5 * (1 + 2 * n + math.sin(math.pi * (n - 0.5) / N) / math.sin(math.pi * 0.5 / N)) / (N + 1)
        assert schedules.lats_threshold(n * spe, spe, epoch_lrs, D) == pytest.approx(D * closed, abs=1e-12)
    # inside an epoch the threshold rises linearly, by that epoch's share of the learning rate
    n = 2
    start = schedules.lats_threshold(n * spe, spe, epoch_lrs, D)
    step = D * epoch_lrs[n] / sum(epoch_lrs) / spe
    for b in range(spe + 1):
        assert schedules.lats_threshold(n * spe + b, spe, epoch_lrs, D) == pytest.approx(start + b * step)
    # and stays within O(1/N) of S-LATS at epoch starts
    for n in range(N + 1):
        assert abs(schedules.lats_threshold(n * spe, spe, epoch_lrs, D)
                   - schedules.slats_threshold(n * spe, N * spe, D)) < D / N


def test_named_schedules_reach_D_and_are_consistent():
    T, spe, D = 60, 10, 0.5
    lr_at = lambda t: 0.5 * (1 + math.cos(math.pi * t / T))  # noqa: E731
    for name in ("lats", "slats", "linear", "ista"):
        f = schedules.threshold_schedule(name, D=D, total_steps=T, steps_per_epoch=spe, lr_at=lr_at)
        values = [f(t) for t in range(T + 1)]
        assert values[0] == 0 and values[-1] == pytest.approx(D)
        assert all(b >= a for a, b in zip(values, values[1:]))
    ista = schedules.threshold_schedule("ista", D=D, total_steps=T, steps_per_epoch=spe, lr_at=lr_at)
    lrs = [lr_at(t) for t in range(T)]
    # constant lambda: every increment is lambda * lr_t with one lambda
    incs = np.diff([ista(t) for t in range(T + 1)]) / np.array(lrs)
    np.testing.assert_allclose(incs, D / sum(lrs))
    assert schedules.linear_threshold(15, T, D) == pytest.approx(D / 4)


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValidationError, match="unknown threshold schedule 'cubic'.*'slats'"):
        schedules.threshold_schedule("cubic", D=1, total_steps=10, steps_per_epoch=5)
    with pytest.raises(ValidationError, match="whole pruning epochs"):
        schedules.threshold_schedule("lats", D=1, total_steps=11, steps_per_epoch=5, lr_at=lambda t: 1.0)
    with pytest.raises(ValidationError, match="outside"):
        schedules.slats_threshold(11, 10, 1.0)
    with pytest.raises(ValidationError, match="needs the learning rates"):
        schedules.threshold_schedule("ista", D=1, total_steps=10, steps_per_epoch=5)
