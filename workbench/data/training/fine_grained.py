"""Stanford Cars and FGVC-Aircraft, the fine-grained benchmarks PART trains on besides CUB-200.

In their official layouts (``root`` is the folder holding the extracted archive; default
``$WORKBENCH_DATA/training/<name>``):

- ``stanford_cars``: the devkit's ``devkit/cars_train_annos.mat`` and
  ``devkit/cars_test_annos_withlabels.mat`` (struct array ``annotations`` with ``bbox_x1,
  bbox_y1, bbox_x2, bbox_y2, class (1..196), fname``), ``devkit/cars_meta.mat``
  (``class_names``), images under ``cars_train/`` and ``cars_test/``. 8,144 / 8,041 images.
- ``fgvc_aircraft``: ``fgvc-aircraft-2013b/data/images_variant_trainval.txt`` and
  ``images_variant_test.txt`` ("<image id> <variant name>"), ``variants.txt`` (the 100
  variants, one a line, defining the label order), ``images_box.txt`` (optional, "<id> xmin
  ymin xmax ymax"), images ``data/images/<id>.jpg``. 6,667 / 3,333 images (trainval / test,
  the usual protocol).

The default view is PART's reference recipe (448 px, test ``Resize(512, 512)`` + centre crop,
``"fine_grained"`` augmentation: :mod:`workbench.data.training.transforms`). Both splits keep the
object ``boxes``. The fingerprint hashes the annotation files (not the images) and the view.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from workbench.data.training.annotations import hash_files, read_fields
from workbench.data.training.files import image_files_data
from workbench.errors import DataError


def _root(root, name: str) -> Path:
    from workbench.data.training.base import default_root

    return default_root(name) if root is None else Path(root)


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


def load_stanford_cars(root: str | os.PathLike | None = None, *, augment: bool = True, size: int = 448,
                       resize: int | tuple[int, int] = (512, 512), augmentation: str = "fine_grained"):
    """Stanford Cars with the devkit's ``.mat`` annotations (see the module docstring)."""
    from scipy.io import loadmat

    root = _root(root, "stanford_cars")
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

    def split(rows, folder):
        return [root / folder / r["fname"] for r in rows], [r["class"] - 1 for r in rows], [r["box"] for r in rows]

    return image_files_data(
        "stanford_cars", {"train": split(train_rows, "cars_train"), "test": split(test_rows, "cars_test")}, names,
        size=size, resize=resize, augmentation=augmentation, augment=augment,
        annotations_digest=hash_files(train_file, test_file, meta_file),
        description=(f"Stanford Cars ({root}): {len(names)} classes, {len(train_rows):,} train / "
                     f"{len(test_rows):,} test images"))


def load_fgvc_aircraft(root: str | os.PathLike | None = None, *, augment: bool = True, size: int = 448,
                       resize: int | tuple[int, int] = (512, 512), augmentation: str = "fine_grained"):
    """FGVC-Aircraft (variants, trainval / test) in its official layout (see the module docstring)."""
    data_dir = _root(root, "fgvc_aircraft") / "fgvc-aircraft-2013b" / "data"
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
    splits, files = {}, [variants_file, box_file]
    for split in ("trainval", "test"):
        path = data_dir / f"images_variant_{split}.txt"
        files.append(path)
        rows = read_fields(path, f"FGVC-Aircraft images_variant_{split}.txt ('<image id> <variant>')", 2, maxsplit=1)
        unknown = sorted({v.strip() for _, v in rows} - set(index))
        if unknown:
            raise DataError(f"{path}: variant(s) {unknown[:5]} are not in {variants_file}")
        splits["train" if split == "trainval" else "test"] = (
            [data_dir / "images" / f"{i}.jpg" for i, _ in rows], [index[v.strip()] for _, v in rows],
            [boxes.get(i, (np.nan,) * 4) for i, _ in rows])
    return image_files_data(
        "fgvc_aircraft", splits, names, size=size, resize=resize, augmentation=augmentation, augment=augment,
        annotations_digest=hash_files(*files),
        description=(f"FGVC-Aircraft ({data_dir}): {len(names)} variants, {len(splits['train'][0]):,} trainval / "
                     f"{len(splits['test'][0]):,} test images"))
