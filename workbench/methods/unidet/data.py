"""Detection datasets: synthetic shapes for the tiny preset and loaders of the official formats.

Every source becomes a :class:`DetectionSource`: a name, its own label list and records of one
image each (an array or a file path, boxes ``(n, 4)`` as ``x1, y1, x2, y2`` in pixels, local
label indices ``(n,)``). :class:`DetectionSet` concatenates sources into a torch dataset of
``(image (3, S, S) in [0, 1], target)`` with ``target = {"boxes", "labels" (unified indices),
"dataset" (int), "local" (the source's own labels), "leaf" (true leaf when known, else -1)}``.

Loaders (tested on small files written in these formats):

- :func:`load_coco`: a COCO ``instances_*.json`` (``images``, ``annotations`` with ``bbox`` =
  ``[x, y, w, h]``, ``categories``; ``iscrowd`` boxes dropped);
- :func:`load_openimages`: the OpenImages V6 CSVs ``class-descriptions-boxable.csv`` (no header:
  ``LabelName,DisplayName``) and ``*-annotations-bbox.csv`` (``ImageID, Source, LabelName,
  Confidence, XMin, XMax, YMin, YMax, IsGroupOf, ...``, coordinates in [0, 1]), optionally the
  image-level labels ``*-imagelabels*.csv`` (``ImageID, LabelName, Confidence`` 0/1), and the
  hierarchy ``bbox_labels_600_hierarchy.json`` (nested ``LabelName`` / ``Subcategory``), whose
  edges :func:`openimages_parents` returns;
- :func:`load_vistas`: Mapillary Vistas' ``config.json`` (``labels`` with ``name``, ``readable``,
  ``instances``) and the panoptic JSON (COCO panoptic: ``annotations[].segments_info[]`` with
  ``category_id`` and ``bbox``; only instance ("thing") classes kept).

Synthetic data (:func:`synthetic_sources`): 64 px images of squares, discs and triangles,
each solid or striped, on noisy colour gradients. The unified tree has three ``*_super``
parents (shape) with two leaves each (shape + texture). Dataset ``A`` labels only the parents,
``B`` only the leaves, ``C`` a conflicting subset (discs as the parent, solid triangles as a
leaf; its squares and striped triangles are left unannotated).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.errors import DataError

SHAPES = ("square", "disc", "triangle")
TEXTURES = ("solid", "striped")
#: Unified leaves of the synthetic data, in (shape, texture) order.
LEAVES = tuple(f"{s}_{t}" for s in SHAPES for t in TEXTURES)
#: What each synthetic dataset annotates: its labels -> unified label, and which leaves it labels with each.
SYNTHETIC_DATASETS = {
    "A": {f"{s}": (f"{s}_super", [f"{s}_{t}" for t in TEXTURES]) for s in SHAPES},
    "B": {f"{t} {s}": (f"{s}_{t}", [f"{s}_{t}"]) for s in SHAPES for t in TEXTURES},
    "C": {"disc": ("disc_super", ["disc_solid", "disc_striped"]),
          "solid triangle": ("triangle_solid", ["triangle_solid"])},
}


@dataclass
class DetectionSource:
    """One detection dataset in its own label space.

    Attributes
    ----------
    name : str
    labels : list of str
        Its label names (local label ``i`` is ``labels[i]``).
    images : list
        Per record: an array (H, W, 3) uint8 or a path to an image file.
    boxes : list of np.ndarray (n, 4) float
        ``x1, y1, x2, y2`` in pixels of the image.
    classes : list of np.ndarray (n,) int
        Local label indices.
    leaves : list of np.ndarray (n,) int
        True unified leaf of each box when known (synthetic data), else -1.
    group_of : list of np.ndarray (n,) bool
        OpenImages' ``IsGroupOf`` of each box (False elsewhere).
    image_labels : list of dict or None
        Per record, OpenImages' verified image-level labels ``{"positive": (k,) int,
        "negative": (m,) int}`` (local labels), or None when the source has none.
    hierarchy : list of (int, int)
        The dataset's own (child, parent) edges in its local labels (OpenImages'
        ``bbox_labels_600_hierarchy.json``, every parent of a class); empty when it has none.
    """

    name: str
    labels: list
    images: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    leaves: list = field(default_factory=list)
    group_of: list = field(default_factory=list)
    image_labels: list = field(default_factory=list)
    hierarchy: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def add(self, image, boxes, classes, leaves=None, *, group_of=None, image_labels=None) -> None:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        self.images.append(image)
        self.boxes.append(boxes)
        self.classes.append(classes)
        self.leaves.append(np.full(len(classes), -1, np.int64) if leaves is None else np.asarray(leaves, np.int64))
        self.group_of.append(np.zeros(len(classes), bool) if group_of is None else np.asarray(group_of, bool))
        self.image_labels.append(image_labels)

    def subset(self, indices) -> "DetectionSource":
        out = DetectionSource(self.name, list(self.labels), hierarchy=list(self.hierarchy))
        for i in indices:
            out.add(self.images[i], self.boxes[i], self.classes[i], self.leaves[i], group_of=self.group_of[i],
                    image_labels=self.image_labels[i])
        return out


# --- synthetic ----------------------------------------------------------------------------
def _render_object(img: np.ndarray, shape: str, texture: str, box, rng: np.random.Generator) -> None:
    x1, y1, x2, y2 = box
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if shape == "square":
        mask = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
    elif shape == "disc":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    else:  # upward triangle filling the box
        mask = (yy >= y1) & (yy < y2) & (np.abs(xx - cx) <= (yy - y1) / max(y2 - y1, 1) * r)
    colour = rng.uniform(0.35, 1.0, 3)
    if texture == "striped":
        period = rng.uniform(3.5, 5.0)
        angle = rng.uniform(0, np.pi)
        phase = np.cos(angle) * xx + np.sin(angle) * yy
        stripes = (np.sin(2 * np.pi * phase / period) > 0)[..., None]
        fill = np.where(stripes, colour, colour * 0.15)
    else:
        fill = np.broadcast_to(colour, img.shape)
    img[mask] = fill[mask]


def _synthetic_image(rng: np.random.Generator, size: int, max_objects: int):
    """An image (size, size, 3) uint8 and its objects [(shape, texture, box)], boxes not overlapping much."""
    base = rng.uniform(0.0, 0.5, 3)
    ramp = rng.uniform(-0.2, 0.2, 3)
    t = np.linspace(0, 1, size, dtype=np.float32)
    img = base + ramp * (t[:, None, None] if rng.random() < 0.5 else t[None, :, None])
    img = np.broadcast_to(img, (size, size, 3)).copy()
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(10):
            side = float(rng.uniform(0.22, 0.5) * size)
            x1, y1 = rng.uniform(0, size - side, 2)
            box = (float(x1), float(y1), float(x1 + side), float(y1 + side))
            if all(_iou(box, o[2]) < 0.1 for o in objects):
                objects.append((SHAPES[rng.integers(3)], TEXTURES[rng.integers(2)], box))
                break
    for shape, texture, box in objects:
        _render_object(img, shape, texture, box, rng)
    img = img + rng.normal(0, 0.04, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), objects


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def synthetic_sources(seed: int, images_per_dataset: int, *, size: int = 64, max_objects: int = 3,
                      datasets: tuple[str, ...] = ("A", "B", "C")) -> list[DetectionSource]:
    """The synthetic datasets (deterministic in ``seed``): A labels parents, B leaves, C a conflicting subset.

    Each dataset draws its own images (``images_per_dataset`` of them) from ``seed`` and its
    name; an object a dataset does not annotate stays in the image unlabelled.
    """
    out = []
    for name in datasets:
        spec = SYNTHETIC_DATASETS[name]
        labels = list(spec)
        by_leaf = {leaf: i for i, (_, leaves) in enumerate(spec.values()) for leaf in leaves}
        digest = int(hashlib.sha256(f"unidet-synthetic/{seed}/{name}".encode()).hexdigest()[:12], 16)
        rng = np.random.default_rng(digest)
        source = DetectionSource(name, labels)
        for _ in range(images_per_dataset):
            img, objects = _synthetic_image(rng, size, max_objects)
            boxes, classes, leaves = [], [], []
            for shape, texture, box in objects:
                leaf = f"{shape}_{texture}"
                if leaf in by_leaf:
                    boxes.append(box)
                    classes.append(by_leaf[leaf])
                    leaves.append(LEAVES.index(leaf))
            source.add(img, boxes, classes, leaves)
        out.append(source)
    return out


def synthetic_mapping() -> dict:
    """The mapping-file payload (YAML) of the synthetic datasets' unified label space."""
    return {
        "datasets": {d: {label: target for label, (target, _) in spec.items()} for d, spec in SYNTHETIC_DATASETS.items()},
        "nodes": [f"{s}_super" for s in SHAPES] + list(LEAVES),
        "parents": {leaf: f"{leaf.split('_')[0]}_super" for leaf in LEAVES},
    }


