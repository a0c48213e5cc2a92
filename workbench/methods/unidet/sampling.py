"""Multi-dataset sampling: per-dataset re-sampling factors and a class-aware sampler.

- :func:`repeat_indices` / :class:`RepeatFactorSampler`: every image of dataset ``d`` appears
  ``f_d`` times per epoch (the reference repeats COCO x4, OpenImages x1, Mapillary Vistas x8 in
  ``configs/rvc/``, mmdetection's ``RepeatDataset`` inside a ``ConcatDataset``); a fractional
  factor repeats ``floor(f_d)`` times plus once more with probability ``frac(f_d)``.
- :func:`sampling_probabilities` / :class:`WeightedDatasetSampler`: draws with replacement,
  dataset ``d`` with probability ``f_d n_d / sum_e f_e n_e`` (the same expected share as the
  repeats) and, within a dataset, either uniformly or *class-aware* (mmdetection's
  ``ClassAwareSampler``, used by the reference for OpenImages): a class of the dataset uniformly,
  then an image containing it uniformly, so an image's probability is
  ``sum_{c in image} 1 / (K_d n_{d,c})``; images without boxes are never drawn then.

Both take a seed and an epoch and draw from their own ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from workbench.errors import ValidationError


def _check_factors(factors: Sequence[float], num_datasets: int) -> np.ndarray:
    f = np.asarray(factors, dtype=float)
    if f.shape != (num_datasets,):
        raise ValidationError(f"dataset_factors has {f.size} values; expected one per dataset ({num_datasets})")
    if (f < 0).any() or not np.isfinite(f).all() or f.sum() == 0:
        raise ValidationError(f"dataset_factors={list(factors)}: expected finite values >= 0, not all 0")
    return f


def repeat_indices(dataset_ids: np.ndarray, factors: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """One epoch of indices: item ``i`` repeated ``f_{d(i)}`` times (fractions stochastically), shuffled."""
    dataset_ids = np.asarray(dataset_ids)
    f = _check_factors(factors, len(factors))
    if dataset_ids.size and int(dataset_ids.max()) >= len(f):
        raise ValidationError(f"dataset id {int(dataset_ids.max())} has no factor; dataset_factors={list(factors)}")
    per_item = torch.as_tensor(f[dataset_ids], dtype=torch.float64)
    whole = torch.floor(per_item)
    extra = (torch.rand(len(per_item), generator=generator, dtype=torch.float64) < per_item - whole).double()
    counts = (whole + extra).long()
    indices = torch.repeat_interleave(torch.arange(len(per_item)), counts)
    return indices[torch.randperm(len(indices), generator=generator)]


class RepeatFactorSampler(Sampler):
    """Epoch ``e`` = :func:`repeat_indices` with a generator seeded by ``(seed, e)``."""

    def __init__(self, dataset_ids, factors, seed: int = 0):
        self.dataset_ids = np.asarray(dataset_ids)
        self.factors = list(factors)
        _check_factors(self.factors, len(self.factors))
        self.seed, self.epoch = int(seed), 0
        self._length = int(sum(math.floor(self.factors[d]) for d in self.dataset_ids))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return repeat_indices(self.dataset_ids, self.factors, g)

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return self._length


def sampling_probabilities(dataset_ids: np.ndarray, factors: Sequence[float], classes: Sequence[np.ndarray] | None = None,
                           *, class_aware: bool = False) -> np.ndarray:
    """Probability (N,) of drawing each item (see the module docstring).

    Parameters
    ----------
    dataset_ids : array (N,) of int
    factors : sequence of float
        ``f_d`` per dataset.
    classes : sequence of arrays, optional
        Local classes of each item's boxes (needed for ``class_aware``).
    class_aware : bool
    """
    dataset_ids = np.asarray(dataset_ids)
    num = len(factors)
    f = _check_factors(factors, num)
    if dataset_ids.size and int(dataset_ids.max()) >= num:
        raise ValidationError(f"dataset_factors has {num} values; expected one per dataset ({int(dataset_ids.max()) + 1})")
    sizes = np.bincount(dataset_ids, minlength=num).astype(float)
    share = f * sizes
    share = share / share.sum()
    p = np.zeros(len(dataset_ids))
    for d in range(num):
        items = np.flatnonzero(dataset_ids == d)
        if items.size == 0 or share[d] == 0:
            continue
        if not class_aware:
            p[items] = share[d] / items.size
            continue
        if classes is None:
            raise ValidationError("class_aware sampling needs the classes of every item")
        holders: dict[int, list[int]] = {}
        for i in items:
            for c in np.unique(np.asarray(classes[i])):
                holders.setdefault(int(c), []).append(int(i))
        if not holders:
            raise ValidationError(f"class_aware sampling: dataset {d} has no boxes")
        for members in holders.values():
            p[members] += share[d] / (len(holders) * len(members))
    return p / p.sum()


class WeightedDatasetSampler(Sampler):
    """``num_samples`` draws with replacement from :func:`sampling_probabilities`, seeded by ``(seed, epoch)``."""

    def __init__(self, dataset_ids, factors, classes=None, *, class_aware: bool = False, num_samples: int | None = None,
                 seed: int = 0):
        self.probabilities = torch.as_tensor(sampling_probabilities(dataset_ids, factors, classes,
                                                                    class_aware=class_aware))
        self.num_samples = int(num_samples or len(self.probabilities))
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.multinomial(self.probabilities, self.num_samples, replacement=True, generator=g).tolist())

    def __len__(self) -> int:
        return self.num_samples
