"""ImageNet (ILSVRC-2012) as an ImageFolder tree of ``train/<class>/`` and ``val/<class>/``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from workbench.data.training.transforms import image_transforms
from workbench.errors import DataError
from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

#: Side of the square crops the network receives, in pixels.
INPUT_SIZE = 224
#: Test images: shorter side resized to this, then the central INPUT_SIZE crop.
RESIZE_SIZE = 256
SPLITS = ("train", "val")


def layout(root: Path) -> str:
    return (
        f"{root}/train/<class>/<image> and {root}/val/<class>/<image>, the same class "
        "folders (e.g. WordNet ids n01440764, ...) in both; the official validation images "
        "must be sorted into class folders first"
    )


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _listing_fingerprint(root: Path, datasets: dict) -> str:
    """Hex sha256 of the sorted listing (path relative to ``root``, size in bytes) of every
    image of the ``datasets`` (split name to ImageFolder)."""
    listing = []
    for split in SPLITS:
        for path, _ in datasets[split].samples:
            rel = Path(path).relative_to(root).as_posix()
            listing.append(f"{rel}\t{os.stat(path).st_size}\n")
    digest = hashlib.sha256(b"imagenet: ImageFolder listing (relative path, size in bytes)\n")
    for line in sorted(listing):
        digest.update(line.encode())
    return digest.hexdigest()


def load_imagenet(*, root=None, augment: bool = True, download: bool = False):
    """Build the ImageNet :class:`~workbench.data.training.TrainingData` from an ImageFolder tree.

    Parameters
    ----------
    root : path-like, optional
        Folder holding ``train/`` and ``val/``; defaults to ``$WORKBENCH_DATA/training/imagenet``.
    augment : bool, default: True
        Train transform RandomResizedCrop(224) + horizontal flip; otherwise the test transform.
    download : bool, default: False
        Not supported (ImageNet's licence requires a manual download); ignored.

    Raises
    ------
    DataError
        ``root``, ``train/`` or ``val/`` missing, a split without class folders or with an
        empty class folder, or train and val class folders that differ.
    """
    from torchvision.datasets import ImageFolder

    from workbench.data.training.base import TrainingData, default_root

    root = Path(root) if root is not None else default_root("imagenet")
    if not root.is_dir():
        raise DataError(
            f"ImageNet folder {root} does not exist (ImageNet is not downloaded automatically: "
            f"obtain ILSVRC-2012 from https://image-net.org). Expected layout: {layout(root)}"
        )
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(
                f"ImageNet split folder {root / split} does not exist. Expected layout: "
                f"{layout(root)}"
            )
    train_classes, val_classes = (_class_folders(root / s) for s in SPLITS)
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise DataError(
            f"ImageNet class folders differ between {root / 'train'} ({len(train_classes)}) and "
            f"{root / 'val'} ({len(val_classes)}): only in train: {only_train[:5]}"
            f"{' ...' if len(only_train) > 5 else ''}; only in val: {only_val[:5]}"
            f"{' ...' if len(only_val) > 5 else ''}"
        )

    datasets = {}
    transforms = image_transforms(INPUT_SIZE, RESIZE_SIZE, "crop_flip" if augment else None)
    for split, transform in zip(SPLITS, transforms):
        try:
            datasets[split] = ImageFolder(str(root / split), transform=transform)
        except FileNotFoundError as exc:  # no class folder, or a class without images
            raise DataError(f"ImageNet split folder {root / split}: {exc}. Expected layout: "
                            f"{layout(root)}") from exc

    train, test = datasets["train"], datasets["val"]
    aug = ("RandomResizedCrop(224) + horizontal flip" if augment
           else "none (Resize(256) + CenterCrop(224))")
    description = (
        f"ImageNet ImageFolder tree ({root}): train {len(train):,} / val {len(test):,} images "
        f"in {len(train.classes):,} classes; test: Resize(256) + CenterCrop(224); "
        f"train augmentation: {aug}"
    )
    return TrainingData(
        name="imagenet",
        train=train,
        test=test,
        num_classes=len(train.classes),
        classes=tuple(train.classes),
        preprocessing=Preprocessing(input_size=INPUT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    resize_size=RESIZE_SIZE),
        fingerprint=_listing_fingerprint(root, datasets),
        description=description,
    )
