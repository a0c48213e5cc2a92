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
gta5 +         ``gta5/{images,labels}/NNNNN.png``, Cityscapes' ``leftImg8bit/`` and  PNGs
cityscapes     ``gtFine/{train,val}/<city>/``                                        (MADA)
coco + oid +   COCO ``instances_*.json``, OpenImages' class and box CSVs, Vistas'      JPEGs
vistas         ``config.json`` and panoptic JSON, and a label map                    (Large-UniDet)
=============  ==================================================================  ===============

:func:`write_fscil_split` writes a few-shot class-incremental split in the reference's
``session_<n>.txt`` format (indices for CIFAR-100, image paths for CUB-200) with the
reference's session layout (:data:`FSCIL_SESSIONS`). Nothing here is a benchmark: the images
are noise, only their format and sizes are real.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import yaml
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


def _label_png(path: Path, ids: np.ndarray) -> None:
    """An 8-bit label-id PNG (a palette image, as GTA5's; Cityscapes' are greyscale: same indices)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette([v for i in range(256) for v in (i, i, i)])
    image.save(path)


def write_gta5_cityscapes(folder: str | os.PathLike, *, source: int = 4, target: int = 4, val: int = 2,
                          seed: int = 0) -> tuple[Path, Path]:
    """GTA5 and Cityscapes folders (MADA's ``gta5_cityscapes``): ``(folder/gta5, folder/cityscapes)``.

    ``gta5/images/NNNNN.png`` with ``gta5/labels/NNNNN.png`` (palette PNGs of Cityscapes label
    ids), ``cityscapes/leftImg8bit/{train,val}/smoke/smoke_NNNNNN_000019_leftImg8bit.png`` with
    ``cityscapes/gtFine/.../*_gtFine_labelIds.png``; label ids drawn among the 19 evaluated
    classes' ids and 0 (unlabelled), images :data:`JPEG_SIZE` noise (the loader resizes them).
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    ids = np.array([0, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33])
    width, height = JPEG_SIZE

    def pair(image: Path, label: Path) -> None:
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(image)
        _label_png(label, ids[rng.integers(0, len(ids), (height, width))])

    gta5 = folder / "gta5"
    for i in range(1, source + 1):
        pair(gta5 / "images" / f"{i:05d}.png", gta5 / "labels" / f"{i:05d}.png")
    city = folder / "cityscapes"
    for split, count in (("train", target), ("val", val)):
        for i in range(count):
            stem = f"smoke_{i:06d}_000019"
            pair(city / "leftImg8bit" / split / "smoke" / f"{stem}_leftImg8bit.png",
                 city / "gtFine" / split / "smoke" / f"{stem}_gtFine_labelIds.png")
    return gta5, city


#: Classes of the detection datasets of Large-UniDet's recipe (COCO's 80 categories, OpenImages
#: V6's 601 boxable classes, Mapillary Vistas v1.2's 37 instance classes of its 66 labels).
DETECTION_CLASSES = {"coco": 80, "openimages": 601, "vistas": 37}
VISTAS_LABELS = 66


def _detection_images(folder: Path, names: list[str], rng: np.random.Generator) -> None:
    for name in names:
        _noise_jpeg(folder / name, rng)


def write_detection_sources(folder: str | os.PathLike, *, images: int = 3, seed: int = 0) -> tuple[dict, Path]:
    """COCO, OpenImages and Mapillary Vistas annotation files (Large-UniDet's ``sources``) and a label map.

    Each dataset gets ``images`` JPEGs with one whole-image box of class ``i`` (image ``i``):
    ``coco/instances_train2017.json`` (``images``, ``annotations`` with ``bbox`` [x, y, w, h],
    ``categories``), OpenImages' ``class-descriptions-boxable.csv`` and
    ``oidv6-train-annotations-bbox.csv`` (fractions of the image) and
    ``oidv6-train-annotations-human-imagelabels-boxable.csv`` (image ``i``: class ``i`` verified
    present, class ``i + 1`` verified absent), ``bbox_labels_600_hierarchy.json`` (below the root,
    class 0 the parent of classes 1 and 2, class 2 also under class 3), Vistas' ``config.json``
    (``labels`` with ``instances``) and COCO-panoptic ``panoptic_2018.json``; every class of
    :data:`DETECTION_CLASSES`. The label map (``label_space.yaml``) maps each dataset label to a
    unified label of its own. Returns ``(sources, label_map)``: the config's ``sources`` mapping
    and the map's path.
    """
    folder = Path(folder) / "detection"
    rng = np.random.default_rng(seed)
    width, height = JPEG_SIZE
    box = [0.0, 0.0, float(width), float(height)]
    coco, oid, vistas = folder / "coco", folder / "openimages", folder / "vistas"
    files = [f"{i:012d}.jpg" for i in range(images)]
    _detection_images(coco / "train2017", files, rng)
    coco_classes = [f"coco class {c}" for c in range(DETECTION_CLASSES["coco"])]
    (coco / "instances_train2017.json").write_text(json.dumps({
        "images": [{"id": i + 1, "file_name": f, "width": width, "height": height} for i, f in enumerate(files)],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": i + 1, "bbox": box, "iscrowd": 0,
                         "area": width * height} for i in range(images)],
        "categories": [{"id": c + 1, "name": n} for c, n in enumerate(coco_classes)]}))
    mids = [f"/m/smoke{c:03d}" for c in range(DETECTION_CLASSES["openimages"])]
    oid_classes = [f"oid class {c}" for c in range(len(mids))]
    _detection_images(oid / "train", [f"{i:016x}.jpg" for i in range(images)], rng)
    (oid / "class-descriptions-boxable.csv").write_text("".join(f"{m},{n}\n" for m, n in zip(mids, oid_classes)))
    (oid / "oidv6-train-annotations-bbox.csv").write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,"
        "IsInside\n" + "".join(f"{i:016x},xclick,{mids[i]},1,0,1,0,1,0,0,0,0,0\n" for i in range(images)))
    (oid / "oidv6-train-annotations-human-imagelabels-boxable.csv").write_text(
        "ImageID,Source,LabelName,Confidence\n"
        + "".join(f"{i:016x},verification,{mids[i]},1\n{i:016x},verification,{mids[i + 1]},0\n" for i in range(images)))
    (oid / "bbox_labels_600_hierarchy.json").write_text(json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": mids[0], "Subcategory": [{"LabelName": mids[1]}, {"LabelName": mids[2]}]},
        {"LabelName": mids[3], "Subcategory": [{"LabelName": mids[2]}]}] + [{"LabelName": m} for m in mids[4:]]}))
    labels = [{"name": f"vistas--label-{c}", "readable": f"vistas label {c}",
               "instances": c < DETECTION_CLASSES["vistas"]} for c in range(VISTAS_LABELS)]
    _detection_images(vistas / "images", [f"smoke_{i}.jpg" for i in range(images)], rng)
    (vistas / "config.json").write_text(json.dumps({"labels": labels}))
    (vistas / "panoptic_2018.json").write_text(json.dumps({
        "images": [{"id": f"smoke_{i}", "file_name": f"smoke_{i}.jpg"} for i in range(images)],
        "annotations": [{"image_id": f"smoke_{i}", "segments_info": [{"id": 1, "category_id": i, "bbox": box}]}
                        for i in range(images)],
        "categories": [{"id": c, "name": lab["name"]} for c, lab in enumerate(labels)]}))
    mapping = {"coco": coco_classes, "openimages": oid_classes,
               "vistas": [lab["readable"] for lab in labels if lab["instances"]]}
    label_map = folder / "label_space.yaml"
    label_map.write_text(yaml.safe_dump({"datasets": {d: {n: f"{d}: {n}" for n in names}
                                                      for d, names in mapping.items()}}))
    sources = {
        "coco": {"format": "coco", "annotations": str(coco / "instances_train2017.json"),
                 "images": str(coco / "train2017")},
        "openimages": {"format": "openimages", "boxes": str(oid / "oidv6-train-annotations-bbox.csv"),
                       "classes": str(oid / "class-descriptions-boxable.csv"), "images": str(oid / "train"),
                       "image_labels": str(oid / "oidv6-train-annotations-human-imagelabels-boxable.csv"),
                       "hierarchy": str(oid / "bbox_labels_600_hierarchy.json")},
        "vistas": {"format": "vistas", "config": str(vistas / "config.json"),
                   "panoptic": str(vistas / "panoptic_2018.json"), "images": str(vistas / "images")},
    }
    return sources, label_map


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
