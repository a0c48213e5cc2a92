"""A labelled dataset of image files: what the fine-grained and few-shot benchmarks' loaders return."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset


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