# --- official formats ---------------------------------------------------------------------
def _read_json(path: Path, what: str):
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} {path} is not valid JSON: {exc}") from None


def load_coco(annotation_file: str | os.PathLike, image_dir: str | os.PathLike, name: str = "coco") -> DetectionSource:
    """A COCO detection JSON (``bbox`` = x, y, w, h in pixels); crowd boxes dropped, labels in category-id order."""
    path = Path(annotation_file)
    data = _read_json(path, "COCO annotation file")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DataError(f"COCO annotation file {path} lacks the key {key!r}")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    per_image: dict[int, list] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        if ann["category_id"] not in cat_index:
            raise DataError(f"COCO annotation file {path}: annotation {ann.get('id')} has category_id "
                            f"{ann['category_id']}, which is not in 'categories'")
        if ann["image_id"] not in per_image:
            raise DataError(f"COCO annotation file {path}: annotation {ann.get('id')} names image_id "
                            f"{ann['image_id']}, which is not in 'images'")
        x, y, w, h = ann["bbox"]
        per_image[ann["image_id"]].append(((x, y, x + w, y + h), cat_index[ann["category_id"]]))
    source = DetectionSource(name, [c["name"] for c in cats])
    for img in sorted(data["images"], key=lambda i: i["id"]):
        anns = per_image[img["id"]]
        source.add(str(Path(image_dir) / img["file_name"]), [a[0] for a in anns], [a[1] for a in anns])
    return source


