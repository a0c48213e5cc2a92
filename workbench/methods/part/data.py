"""PART's datasets: a generated fine-grained task for the CPU, and the three fine-grained benchmarks.

``fg_motifs`` (the tiny preset) is generated deterministically from ``data_seed``
(:func:`make_motif_task`). Every image (32 x 32 RGB) shows the same kind of object: an ellipse
filled with a random grating texture on a noisy background. What tells the classes apart is
only a small *motif*, a 5 x 5 binary glyph (one glyph per class, all with the same number of
dark cells, pairwise different in at least 6 cells) stamped at a random position inside the
object; a *distractor* glyph (from a separate set shared by all classes) is stamped at another
random position, so that "where is a glyph" does not give the class away. Each split records
the motif box of every image (``motif_boxes``: half-open ``(x1, y1, x2, y2)`` in pixels) for
the part hit rate (:mod:`.analysis`).

The benchmarks, in their official layouts (``root`` is the folder holding the extracted
archive):

- ``cub200``: ``CUB_200_2011/`` as :mod:`workbench.data.training.cub200` reads it (shared with
  SAVC), with the object boxes. 5,994 / 5,794 images.
- ``stanford_cars``: the devkit's ``devkit/cars_train_annos.mat`` and
  ``devkit/cars_test_annos_withlabels.mat`` (struct array ``annotations`` with ``bbox_x1,
  bbox_y1, bbox_x2, bbox_y2, class (1..196), fname``), ``devkit/cars_meta.mat``
  (``class_names``), images under ``cars_train/`` and ``cars_test/``. 8,144 / 8,041 images.
- ``fgvc_aircraft``: ``fgvc-aircraft-2013b/data/images_variant_trainval.txt`` and
  ``images_variant_test.txt`` ("<image id> <variant name>"), ``variants.txt`` (the 100
  variants, one a line, defining the label order), ``images_box.txt`` (optional, "<id> xmin
  ymin xmax ymax"), images ``data/images/<id>.jpg``. 6,667 / 3,333 images (trainval / test,
  the usual protocol).

Their transforms follow the reference code (``datasets/make_dataloader.py``): training
``Resize(512, 512)``, horizontal flip, ``Pad(10)``, random crop 448, random rotation 12 deg,
with probability 0.5 colour jitter (0.4, 0.4, 0.3) + random affine (scale 0.8-1.2, shear 15),
ImageNet normalisation, random erasing (p = 0.5); test ``Resize(512, 512)``, centre crop 448.
The fingerprint hashes the annotation files (not the images).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.data.training import TrainingData
from workbench.data.training.annotations import hash_files, parse_int, read_fields
from workbench.data.training.cub200 import read_cub200
from workbench.data.training.files import ImageFiles
from workbench.errors import DataError, ValidationError
from workbench.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

#: Datasets of this module (``config.dataset``); any other name goes to ``load_training_data``.
DATASETS = ("fg_motifs", "cub200", "stanford_cars", "fgvc_aircraft")
MOTIF = 5  # glyph side, pixels
SIZE = 32  # image side of fg_motifs, pixels


# --- the generated task -----------------------------------------------------------------------
def make_glyphs(count: int, rng: np.random.Generator, *, on: int = 12, min_distance: int = 6) -> np.ndarray:
    """``count`` distinct 5 x 5 binary glyphs (bool, (count, 5, 5)), ``on`` cells each, >= ``min_distance`` apart."""
    glyphs: list[np.ndarray] = []
    for _ in range(100_000):
        g = np.zeros(MOTIF * MOTIF, dtype=bool)
        g[rng.choice(MOTIF * MOTIF, on, replace=False)] = True
        if all(np.sum(g != h) >= min_distance for h in glyphs):
            glyphs.append(g)
            if len(glyphs) == count:
                return np.stack(glyphs).reshape(count, MOTIF, MOTIF)
    raise ValidationError(f"could not draw {count} glyphs {min_distance} cells apart")


def _render(rng: np.random.Generator, glyph: np.ndarray, distractor: np.ndarray) -> tuple[np.ndarray, tuple]:
    """One uint8 image (32, 32, 3) and its motif box."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    image = 0.55 + 0.08 * rng.standard_normal((SIZE, SIZE, 1)) + 0.05 * rng.standard_normal((1, 1, 3))
    cy, cx = 15.5 + rng.uniform(-1.5, 1.5, 2)
    ry, rx = rng.uniform(11.5, 13.5, 2)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    texture = np.zeros((SIZE, SIZE))
    for _ in range(2):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.5, 1.1), rng.uniform(0, 2 * np.pi)
        texture += np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
    colour = np.array([0.72, 0.52, 0.32]) + 0.04 * rng.standard_normal(3)
    obj = colour[None, None, :] * (1.0 + 0.12 * texture[..., None])
    image = np.where(inside[..., None], obj, image)
    # glyph positions: top-left corners whose 5 x 5 square lies inside the object, not overlapping
    sums = np.pad(inside.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    area = sums[MOTIF:, MOTIF:] - sums[:-MOTIF, MOTIF:] - sums[MOTIF:, :-MOTIF] + sums[:-MOTIF, :-MOTIF]
    ok = area == MOTIF * MOTIF
    candidates = np.argwhere(ok)
    y0, x0 = candidates[rng.integers(len(candidates))]
    far = candidates[(np.abs(candidates[:, 0] - y0) >= MOTIF + 1) | (np.abs(candidates[:, 1] - x0) >= MOTIF + 1)]
    y1, x1 = far[rng.integers(len(far))]
    ink = 0.12 + 0.03 * rng.standard_normal(3)
    for (y, x), g in (((y0, x0), glyph), ((y1, x1), distractor)):
        patch = image[y:y + MOTIF, x:x + MOTIF]
        patch[g] = ink
    pixels = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return pixels, (int(x0), int(y0), int(x0) + MOTIF, int(y0) + MOTIF)


class MotifImages(Dataset):
    """Generated images; item ``(image (3, 32, 32) float normalised with mean = std = 0.5, label)``.

    ``augment``: a random translation by up to 2 px (reflect padding), drawn from torch's
    global RNG. Attributes ``pixels`` (N, 32, 32, 3) uint8, ``targets``, ``motif_boxes`` (N, 4).
    """

    def __init__(self, pixels: np.ndarray, targets: np.ndarray, boxes: np.ndarray, augment: bool = False):
        self.pixels = pixels
        self.targets = [int(t) for t in targets]
        self.motif_boxes = boxes
        self.augment = augment
        self._images = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        image = self._images[i]
        if self.augment:
            dy, dx = (int(v) for v in torch.randint(0, 5, (2,)))
            padded = torch.nn.functional.pad(image[None], (2, 2, 2, 2), mode="reflect")[0]
            image = padded[:, dy:dy + SIZE, dx:dx + SIZE]
        return image, self.targets[i]


def make_motif_task(seed: int = 0, *, classes: int = 10, train_per_class: int = 80, test_per_class: int = 40,
                    distractors: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Generate the ``fg_motifs`` splits.

    Returns ``{"train"|"test": (pixels (N, 32, 32, 3) uint8, labels (N,), boxes (N, 4))}``.

    Deterministic in its arguments; items are class-interleaved (``label = i % classes``).
    """
    if classes < 2 or train_per_class < 1 or test_per_class < 1 or distractors < 1:
        raise ValidationError("fg_motifs needs classes >= 2, train_per_class, test_per_class and distractors >= 1; "
                              f"found {classes}, {train_per_class}, {test_per_class}, {distractors}")
    rng = np.random.default_rng([int(seed), 14])
    glyphs = make_glyphs(classes + distractors, rng)
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        split_rng = np.random.default_rng([int(seed), 14, 0 if split == "train" else 1])
        n = classes * per_class
        labels = np.arange(n) % classes
        pixels = np.zeros((n, SIZE, SIZE, 3), dtype=np.uint8)
        boxes = np.zeros((n, 4), dtype=np.int64)
        for i, y in enumerate(labels):
            d = glyphs[classes + split_rng.integers(distractors)]
            pixels[i], boxes[i] = _render(split_rng, glyphs[y], d)
        out[split] = (pixels, labels, boxes)
    return out


def load_motif_task(seed: int = 0, *, augment: bool = False, **sizes) -> TrainingData:
    """The ``fg_motifs`` task as :class:`~workbench.data.training.TrainingData` (see the module docstring)."""
    splits = make_motif_task(seed, **sizes)
    digest = hashlib.sha256(repr(sorted(sizes.items())).encode() + str(seed).encode())
    for split in ("train", "test"):
        for array in splits[split]:
            digest.update(np.ascontiguousarray(array).tobytes())
    classes = int(splits["train"][1].max()) + 1
    train = MotifImages(*splits["train"], augment=augment)
    test = MotifImages(*splits["test"], augment=False)
    return TrainingData(
        name="fg_motifs", train=train, test=test, num_classes=classes,
        classes=tuple(f"motif{c}" for c in range(classes)),
        preprocessing=Preprocessing(input_size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        fingerprint=digest.hexdigest(),
        description=(f"fg_motifs (generated, seed {seed}): {classes} classes told apart by a 5 px motif on a "
                     f"textured object, {len(train)} train / {len(test)} test images, 32 px"
                     + (", random 2 px shifts" if augment else "")))


# --- the benchmarks ---------------------------------------------------------------------------
def reference_transforms(augment: bool, size: int = 448, resize: int = 512):
    """``(train, test)`` transforms of the reference code (see the module docstring)."""
    from torchvision.transforms import v2

    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    test = v2.Compose([v2.Resize((resize, resize)), v2.CenterCrop(size), *tail])
    if not augment:
        return test, test
    train = v2.Compose([
        v2.Resize((resize, resize)), v2.RandomHorizontalFlip(), v2.Pad(10), v2.RandomCrop(size),
        v2.RandomRotation(12, interpolation=v2.InterpolationMode.BICUBIC),
        v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0),
                        v2.RandomAffine(degrees=0, scale=(0.8, 1.2), shear=15)], p=0.5),
        *tail, v2.RandomErasing(p=0.5, scale=(0.02, 0.4))])
    return train, test


def _data(name, train_set, test_set, classes, fingerprint, description) -> TrainingData:
    return TrainingData(name=name, train=train_set, test=test_set, num_classes=len(classes), classes=tuple(classes),
                        preprocessing=Preprocessing(input_size=448, mean=IMAGENET_MEAN, std=IMAGENET_STD),
                        fingerprint=fingerprint, description=description)


def load_cub200(root, *, augment: bool = True) -> TrainingData:
    """CUB-200-2011 in its official layout (:func:`workbench.data.training.cub200.read_cub200`),
    with the reference's transforms and the object boxes."""
    cub = read_cub200(root)
    train_tf, test_tf = reference_transforms(augment)
    (train_paths, train_targets, train_boxes), (test_paths, test_targets, test_boxes) = (
        cub.splits["train"], cub.splits["test"])
    train_set = ImageFiles(train_paths, train_targets, train_tf, boxes=train_boxes)
    test_set = ImageFiles(test_paths, test_targets, test_tf, boxes=test_boxes)
    return _data("cub200", train_set, test_set, cub.classes, cub.fingerprint,
                 f"CUB-200-2011 ({root}): {len(cub.classes)} classes, {len(train_set)} train / {len(test_set)} test images")


def _mat_annotations(path: Path) -> list[dict]:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{path} does not exist; expected the Stanford Cars devkit annotation file "
                        "(struct array 'annotations' with bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname)")
    mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "annotations" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path} has no variable 'annotations' (found {found})")
    rows = []
    for entry in np.atleast_1d(mat["annotations"]):
        try:
            rows.append({"fname": str(entry.fname), "class": int(entry.__dict__["class"]),
                         "box": (float(entry.bbox_x1), float(entry.bbox_y1),
                                 float(entry.bbox_x2), float(entry.bbox_y2))})
        except (AttributeError, KeyError) as exc:
            raise DataError(f"{path}: an annotation lacks the field {exc}; expected bbox_x1, bbox_y1, bbox_x2, "
                            "bbox_y2, class, fname") from None
    return rows


