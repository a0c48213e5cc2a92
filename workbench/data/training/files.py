"""A labelled dataset of image files, and the ``TrainingData`` that the benchmarks' loaders build of two."""

from __future__ import annotations

import hashlib

import numpy as np
from torch.utils.data import Dataset

from workbench.data.training.transforms import image_transforms
from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing


class ImageFiles(Dataset):
    """Images read from ``paths`` (RGB) and transformed; item ``(tensor (3, H, W), label)``.

    Parameters
    ----------
    paths : sequence of path-like
    targets : sequence of int
        The label of each image.
    transform : callable
        PIL image -> tensor.
    boxes : array-like of shape (N, 4), optional
        An annotated object box per image, ``(x1, y1, x2, y2)`` in original pixels (NaN where
        none); kept as :attr:`boxes` (float64), not used by ``__getitem__``.
    """

    def __init__(self, paths, targets, transform, boxes=None):
        self.paths = [str(p) for p in paths]
        self.targets = [int(t) for t in targets]
        self.transform = transform
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(len(self.paths), 4)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), self.targets[i]


def image_files_data(name: str, splits: dict, classes, *, size: int, resize, augmentation: str | None,
                     augment: bool, annotations_digest: str, description: str):
    """A :class:`~workbench.data.training.TrainingData` of image files, ImageNet-normalised.

    Parameters
    ----------
    name : str
        The registered dataset name.
    splits : dict
        ``{"train": (paths, targets, boxes or None), "test": (...)}``.
    classes : sequence of str
        Class names, indexed by label.
    size, resize, augmentation
        The view (:func:`~workbench.data.training.transforms.image_transforms`); ``augmentation``
        applies to ``train`` only when ``augment``.
    annotations_digest : str
        sha256 hex digest of the annotation files. The fingerprint hashes it with ``size`` and
        ``resize`` (not the augmentation), so two views of the same files differ.
    description : str
        Source and split sizes; the view is appended.
    """
    from workbench.data.training.base import TrainingData

    train_tf, test_tf = image_transforms(size, resize, augmentation if augment else None)
    (train_paths, train_targets, train_boxes), (test_paths, test_targets, test_boxes) = splits["train"], splits["test"]
    train = ImageFiles(train_paths, train_targets, train_tf, boxes=train_boxes)
    test = ImageFiles(test_paths, test_targets, test_tf, boxes=test_boxes)
    view = f"{size} px (test: resize {resize}, centre crop {size})"
    fingerprint = hashlib.sha256(f"{annotations_digest}\n{view}".encode()).hexdigest()
    return TrainingData(
        name=name, train=train, test=test, num_classes=len(classes), classes=tuple(classes),
        preprocessing=Preprocessing(input_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    resize_size=resize if isinstance(resize, int) else None),
        fingerprint=fingerprint,
        description=f"{description}; {view}; train augmentation: {augmentation if augment else 'none'}")