def openimages_edges(hierarchy_file: str | os.PathLike) -> list[tuple[str, str]]:
    """Every (child, parent) MID pair of ``bbox_labels_600_hierarchy.json``, in file order (depth first).

    The root ("Entity") is left out; a class listed under several parents (``Tomato`` under
    ``Fruit`` and ``Vegetable``) gives one pair per parent; repeated pairs appear once.
    """
    path = Path(hierarchy_file)
    root = _read_json(path, "OpenImages hierarchy file")
    edges: dict[tuple[str, str], None] = {}

    def walk(node, parent, is_root):
        if not isinstance(node, dict) or "LabelName" not in node:
            raise DataError(f"OpenImages hierarchy file {path}: a node lacks 'LabelName' ({str(node)[:80]})")
        if parent is not None:
            edges.setdefault((node["LabelName"], parent), None)
        for child in node.get("Subcategory", []):
            walk(child, None if is_root else node["LabelName"], False)

    walk(root, None, True)
    return list(edges)


def openimages_parents(hierarchy_file: str | os.PathLike) -> list[tuple[str, str]]:
    """(child, parent) MIDs of ``bbox_labels_600_hierarchy.json``; the root ("Entity") left out.

    A class listed under several parents keeps the first (depth-first, file order): the unified
    tree gives every label one parent (:func:`openimages_edges` keeps them all).
    """
    first: dict[str, str] = {}
    for child, parent in openimages_edges(hierarchy_file):
        first.setdefault(child, parent)
    return list(first.items())


