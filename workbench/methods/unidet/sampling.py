"""Multi-dataset sampling: per-dataset re-sampling factors and a class-aware sampler.

- :func:`repeat_indices` / :class:`RepeatFactorSampler`: every image of dataset ``d`` appears
  ``f_d`` times per epoch (the reference repeats COCO x4, OpenImages x1, Mapillary Vistas x8 in
  ``configs/rvc/``, mmdetection's ``RepeatDataset`` inside a ``ConcatDataset``); a fractional
  factor repeats ``floor(f_d)`` times plus once more with probability ``frac(f_d)``.
- :func:`sampling_probabilities` / :class:`WeightedDatasetSampler`: draws with replacement,
  dataset ``d`` with probability ``f_d n_d / sum_e f_e n_e`` (the same expected share as the
  repeats) and, within a dataset, either uniformly or *class-aware* (mmdetection's
  ``ClassAwareSampler``, applied per dataset): a class of the dataset uniformly,
  then an image containing it uniformly, so an image's probability is
  ``sum_{c in image} 1 / (K_d n_{d,c})``; images without boxes are never drawn then.
- ``across_datasets=True`` (with ``class_aware``): the reference's rule (``configs/rvc/``:
  ``class_aware_sampler`` over the whole ``ConcatDataset`` of the three ``RepeatDataset``, its
  ``mmdet/datasets/samplers/class_aware_sampler.py``): the classes are the *unified* ones and every
  repeated copy is an entry, so an image of dataset ``d`` has probability
  ``f_d sum_{c in image} 1 / (K n_c)`` with ``n_c = sum_{images j with c} f_{d(j)}`` and ``K`` the
  classes with an image; the dataset shares follow from the classes, not from ``f_d n_d``. The
  reference cycles through shuffled class and image lists; here the draws are independent with
  the same expected frequencies.

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


def _class_holders(items, classes) -> dict[int, list[int]]:
    """``{class: [items with a box of it]}`` over ``items`` (each item once per class)."""
    holders: dict[int, list[int]] = {}
    for i in items:
        for c in np.unique(np.asarray(classes[i])):
            holders.setdefault(int(c), []).append(int(i))
    return holders


def _across_datasets(f_item: np.ndarray, classes: Sequence[np.ndarray]) -> np.ndarray:
    """The reference's rule: ``f_i sum_{c in i} 1 / (K n_c)``, ``n_c`` the repeated entries holding ``c``."""
    holders = _class_holders(np.flatnonzero(f_item > 0), classes)
    if not holders:
        raise ValidationError("class_aware_concat sampling: no item of a dataset with a factor > 0 has a box; "
                              "class-aware draws need boxes (sampler 'repeat' or 'weighted' do not)")
    p = np.zeros(len(f_item))
    for members in holders.values():
        p[members] += f_item[members] / (len(holders) * f_item[members].sum())
    return p


def sampling_probabilities(dataset_ids: np.ndarray, factors: Sequence[float], classes: Sequence[np.ndarray] | None = None,
                           *, class_aware: bool = False, across_datasets: bool = False) -> np.ndarray:
    """Probability (N,) of drawing each item (see the module docstring).

    Parameters
    ----------
    dataset_ids : array (N,) of int
    factors : sequence of float
        ``f_d`` per dataset.
    classes : sequence of arrays, optional
        Classes of each item's boxes (needed for ``class_aware``): local to its dataset, or in the
        unified label space with ``across_datasets``.
    class_aware : bool
    across_datasets : bool
        With ``class_aware``: one class-aware draw over the concatenation of the repeated
        datasets (the reference), instead of dataset shares ``f_d n_d`` and classes within each.
    """
    dataset_ids = np.asarray(dataset_ids)
    num = len(factors)
    f = _check_factors(factors, num)
    if dataset_ids.size and int(dataset_ids.max()) >= num:
        raise ValidationError(f"dataset_factors has {num} values; expected one per dataset ({int(dataset_ids.max()) + 1})")
    if class_aware and classes is None:
        raise ValidationError("class_aware sampling needs the classes of every item")
    if class_aware and across_datasets:
        p = _across_datasets(f[dataset_ids], classes)
        return p / p.sum()
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
        holders = _class_holders(items, classes)
        if not holders:
            raise ValidationError(f"class_aware sampling: dataset {d} has no boxes; class-aware draws need boxes "
                                  "(give it factor 0, or use sampler 'repeat' or 'weighted')")
        for members in holders.values():
            p[members] += share[d] / (len(holders) * len(members))
    return p / p.sum()


class WeightedDatasetSampler(Sampler):
    """``num_samples`` draws with replacement from :func:`sampling_probabilities`, seeded by ``(seed, epoch)``."""

    def __init__(self, dataset_ids, factors, classes=None, *, class_aware: bool = False, across_datasets: bool = False,
                 num_samples: int | None = None, seed: int = 0):
        self.probabilities = torch.as_tensor(sampling_probabilities(dataset_ids, factors, classes,
                                                                    class_aware=class_aware,
                                                                    across_datasets=across_datasets))
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
