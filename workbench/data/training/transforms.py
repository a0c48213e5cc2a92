"""The image transforms of the file-based training datasets (ImageNet, CUB-200, the fine-grained
benchmarks, miniImageNet), built in one place.

Every pipeline turns a PIL image into a float32 tensor (3, size, size) normalised with ``mean``
and ``std``: ``ToImage`` first (resampling on uint8 tensors, antialiased; only the
``"fine_grained"`` steps run on the PIL image before it, as in their reference, since torchvision
rotates tensors without bicubic interpolation), the geometric and colour steps,
``ToDtype(float32, scale=True)``, ``Normalize``. The test view is ``Resize(resize)``
(an int: the shorter side; a pair: the whole image to that height and width) then
``CenterCrop(size)``; with an int ``resize`` it equals ``Preprocessing(size, resize_size=resize)``.
Random steps draw only from torch's global RNG, so restoring ``torch.set_rng_state`` replays them.

Augmentations (``augmentation``)
--------------------------------
``"crop_flip"``
    ``RandomResizedCrop(size)`` + ``RandomHorizontalFlip()`` (ImageNet, SAVC's recipes).
``"fine_grained"``
    PART's reference recipe (``datasets/make_dataloader.py``): ``Resize(resize)``, horizontal
    flip, ``Pad(10)``, ``RandomCrop(size)``, ``RandomRotation(12)`` (bicubic), with probability
    0.5 ``ColorJitter(0.4, 0.4, 0.3)`` + ``RandomAffine(scale 0.8-1.2, shear 15)``, and after the
    normalisation ``RandomErasing(p=0.5, scale=(0.02, 0.4))``.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from workbench.validation import check_choice

AUGMENTATIONS = ("crop_flip", "fine_grained")


def _augmentation_steps(augmentation: str, size: int, resize) -> tuple[list, list, list]:
    """``(on the PIL image, on the uint8 tensor, after normalisation)`` steps of ``augmentation``."""
    if augmentation == "crop_flip":
        return [], [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()], []
    jitter_affine = v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0),
                                    v2.RandomAffine(degrees=0, scale=(0.8, 1.2), shear=15)], p=0.5)
    return ([v2.Resize(resize), v2.RandomHorizontalFlip(), v2.Pad(10), v2.RandomCrop(size),
             v2.RandomRotation(12, interpolation=v2.InterpolationMode.BICUBIC), jitter_affine], [],
            [v2.RandomErasing(p=0.5, scale=(0.02, 0.4))])


def image_transforms(size: int, resize: int | tuple[int, int], augmentation: str | None, *,
                     mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[v2.Compose, v2.Compose]:
    """The ``(train, test)`` transforms of a dataset (see the module docstring).

    Parameters
    ----------
    size : int
        Side of the square tensor the network receives, in pixels.
    resize : int or (int, int)
        The test view's resize before the centre crop: shorter side, or (height, width).
    augmentation : {"crop_flip", "fine_grained"} or None
        The training augmentation; ``None``: ``train`` is the test view (no randomness).
    mean, std : 3 floats
        Per-channel normalisation of pixel values in [0, 1].

    Returns
    -------
    train, test : torchvision.transforms.v2.Compose
        PIL image -> float32 tensor (3, size, size).
    """
    def pipeline(on_pil: list, on_tensor: list, after: list) -> v2.Compose:
        return v2.Compose([*on_pil, v2.ToImage(), *on_tensor, v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(list(mean), list(std)), *after, v2.ToPureTensor()])

    test = pipeline([], [v2.Resize(resize, antialias=True), v2.CenterCrop(size)], [])
    if augmentation is None:
        return test, test
    check_choice(augmentation, "augmentation", AUGMENTATIONS)
    return pipeline(*_augmentation_steps(augmentation, size, resize)), test