def _read_flag(value: str, path: Path, line: int, column: str) -> bool:
    """A 0/1 cell of an OpenImages CSV (``IsGroupOf``, ``Confidence``)."""
    text = (value or "").strip()
    if text not in ("0", "1"):
        raise DataError(f"OpenImages file {path} line {line}: column {column} is {value!r}; expected 0 or 1")
    return text == "1"


def read_image_labels(labels_csv: str | os.PathLike, mid_index: dict[str, int]) -> dict[str, dict]:
    """Verified image-level labels of an OpenImages ``*-imagelabels*.csv`` (``ImageID, LabelName, Confidence``).

    Returns ``{ImageID: {"positive": (k,) int, "negative": (m,) int}}`` in the local labels of
    ``mid_index`` (MID -> label); labels outside it (non-boxable classes) are left out.
    """
    path = Path(labels_csv)
    if not path.is_file():
        raise DataError(f"OpenImages image-level label file {path} does not exist")
    out: dict[str, dict] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        for column in ("ImageID", "LabelName", "Confidence"):
            if column not in (reader.fieldnames or ()):
                raise DataError(f"OpenImages image-level label file {path} lacks the column {column!r} "
                                f"(has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            present = _read_flag(row["Confidence"], path, line, "Confidence")
            if row["LabelName"] in mid_index:
                entry = out.setdefault(row["ImageID"], {"positive": [], "negative": []})
                entry["positive" if present else "negative"].append(mid_index[row["LabelName"]])
    return {k: {side: np.array(v[side], np.int64) for side in v} for k, v in out.items()}


def load_openimages(boxes_csv: str | os.PathLike, classes_csv: str | os.PathLike, image_dir: str | os.PathLike,
                    name: str = "openimages", *, sizes: dict[str, tuple[int, int]] | None = None,
                    image_labels: str | os.PathLike | None = None,
                    hierarchy: str | os.PathLike | None = None) -> DetectionSource:
    """OpenImages boxes: ``*-annotations-bbox.csv`` + ``class-descriptions-boxable.csv``.

    Labels are the display names in the class file's order. Coordinates are fractions of the
    image; ``sizes`` (ImageID -> (width, height)) converts them to pixels, otherwise the image
    files are opened for their size. Images are ``image_dir/<ImageID>.jpg``. ``IsGroupOf``
    (when the column is there) becomes each box's group-of flag; ``image_labels`` (an
    image-level label CSV, :func:`read_image_labels`) gives each image its verified labels, and
    then the evaluation uses the OpenImages challenge metric (:mod:`.oid_metric`). Only images
    with a box are loaded (the challenge also scores images with image-level labels alone).
    ``hierarchy`` (``bbox_labels_600_hierarchy.json``) becomes the source's ``hierarchy``
    (:func:`openimages_edges` in local labels; a MID outside the class file is an error).
    """
    classes_csv, boxes_csv = Path(classes_csv), Path(boxes_csv)
    if not classes_csv.is_file():
        raise DataError(f"OpenImages class file {classes_csv} does not exist")
    with open(classes_csv, newline="") as handle:
        rows = [r for r in csv.reader(handle) if r]
    if any(len(r) < 2 for r in rows):
        raise DataError(f"OpenImages class file {classes_csv}: expected rows 'LabelName,DisplayName'")
    mids = [r[0] for r in rows]
    mid_index = {m: i for i, m in enumerate(mids)}
    if not boxes_csv.is_file():
        raise DataError(f"OpenImages box file {boxes_csv} does not exist")
    per_image: dict[str, list] = {}
    with open(boxes_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"}
        if not need <= set(reader.fieldnames or ()):
            raise DataError(f"OpenImages box file {boxes_csv} has the columns {reader.fieldnames}; expected {sorted(need)}")
        for line, row in enumerate(reader, start=2):
            if row["LabelName"] not in mid_index:
                raise DataError(f"OpenImages box file {boxes_csv} line {line}: LabelName {row['LabelName']!r} "
                                f"is not in {classes_csv}")
            coords = tuple(float(row[k]) for k in ("XMin", "YMin", "XMax", "YMax"))
            group_of = "IsGroupOf" in row and _read_flag(row["IsGroupOf"], boxes_csv, line, "IsGroupOf")
            per_image.setdefault(row["ImageID"], []).append((coords, mid_index[row["LabelName"]], group_of))
    verified = read_image_labels(image_labels, mid_index) if image_labels is not None else None
    source = DetectionSource(name, [r[1] for r in rows], hierarchy=_local_edges(hierarchy, mid_index))
    source.mids = mids
    for image_id in sorted(per_image):
        file = Path(image_dir) / f"{image_id}.jpg"
        if sizes is not None and image_id in sizes:
            w, h = sizes[image_id]
        else:
            from PIL import Image

            with Image.open(file) as im:
                w, h = im.size
        anns = per_image[image_id]
        boxes = [(x1 * w, y1 * h, x2 * w, y2 * h) for (x1, y1, x2, y2), _, _ in anns]
        labels = None
        if verified is not None:
            labels = verified.get(image_id, {"positive": np.zeros(0, np.int64), "negative": np.zeros(0, np.int64)})
        source.add(str(file), boxes, [a[1] for a in anns], group_of=[a[2] for a in anns], image_labels=labels)
    return source


def _local_edges(hierarchy_file, mid_index: dict[str, int]) -> list[tuple[int, int]]:
    """:func:`openimages_edges` of ``hierarchy_file`` (None: none) as (child, parent) local labels."""
    if hierarchy_file is None:
        return []
    out = []
    for child, parent in openimages_edges(hierarchy_file):
        for mid in (child, parent):
            if mid not in mid_index:
                raise DataError(f"OpenImages hierarchy file {hierarchy_file}: LabelName {mid!r} is not in the "
                                "class file (class-descriptions-boxable.csv)")
        out.append((mid_index[child], mid_index[parent]))
    return out


def load_vistas(config_file: str | os.PathLike, panoptic_file: str | os.PathLike, image_dir: str | os.PathLike,
                name: str = "vistas") -> DetectionSource:
    """Mapillary Vistas instance classes from ``config.json`` and the panoptic JSON's segment boxes.

    Labels: the ``readable`` names of the ``config.json`` labels with ``instances: true``, in file
    order. A segment's ``category_id`` indexes the panoptic file's ``categories`` (by ``id``), which
    are matched to the config labels by ``name``; segments of non-instance classes are dropped.
    """
    config = _read_json(Path(config_file), "Vistas config file")
    panoptic = _read_json(Path(panoptic_file), "Vistas panoptic file")
    if "labels" not in config:
        raise DataError(f"Vistas config file {config_file} lacks the key 'labels'")
    things = [lab for lab in config["labels"] if lab.get("instances")]
    index = {lab["name"]: i for i, lab in enumerate(things)}
    for key in ("images", "annotations", "categories"):
        if key not in panoptic:
            raise DataError(f"Vistas panoptic file {panoptic_file} lacks the key {key!r}")
    cat_name = {c["id"]: c["name"] for c in panoptic["categories"]}
    files = {img["id"]: img["file_name"] for img in panoptic["images"]}
    source = DetectionSource(name, [lab.get("readable", lab["name"]) for lab in things])
    for ann in sorted(panoptic["annotations"], key=lambda a: str(a["image_id"])):
        boxes, classes = [], []
        for seg in ann.get("segments_info", []):
            if seg["category_id"] not in cat_name:
                raise DataError(f"Vistas panoptic file {panoptic_file}: segment {seg.get('id')} has category_id "
                                f"{seg['category_id']}, which is not in 'categories'")
            label = cat_name[seg["category_id"]]
            if label not in index:
                continue
            x, y, w, h = seg["bbox"]
            boxes.append((x, y, x + w, y + h))
            classes.append(index[label])
        file = files.get(ann["image_id"], f"{ann['image_id']}.jpg")
        source.add(str(Path(image_dir) / file), boxes, classes)
    return source


# --- torch dataset ------------------------------------------------------------------------
class DetectionSet(Dataset):
    """Sources concatenated: item ``i`` = (image (3, S, S) in [0, 1], target dict); see the module docstring.

    Images of another size are resized to ``size`` x ``size`` (boxes scaled with them).
    ``hflip`` (training) flips an image and its boxes with probability 0.5, drawn from torch's
    global RNG.
    """

    def __init__(self, sources: list[DetectionSource], to_unified: dict[str, tuple[int, ...]], size: int,
                 *, hflip: bool = False):
        self.sources = sources
        self.to_unified = {k: np.asarray(v, dtype=np.int64) for k, v in to_unified.items()}
        self.size = int(size)
        self.hflip = hflip
        self.index = [(d, j) for d, s in enumerate(sources) for j in range(len(s))]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def dataset_ids(self) -> np.ndarray:
        """Dataset index (N,) of every item."""
        return np.array([d for d, _ in self.index], dtype=np.int64)

    def local_classes(self, i: int) -> np.ndarray:
        d, j = self.index[i]
        return self.sources[d].classes[j]

    def unified_classes(self, i: int) -> np.ndarray:
        """Unified class (B,) of each box of item ``i`` (what the reference's class-aware sampler counts)."""
        d, j = self.index[i]
        source = self.sources[d]
        return self.to_unified[source.name][np.asarray(source.classes[j], dtype=np.int64)]

    def __getitem__(self, i: int):
        d, j = self.index[i]
        source = self.sources[d]
        image = source.images[j]
        if not isinstance(image, np.ndarray):
            from PIL import Image

            with Image.open(image) as im:
                image = np.asarray(im.convert("RGB"))
        boxes = torch.as_tensor(source.boxes[j], dtype=torch.float32).reshape(-1, 4)
        x = torch.tensor(np.asarray(image)).permute(2, 0, 1).float() / 255.0
        h, w = x.shape[1:]
        if (h, w) != (self.size, self.size):
            x = torch.nn.functional.interpolate(x[None], size=(self.size, self.size), mode="bilinear",
                                                align_corners=False)[0]
            boxes = boxes * torch.tensor([self.size / w, self.size / h] * 2)
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
            boxes = torch.stack([self.size - boxes[:, 2], boxes[:, 1], self.size - boxes[:, 0], boxes[:, 3]], 1)
        local = torch.as_tensor(source.classes[j], dtype=torch.int64)
        labels = torch.as_tensor(self.unified_classes(i), dtype=torch.int64)
        return x, {"boxes": boxes, "labels": labels, "dataset": torch.tensor(d), "local": local,
                   "leaf": torch.as_tensor(source.leaves[j], dtype=torch.int64), "image_id": torch.tensor(i)}


def collate(batch):
    """List of (image, target) -> (list of images, list of targets) (detection images are not stacked)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def fingerprint(sources: list[DetectionSource]) -> str:
    """sha256 over every source's labels, boxes and classes (and image bytes for in-memory images)."""
    digest = hashlib.sha256()
    for s in sources:
        digest.update(json.dumps([s.name, list(s.labels)]).encode())
        for img, b, c in zip(s.images, s.boxes, s.classes):
            digest.update(img.tobytes() if isinstance(img, np.ndarray) else str(img).encode())
            digest.update(np.ascontiguousarray(b).tobytes())
            digest.update(np.ascontiguousarray(c).tobytes())
    return digest.hexdigest()
