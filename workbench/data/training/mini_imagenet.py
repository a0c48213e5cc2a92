"""miniImageNet as the few-shot class-incremental (FSCIL) benchmarks lay it out (the CEC / SAVC folders).

``root`` holds ``miniimagenet/`` (default ``$WORKBENCH_DATA/training/mini_imagenet``)::

    miniimagenet/split/train.csv, test.csv   header line, then "<file name>,<wnid>"
    miniimagenet/images/<file name>

Labels number the wnids of ``train.csv`` in order of first appearance (the reference code's
rule; the FSCIL lists put the 60 base classes first); ``test.csv`` must use the same wnids.
Default view: random resized crop to 84 px and flip; test: resize to 92 px, centre crop 84 px;
ImageNet mean/std. Both splits have ``paths`` (matched by :func:`workbench.methods.savc.fscil.read_split`).
The fingerprint hashes the two csv files (not the images) and the view.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.data.training.annotations import hash_files
from workbench.data.training.files import image_files_data
from workbench.errors import DataError


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


def load_mini_imagenet(root: str | os.PathLike | None = None, *, augment: bool = True, size: int = 84,
                       resize: int | tuple[int, int] = 92, augmentation: str = "crop_flip"):
    """miniImageNet (100 classes) as a :class:`~workbench.data.training.TrainingData` (see the module
    docstring; ``size``, ``resize``, ``augmentation``: :func:`~workbench.data.training.transforms.image_transforms`)."""
    from workbench.data.training.base import default_root

    folder = (default_root("mini_imagenet") if root is None else Path(root)) / "miniimagenet"
    train_rows = _read_csv(folder / "split" / "train.csv")
    test_rows = _read_csv(folder / "split" / "test.csv")
    wnids: dict[str, int] = {}
    for _, wnid in train_rows:
        wnids.setdefault(wnid, len(wnids))
    unknown = sorted({w for _, w in test_rows} - set(wnids))
    if unknown:
        raise DataError(f"{folder / 'split' / 'test.csv'} has wnid(s) {unknown[:5]} that train.csv lacks")

    def split(rows):
        return [folder / "images" / name for name, _ in rows], [wnids[w] for _, w in rows], None

    split_digest = hash_files(folder / "split" / "train.csv", folder / "split" / "test.csv")
    return image_files_data(
        "mini_imagenet", {"train": split(train_rows), "test": split(test_rows)}, tuple(wnids), size=size,
        resize=resize, augmentation=augmentation, augment=augment, annotations_digest=split_digest,
        description=(f"miniImageNet ({folder}): {len(wnids)} classes, {len(train_rows):,} train / "
                     f"{len(test_rows):,} test images"))
