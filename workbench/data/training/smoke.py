"""A few generated images in a dataset's real on-disk format, for ``workbench train --smoke``.

Each writer puts a tiny copy of a dataset into ``folder`` in exactly the layout its loader
reads (the ``workbench.data.training`` docstring), with every class of the real dataset (so
that a network trained on it has the paper's output width) and random-noise images drawn by
``numpy.random.default_rng(seed)``, and returns the folder to pass as the loader's ``root``:

=============  ==================================================================  ===============
dataset        files written                                                         images
=============  ==================================================================  ===============
imagenet       ``train/<wnid>/<wnid>_<i>.JPEG``, ``val/<wnid>/ILSVRC2012_val_*.JPEG``  1 + 1 per class
cifar10        ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``   pickles, 32 px
cifar100       ``cifar-100-python/{train, test, meta}``                              pickles, 32 px
cub200         ``CUB_200_2011/{images.txt, image_class_labels.txt,                   JPEGs
               train_test_split.txt, bounding_boxes.txt, classes.txt, images/}``
=============  ==================================================================  ===============

:func:`write_fscil_split` writes a few-shot class-incremental split in the reference's
``session_<n>.txt`` format (indices for CIFAR-100, image paths for CUB-200) with the
reference's session layout (:data:`FSCIL_SESSIONS`). Nothing here is a benchmark: the images
are noise, only their format and sizes are real.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.errors import ValidationError

#: Image size (width, height) of the generated JPEGs; the loaders resize and crop them to
#: the network's input (224 px for ImageNet and CUB-200).
JPEG_SIZE = (64, 48)
#: Base classes, ways and incremental sessions of the reference FSCIL splits (CEC's
#: ``data/index_list/<dataset>/session_*.txt``, used by SAVC).
FSCIL_SESSIONS = {"cifar100": (60, 5, 8), "cub200": (100, 10, 10), "mini_imagenet": (60, 5, 8)}


def _noise_jpeg(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (JPEG_SIZE[1], JPEG_SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_imagenet(folder: str | os.PathLike, *, classes: int = 1000, seed: int = 0) -> Path:
    """An ImageFolder tree ``folder/imagenet/{train,val}/<wnid>/``: one JPEG per class and split.

    The class folders are ``n00000000 .. n<classes-1>`` (WordNet-id-like names), as many as
    ILSVRC-2012 has by default. Returns ``folder/imagenet``.
    """
    root = Path(folder) / "imagenet"
    rng = np.random.default_rng(seed)
    for c in range(classes):
        wnid = f"n{c:08d}"
        _noise_jpeg(root / "train" / wnid / f"{wnid}_{c}.JPEG", rng)
        _noise_jpeg(root / "val" / wnid / f"ILSVRC2012_val_{c + 1:08d}.JPEG", rng)
    return root


def _dump(path: Path, payload: dict) -> None:
    path.write_bytes(pickle.dumps(payload, protocol=2))


def _cifar_batch(rng: np.random.Generator, labels: list[int], label_key: bytes, title: str) -> dict:
    data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    return {b"batch_label": title.encode(), b"data": data, label_key: list(labels),
            b"filenames": [f"smoke_{i}.png".encode() for i in range(len(labels))]}


def write_cifar(folder: str | os.PathLike, name: str, *, train_per_class: int = 1, seed: int = 0) -> Path:
    """The "python version" pickles of CIFAR-10 or CIFAR-100 under ``folder/<name>``.

    ``train_per_class`` training images of every class (labels in class order, CIFAR-10's
    spread over its five batch files in turn) and one test image per class, pickled with
    protocol 2 and bytes keys as the official archives are. Returns ``folder/<name>``.
    """
    if name not in ("cifar10", "cifar100"):
        raise ValidationError(f"write_cifar: name is {name!r}; expected 'cifar10' or 'cifar100'")
    root = Path(folder) / name
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    train_labels = [c for c in range(classes) for _ in range(train_per_class)]
    test_labels = list(range(classes))
    if name == "cifar10":
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True)
        for b in range(5):
            _dump(base / f"data_batch_{b + 1}",
                  _cifar_batch(rng, train_labels[b::5], b"labels", f"training batch {b + 1} of 5"))
        _dump(base / "test_batch", _cifar_batch(rng, test_labels, b"labels", "testing batch 1 of 1"))
        _dump(base / "batches.meta", {b"label_names": [f"class_{c}".encode() for c in range(classes)],
                                      b"num_cases_per_batch": 10000, b"num_vis": 3072})
        return root
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for split, labels in (("train", train_labels), ("test", test_labels)):
        batch = _cifar_batch(rng, labels, b"fine_labels", f"{split}ing batch 1 of 1")
        batch[b"coarse_labels"] = [c // 5 for c in labels]
        _dump(base / split, batch)
    _dump(base / "meta", {b"fine_label_names": [f"class_{c:03d}".encode() for c in range(classes)],
                          b"coarse_label_names": [f"super_{c:02d}".encode() for c in range(20)]})
    return root


def write_cub200(folder: str | os.PathLike, *, classes: int = 200, test_every: int = 1, seed: int = 0) -> Path:
    """CUB-200-2011's files under ``folder/cub200/CUB_200_2011``: one training JPEG per class.

    ``images/<ccc>.Class_<ccc>/Class_<ccc>_<id>.jpg``, listed in ``images.txt``, with
    ``image_class_labels.txt``, ``train_test_split.txt`` (1 = train), ``bounding_boxes.txt``
    (the whole image) and ``classes.txt``; every ``test_every``-th class also has one test
    image. Returns ``folder/cub200`` (the loader's root).
    """
    root = Path(folder) / "cub200"
    base = root / "CUB_200_2011"
    rng = np.random.default_rng(seed)
    rows, names = [], []
    for c in range(1, classes + 1):
        names.append(f"{c:03d}.Class_{c:03d}")
        rows.append((c, 1))
        if (c - 1) % test_every == 0:
            rows.append((c, 0))
    images, labels, split, boxes = [], [], [], []
    for i, (c, is_train) in enumerate(rows, 1):
        path = f"{names[c - 1]}/Class_{c:03d}_{i}.jpg"
        _noise_jpeg(base / "images" / path, rng)
        images.append(f"{i} {path}\n")
        labels.append(f"{i} {c}\n")
        split.append(f"{i} {is_train}\n")
        boxes.append(f"{i} 0.0 0.0 {float(JPEG_SIZE[0])} {float(JPEG_SIZE[1])}\n")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("bounding_boxes.txt", boxes),
                        ("classes.txt", [f"{c} {n}\n" for c, n in enumerate(names, 1)])):
        (base / name).write_text("".join(lines))
    return root


def write_fscil_split(folder: str | os.PathLike, dataset: str, targets, paths=None) -> Path:
    """``session_1.txt .. session_S.txt`` over a training split, in the reference's session layout.

    Session 1 lists every training item of the first ``base`` classes, each later session
    one item of each of its ``ways`` classes (the reference lists 5 shots; one keeps the smoke
    small), as training-split indices, or as ``CUB_200_2011/images/...`` paths when ``paths``
    is given. Returns ``folder``.
    """
    if dataset not in FSCIL_SESSIONS:
        raise ValidationError(f"write_fscil_split: dataset {dataset!r} has no reference session layout; "
                              f"expected one of {sorted(FSCIL_SESSIONS)}")
    base, ways, sessions = FSCIL_SESSIONS[dataset]
    targets = np.asarray(targets)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    groups = [np.flatnonzero(targets < base)]
    for s in range(sessions):
        first = base + s * ways
        groups.append(np.array([np.flatnonzero(targets == c)[0] for c in range(first, first + ways)]))
    for s, indices in enumerate(groups, 1):
        items = [f"CUB_200_2011/images/{Path(paths[i]).parent.name}/{Path(paths[i]).name}" if paths is not None
                 else str(int(i)) for i in indices]
        (folder / f"session_{s}.txt").write_text("".join(f"{item}\n" for item in items))
    return folder
