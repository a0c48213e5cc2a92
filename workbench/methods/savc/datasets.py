"""CUB-200-2011 and miniImageNet as the FSCIL benchmarks lay them out (the CEC / SAVC data folders).

CUB-200 (``root`` holds ``CUB_200_2011/``, the official archive extracted)::

    CUB_200_2011/images.txt               "<id> <relative path>"   (e.g. "1 001.Black_footed_Albatross/x.jpg")
    CUB_200_2011/train_test_split.txt     "<id> <1 = train, 0 = test>"
    CUB_200_2011/image_class_labels.txt   "<id> <class, 1..200>"
    CUB_200_2011/images/<relative path>

Labels are ``class - 1``; items are in increasing id. Train: random resized crop to 224 px and
horizontal flip; test: resize to 256 px, centre crop 224 px; ImageNet mean/std.

miniImageNet (``root`` holds ``miniimagenet/``)::

    miniimagenet/split/train.csv, test.csv   header line, then "<file name>,<wnid>"
    miniimagenet/images/<file name>

Labels number the wnids of ``train.csv`` in order of first appearance (the reference code's
rule; the FSCIL lists put the 60 base classes first); ``test.csv`` must use the same wnids.
Train: random resized crop to 84 px and flip; test: resize to 92 px, centre crop 84 px.

Both datasets' training split has a ``paths`` attribute that :func:`~.fscil.read_split` matches
the split files' path lines against. The fingerprint hashes the index files (not the images).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from workbench.data.training.files import ImageFiles
from workbench.errors import DataError
from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing


def _transforms(size: int, resize: int, augment: bool):
    import torch
    from torchvision.transforms import v2

    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train = v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), *tail] if augment
                       else [v2.Resize(resize), v2.CenterCrop(size), *tail])
    test = v2.Compose([v2.Resize(resize), v2.CenterCrop(size), *tail])
    return train, test


def load_cub200(root: str | os.PathLike | None, *, augment: bool = True):
    """CUB-200-2011 (5,994 train / 5,794 test images, 200 classes) as a ``TrainingData``, read by
    :func:`workbench.data.training.cub200.read_cub200`."""
    from workbench.data.training.base import TrainingData
    from workbench.data.training.cub200 import read_cub200

    cub = read_cub200(root)
    (train_paths, train_targets, _), (test_paths, test_targets, _) = cub.splits["train"], cub.splits["test"]
    train_tf, test_tf = _transforms(224, 256, augment)
    return TrainingData(
        name="cub200", train=ImageFiles(train_paths, train_targets, train_tf),
        test=ImageFiles(test_paths, test_targets, test_tf),
        num_classes=len(cub.classes), classes=cub.classes,
        preprocessing=Preprocessing(input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        fingerprint=cub.fingerprint,
        description=f"CUB-200-2011 from {cub.folder}: train {len(train_paths):,} / test {len(test_paths):,}")


def _read_csv(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist; expected the miniImageNet split file (header, then "
                        "'<file name>,<wnid>' lines)")
    lines = [line.strip() for line in path.read_text().splitlines()][1:]
    rows = []
    for lineno, line in enumerate(lines, 2):
        if not line:
            continue
        parts = line.split(",")
        if len(parts) != 2:
            raise DataError(f"{path} line {lineno}: {line!r}; expected '<file name>,<wnid>'")
        rows.append((parts[0], parts[1]))
    return rows


def load_mini_imagenet(root: str | os.PathLike | None, *, augment: bool = True):
    """miniImageNet (100 classes, 84 px) as a ``TrainingData``."""
    from workbench.data.training.base import TrainingData

    if root is None:
        raise DataError("dataset 'mini_imagenet' needs data_root: the folder holding miniimagenet/")
    folder = Path(root) / "miniimagenet"
    train_rows = _read_csv(folder / "split" / "train.csv")
    test_rows = _read_csv(folder / "split" / "test.csv")
    wnids: dict[str, int] = {}
    for _, wnid in train_rows:
        wnids.setdefault(wnid, len(wnids))
    unknown = sorted({w for _, w in test_rows} - set(wnids))
    if unknown:
        raise DataError(f"{folder / 'split' / 'test.csv'} has wnid(s) {unknown[:5]} that train.csv lacks")

    def items(rows):
        return [str(folder / "images" / name) for name, _ in rows], [wnids[w] for _, w in rows]

    train_tf, test_tf = _transforms(84, 92, augment)
    digest = hashlib.sha256(b"mini_imagenet/v1")
    for f in ("train.csv", "test.csv"):
        digest.update((folder / "split" / f).read_bytes())
    return TrainingData(
        name="mini_imagenet", train=ImageFiles(*items(train_rows), train_tf),
        test=ImageFiles(*items(test_rows), test_tf),
        num_classes=len(wnids), classes=tuple(wnids),
        preprocessing=Preprocessing(input_size=84, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        fingerprint=digest.hexdigest(),
        description=f"miniImageNet from {folder}: train {len(train_rows):,} / test {len(test_rows):,}")


#: Datasets of this package (the others come from :func:`workbench.data.training.load_training_data`).
LOADERS = {"cub200": load_cub200, "mini_imagenet": load_mini_imagenet}