def load_stanford_cars(root, *, augment: bool = True) -> TrainingData:
    """Stanford Cars with the devkit's ``.mat`` annotations (see the module docstring)."""
    from scipy.io import loadmat

    root = Path(root)
    devkit = root / "devkit"
    train_file, test_file, meta_file = (devkit / "cars_train_annos.mat", devkit / "cars_test_annos_withlabels.mat",
                                        devkit / "cars_meta.mat")
    train_rows, test_rows = _mat_annotations(train_file), _mat_annotations(test_file)
    if meta_file.is_file():
        names = [str(n) for n in np.atleast_1d(loadmat(meta_file, squeeze_me=True)["class_names"])]
    else:
        names = [str(c) for c in range(1, max(r["class"] for r in train_rows + test_rows) + 1)]
    for path, rows in ((train_file, train_rows), (test_file, test_rows)):
        bad = sorted({r["class"] for r in rows if not 1 <= r["class"] <= len(names)})
        if bad:
            raise DataError(f"{path}: classes {bad[:5]} outside 1..{len(names)} (cars_meta.mat class_names)")
    train_tf, test_tf = reference_transforms(augment)

    def make(rows, folder, tf):
        return ImageFiles([root / folder / r["fname"] for r in rows], [r["class"] - 1 for r in rows], tf,
                          boxes=[r["box"] for r in rows])

    train_set, test_set = make(train_rows, "cars_train", train_tf), make(test_rows, "cars_test", test_tf)
    return _data("stanford_cars", train_set, test_set, names, hash_files(train_file, test_file, meta_file),
                 f"Stanford Cars ({root}): {len(names)} classes, {len(train_set)} train / {len(test_set)} test images")


