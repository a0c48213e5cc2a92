"""MADAv2's CutMix bank (AEL's ACM, :mod:`workbench.methods.mada.cutmix`) against loops written from the
reference code (munanning/MADAv2 ``models/utils.py``: ``init_cutmix``, ``generate_cutmix`` with ``no_pad`` /
``no_slim``, ``update_cutmix_bank``, ``generate_unsup_data``; ``utils/utils.py``: ``sample_from_bank``).
The regions are found by a flood fill written here (8-connected, numbered in raster order as skimage's
``label``); random draws are the same torch draws on both sides. Exact on boxes, tables and pixels.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from workbench.methods.mada import cutmix


def _reference_init_cutmix(h: int, draws) -> tuple[int, int, int, int]:
    """init_cutmix(h) with its 3 uniforms given: mask_props 0.5, sizes and positions np.round-ed, w = h."""
    y_props = np.exp(draws[0] * np.log(0.5))
    sizes = np.round(np.array([y_props, 0.5 / y_props]) * np.array((h, h)))
    positions = np.round((np.array((h, h)) - sizes) * np.array(draws[1:]))
    return tuple(int(v) for v in np.append(positions, positions + sizes))


def _regions(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected regions of a boolean map, in raster order of their first pixel."""
    seen, regions = np.zeros_like(mask, bool), []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start], queue, pixels = True, deque([start]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    q = (y + dy, x + dx)
                    if 0 <= q[0] < mask.shape[0] and 0 <= q[1] < mask.shape[1] and mask[q] and not seen[q]:
                        seen[q] = True
                        queue.append(q)
        regions.append(pixels)
    return regions


def _reference_cutmix_box(pred: np.ndarray, cat: int) -> tuple[int, int, int, int]:
    """generate_cutmix_mask(no_pad, no_slim): shuffled regions of cat, the first > 0.005 h^2 -> its bbox."""
    h = pred.shape[0]
    if cat not in np.unique(pred):
        return _reference_init_cutmix(h, torch.rand(3).tolist())
    regions = _regions(pred == cat)
    for value in (torch.randperm(len(regions)) + 1).tolist():
        pixels = np.array(regions[value - 1])
        if len(pixels) > 0.005 * h ** 2:
            return (int(pixels[:, 0].min()), int(pixels[:, 1].min()), int(pixels[:, 0].max()) + 1,
                    int(pixels[:, 1].max()) + 1)
    return _reference_init_cutmix(h, torch.rand(3).tolist())


def _blobs(seed: int) -> torch.Tensor:
    """A 32 x 48 class map: class 0 background, classes 1-3 in rectangles (several regions each, some
    under 0.005 x 32^2 = 5.1 pixels), class 4 in 2 regions of 2 pixels (only small ones)."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.zeros(32, 48, dtype=torch.long)
    for _ in range(12):
        y, x = torch.randint(0, 30, (1,), generator=g).item(), torch.randint(0, 46, (1,), generator=g).item()
        hh, ww = torch.randint(1, 9, (2,), generator=g).tolist()
        pred[y:y + hh, x:x + ww] = torch.randint(1, 4, (1,), generator=g).item()
    pred[0, :2] = pred[-1, -2:] = 4
    return pred


def test_random_box_is_init_cutmix():
    g = torch.Generator().manual_seed(0)
    for h in (32, 64, 512):
        for draws in torch.rand(20, 3, generator=g).tolist():
            box = cutmix.random_box(h, draws)
            assert box == _reference_init_cutmix(h, draws)
            assert (box[2] - box[0]) * (box[3] - box[1]) == pytest.approx(0.5 * h * h, rel=0.1)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_box_is_the_bounding_box_of_a_random_large_region(seed):
    pred = _blobs(seed)
    for cat in range(6):  # 4: no region large enough, 5: absent -> a random box
        torch.manual_seed(seed)
        expected = _reference_cutmix_box(pred.numpy(), cat)
        torch.manual_seed(seed)
        assert cutmix.cutmix_box(pred, cat) == expected


def test_the_bank_is_rewritten_and_drawn_as_the_reference():
    g = torch.Generator().manual_seed(1)
    pred = torch.randint(0, 6, (2, 16, 24), generator=g)
    pred[0, :, :20] = 0  # image 0: classes 1-5 on 4 columns; class 5 on 3 pixels, under 0.01 x 24^2 = 5.76
    pred[0][pred[0] == 5] = 0
    pred[0, 0, 20:23] = 5
    bank = cutmix.CutMixBank(6, 10)
    bank.table[:, 3] = True
    bank.update(3, pred[0])
    bank.update(7, pred[1])
    for image, index in ((pred[0], 3), (pred[1], 7)):  # update_cutmix_bank's loop, area_all = w^2
        for idx in range(6):
            expected = idx in torch.unique(image) and int((image == idx).sum()) >= 0.01 * image.shape[-1] ** 2
            assert bool(bank.table[idx, index]) == expected
    assert bank.table[:, [0, 1, 2, 4, 5, 6, 8, 9]].sum() == 0
    criterion = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    expected_p = np.exp(1 - criterion.numpy()) / np.exp(1 - criterion.numpy()).sum()  # sample_from_bank
    assert cutmix.class_probabilities(criterion).numpy() == pytest.approx(expected_p, abs=1e-7)
    torch.manual_seed(0)
    draws = [bank.draw(criterion) for _ in range(3000)]
    for index, cls in draws:  # an image whose entry holds the class, or any image when none does
        assert bank.table[cls, index] or not bank.table[cls].any()
    shared = [index for index, cls in draws if bank.table[cls, [3, 7]].all()]  # uniform among the holders
    assert len(shared) > 1000 and np.mean(np.array(shared) == 3) == pytest.approx(0.5, abs=0.05)
    counts = np.bincount([cls for _, cls in draws], minlength=6) / len(draws)
    assert counts == pytest.approx(expected_p, abs=0.03)


def test_swap_box_is_generate_unsup_data():
    g = torch.Generator().manual_seed(2)
    pair = torch.randn(2, 3, 8, 12, generator=g)
    mask = cutmix.box_mask((8, 12), (2, 3, 6, 11))
    got = cutmix.swap_box(pair, mask)
    for i in range(2):  # data[i] * (1 - m) + data[(i + 1) % 2] * m
        assert torch.equal(got[i], pair[i] * (1 - mask) + pair[(i + 1) % 2] * mask)
    assert torch.equal(got[0, :, 2:6, 3:11], pair[1, :, 2:6, 3:11]) and torch.equal(got[0, :, :2], pair[0, :, :2])
