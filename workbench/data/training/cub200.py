"""CUB-200-2011 in its official layout, read once for every method that trains on it.

``root/CUB_200_2011/``: ``images.txt`` ("<id> <path>"), ``image_class_labels.txt`` ("<id>
<class 1..200>"), ``train_test_split.txt`` ("<id> <1 train / 0 test>"), optional
``bounding_boxes.txt`` ("<id> <x> <y> <width> <height>", float pixels) and ``classes.txt``
("<class> <name>"), images under ``CUB_200_2011/images/``; 5,994 train / 5,794 test images.
:func:`load_cub200` (registered as ``cub200``) serves every method, at the view it asks for:
SAVC's 224 px with random resized crops (the defaults), PART's 448 px fine-grained recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data.training.annotations import hash_files, parse_int, read_fields
from workbench.data.training.files import image_files_data
from workbench.errors import DataError


@dataclass(frozen=True)
class Cub200:
    """The annotations of CUB-200-2011.

    Attributes
    ----------
    folder : Path
        ``root/CUB_200_2011``.
    splits : dict
        ``{"train": (paths, targets, boxes), "test": (...)}``, images in increasing id; targets
        are ``class - 1``; boxes (N, 4) ``(x1, y1, x2, y2)`` in pixels, NaN without
        ``bounding_boxes.txt``.
    classes : tuple of str
        Class names from ``classes.txt``, else ``"1" .. "C"``.
    fingerprint : str
        SHA-256 of the annotation files (not the images).
    """

    folder: Path
    splits: dict
    classes: tuple
    fingerprint: str


def read_cub200(root: str | os.PathLike | None) -> Cub200:
    """Read the annotation files under ``root/CUB_200_2011``.

    Raises
    ------
    DataError
        ``root`` is None, a file is missing or malformed (file, line and expected format
        named), an image id lacks a class or split line, or a split is not 0 or 1.
    """
    if root is None:
        raise DataError("CUB-200-2011 needs data_root: the folder holding CUB_200_2011/")
    base = Path(root) / "CUB_200_2011"
    files = {k: base / f for k, f in (("images", "images.txt"), ("labels", "image_class_labels.txt"),
                                      ("split", "train_test_split.txt"), ("boxes", "bounding_boxes.txt"))}
    images = {parse_int(i, files["images"], "image id"): p
              for i, p in read_fields(files["images"], "CUB-200-2011 images.txt ('<id> <path>')", 2)}
    labels = {parse_int(i, files["labels"], "image id"): parse_int(c, files["labels"], "class")
              for i, c in read_fields(files["labels"], "CUB-200-2011 image_class_labels.txt ('<id> <class>')", 2)}
    split = {parse_int(i, files["split"], "image id"): s.strip()
             for i, s in read_fields(files["split"], "CUB-200-2011 train_test_split.txt ('<id> <0|1>')", 2)}
    boxes = {}
    if files["boxes"].is_file():
        for i, *xywh in read_fields(files["boxes"], "CUB-200-2011 bounding_boxes.txt ('<id> <x> <y> <w> <h>')", 5):
            x, y, w, h = (float(v) for v in xywh)
            boxes[int(i)] = (x, y, x + w, y + h)
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", split)):
        missing = sorted(set(images) - set(table))
        if missing:
            raise DataError(f"{base / name} lacks image id(s) {missing[:5]} listed in {files['images']}")
    bad = sorted(set(split.values()) - {"0", "1"})
    if bad:
        raise DataError(f"{files['split']}: split values {bad}; expected 1 (train) or 0 (test)")
    classes = tuple(str(c) for c in range(1, max(labels.values()) + 1))
    classes_file = base / "classes.txt"
    if classes_file.is_file():
        classes = tuple(n for _, n in read_fields(classes_file, "CUB-200-2011 classes.txt ('<class> <name>')", 2))
    splits = {}
    for key, flag in (("train", "1"), ("test", "0")):
        ids = [i for i in sorted(images) if split[i] == flag]
        splits[key] = ([base / "images" / images[i] for i in ids], [labels[i] - 1 for i in ids],
                       np.array([boxes.get(i, (np.nan,) * 4) for i in ids], dtype=np.float64).reshape(-1, 4))
    return Cub200(base, splits, classes, hash_files(*files.values()))


def load_cub200(root: str | os.PathLike | None = None, *, augment: bool = True, size: int = 224,
                resize: int | tuple[int, int] = 256, augmentation: str = "crop_flip"):
    """CUB-200-2011 as a :class:`~workbench.data.training.TrainingData`, with the object boxes.

    Parameters
    ----------
    root : path-like, optional
        The folder holding ``CUB_200_2011/``; default ``$WORKBENCH_DATA/training/cub200``.
    augment : bool, default: True
        Apply ``augmentation`` to the training split.
    size, resize, augmentation
        The view (:func:`~workbench.data.training.transforms.image_transforms`): 224 px, test
        resize 256, ``"crop_flip"`` by default (SAVC); PART asks for 448, (512, 512),
        ``"fine_grained"``. The fingerprint differs between sizes.

    Both splits keep ``boxes`` (N, 4), ``(x1, y1, x2, y2)`` in original pixels (NaN without
    ``bounding_boxes.txt``), and ``paths``.
    """
    from workbench.data.training.base import default_root

    cub = read_cub200(default_root("cub200") if root is None else root)
    return image_files_data(
        "cub200", cub.splits, cub.classes, size=size, resize=resize, augmentation=augmentation, augment=augment,
        annotations_digest=cub.fingerprint,
        description=(f"CUB-200-2011 ({cub.folder}): {len(cub.classes)} classes, {len(cub.splits['train'][0]):,} "
                     f"train / {len(cub.splits['test'][0]):,} test images"))