def load_fgvc_aircraft(root, *, augment: bool = True) -> TrainingData:
    """FGVC-Aircraft (variants, trainval / test) in its official layout (see the module docstring)."""
    data_dir = Path(root) / "fgvc-aircraft-2013b" / "data"
    variants_file = data_dir / "variants.txt"
    if not variants_file.is_file():
        raise DataError(f"{variants_file} does not exist; expected the FGVC-Aircraft variant list (one name a line)")
    names = [line.strip() for line in variants_file.read_text().splitlines() if line.strip()]
    index = {n: i for i, n in enumerate(names)}
    boxes = {}
    box_file = data_dir / "images_box.txt"
    if box_file.is_file():
        for i, *xyxy in read_fields(box_file, "FGVC-Aircraft images_box.txt ('<id> xmin ymin xmax ymax')", 5):
            boxes[i] = tuple(float(v) for v in xyxy)
    train_tf, test_tf = reference_transforms(augment)
    sets, files = {}, [variants_file, box_file]
    for split, tf in (("trainval", train_tf), ("test", test_tf)):
        path = data_dir / f"images_variant_{split}.txt"
        files.append(path)
        rows = read_fields(path, f"FGVC-Aircraft images_variant_{split}.txt ('<image id> <variant>')", 2, maxsplit=1)
        unknown = sorted({v.strip() for _, v in rows} - set(index))
        if unknown:
            raise DataError(f"{path}: variant(s) {unknown[:5]} are not in {variants_file}")
        sets[split] = ImageFiles([data_dir / "images" / f"{i}.jpg" for i, _ in rows],
                                 [index[v.strip()] for _, v in rows], tf,
                                 boxes=[boxes.get(i, (np.nan,) * 4) for i, _ in rows])
    return _data("fgvc_aircraft", sets["trainval"], sets["test"], names, hash_files(*files),
                 f"FGVC-Aircraft ({root}): {len(names)} variants, {len(sets['trainval'])} trainval / "
                 f"{len(sets['test'])} test images")


def load_data(config, *, augment: bool) -> TrainingData:
    """The dataset a :class:`~.train.PARTConfig` names (``fg_motifs`` from its ``tiny_*`` fields)."""
    name = config.dataset
    if name == "fg_motifs":
        return load_motif_task(config.data_seed, augment=augment, classes=config.tiny_classes,
                               train_per_class=config.tiny_train_per_class, test_per_class=config.tiny_test_per_class)
    if name in ("cub200", "stanford_cars", "fgvc_aircraft"):
        if not config.data_root:
            raise ValidationError(f"dataset {name!r} needs data_root (the folder holding the extracted archive)")
        loader = {"cub200": load_cub200, "stanford_cars": load_stanford_cars, "fgvc_aircraft": load_fgvc_aircraft}[name]
        return loader(os.fspath(config.data_root), augment=augment)
    from workbench.data.training import load_training_data

    return load_training_data(name, root=config.data_root, augment=augment)
