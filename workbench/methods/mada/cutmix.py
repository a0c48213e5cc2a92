"""AEL's adaptive CutMix (ACM) as MADAv2's stage 2 runs it (munanning/MADAv2: ``step2_train_active_semi_sup.py``;
``models/utils.py``: ``generate_cutmix_mask``, ``generate_cutmix``, ``init_cutmix``, ``update_cutmix_bank``,
``generate_unsup_data``; ``utils/utils.py``: ``sample_from_bank``; configs/active_from_gta_to_city_stage2.yml:
``area_thresh`` 0.005, ``area_thresh2`` 0.01, ``no_pad`` and ``no_slim``).

Each step one unlabelled image is paired with a partner image of the pool drawn through a class
bank: a class c with probability ``softmax(1 - criterion)_c``, then an image whose bank entry holds
c. The teacher predicts both images; a box around a region of c in the partner's prediction (or a
random box) is swapped between the two, images and teacher logits alike, giving two composites;
both images' bank entries are rewritten from the teacher's prediction. Every draw comes from
torch's global RNG (stored by the loop's checkpoints), not Python's or NumPy's as in the reference.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage
import torch

#: ``area_thresh``: a region of the drawn class counts when it covers more than this x H^2 pixels.
REGION_AREA = 0.005
#: ``area_thresh2``: a class enters an image's bank entry when predicted on at least this x W^2 pixels.
BANK_AREA = 0.01

Box = tuple[int, int, int, int]


def class_probabilities(criterion: torch.Tensor) -> torch.Tensor:
    """(C,) the bank's class draw: ``softmax(1 - criterion)`` (``sample_from_bank``, no smoothing)."""
    return (1 - criterion.detach().double().cpu()).softmax(0)


class CutMixBank:
    """The class bank: ``table[c, i]`` is true when the teacher last predicted class c on image i of the pool
    (at least ``BANK_AREA`` x W^2 pixels). Starts empty, as the reference's zeros."""

    def __init__(self, num_classes: int, pool_size: int):
        self.table = torch.zeros(num_classes, pool_size, dtype=torch.bool)

    def draw(self, criterion: torch.Tensor) -> tuple[int, int]:
        """(pool index, class): the class from :func:`class_probabilities`, the image uniform among those
        whose entry holds it, or uniform over the pool when none does."""
        cls = int(torch.multinomial(class_probabilities(criterion), 1))
        holders = self.table[cls].nonzero().flatten()
        if len(holders):
            return int(holders[torch.randint(len(holders), ())]), cls
        return int(torch.randint(self.table.shape[1], ())), cls

    def update(self, index: int, predicted: torch.Tensor) -> None:
        """Rewrite image ``index``'s entry from its predicted classes (H, W)."""
        counts = torch.bincount(predicted.flatten().cpu(), minlength=self.table.shape[0])[:self.table.shape[0]]
        self.table[:, index] = counts >= BANK_AREA * predicted.shape[-1] ** 2  # > 0: only present classes

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"table": self.table.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.table.copy_(state["table"])


def random_box(height: int, draws) -> Box:
    """``init_cutmix``: a box (y0, x0, y1, x1) of area 0.5 x height^2 in the height x height square at the
    top left (as run: both sides scaled by the height); ``draws``: 3 uniforms in [0, 1) (side ratio, y, x)."""
    y_side = math.exp(draws[0] * math.log(0.5))
    sizes = (round(y_side * height), round(0.5 / y_side * height))
    y0, x0 = (round((height - size) * u) for size, u in zip(sizes, draws[1:]))
    return y0, x0, y0 + sizes[0], x0 + sizes[1]


def cutmix_box(predicted: torch.Tensor, cls: int) -> Box:
    """``generate_cutmix_mask`` with ``no_pad`` and ``no_slim``: the bounding box (y0, x0, y1, x1, ends
    exclusive) of the first, in a random order, 8-connected region of ``cls`` in ``predicted`` (H, W) larger
    than ``REGION_AREA`` x H^2 pixels; a :func:`random_box` when ``cls`` is absent or no region is that large."""
    height = predicted.shape[0]
    regions, count = scipy.ndimage.label((predicted == cls).cpu().numpy(), structure=np.ones((3, 3)))
    if count:
        sizes = np.bincount(regions.ravel())
        for label in (torch.randperm(count) + 1).tolist():
            if sizes[label] > REGION_AREA * height ** 2:
                rows, cols = scipy.ndimage.find_objects(regions)[label - 1]
                return rows.start, cols.start, rows.stop, cols.stop
    return random_box(height, torch.rand(3).tolist())


def box_mask(shape, box: Box, device=None) -> torch.Tensor:
    """(H, W) float mask, 1 inside ``box`` (y0, x0, y1, x1; clipped to the image)."""
    mask = torch.zeros(tuple(shape), device=device)
    y0, x0, y1, x1 = box
    mask[y0:y1, x0:x1] = 1
    return mask


def swap_box(pair: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``generate_unsup_data`` on a pair (2, ...): item i keeps itself outside ``mask`` (H, W) and takes the
    other item inside it."""
    return pair * (1 - mask) + pair.flip(0) * mask
