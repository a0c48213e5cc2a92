"""PART's data: the generated motif task, and CUB-200-2011 / Stanford Cars / FGVC-Aircraft in their official layouts."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.methods.part.data import (
    MOTIF,
    load_cub200,
    load_fgvc_aircraft,
    load_motif_task,
    load_stanford_cars,
    make_glyphs,
    make_motif_task,
)


def test_motif_task_is_deterministic_and_records_the_motif_box():
    a = make_motif_task(3, classes=3, train_per_class=4, test_per_class=2)
    b = make_motif_task(3, classes=3, train_per_class=4, test_per_class=2)
    c = make_motif_task(4, classes=3, train_per_class=4, test_per_class=2)
    for split in ("train", "test"):
        for x, y in zip(a[split], b[split]):
            assert np.array_equal(x, y)
    assert not np.array_equal(a["train"][0], c["train"][0])
    rng = np.random.default_rng([3, 14])
    glyphs = make_glyphs(3 + 3, rng)  # the generator's glyphs: classes first, then distractors
    pixels, labels, boxes = a["train"]
    assert labels.tolist() == [0, 1, 2] * 4
    for img, y, (x1, y1, x2, y2) in zip(pixels, labels, boxes):
        assert (x2 - x1, y2 - y1) == (MOTIF, MOTIF)
        patch = img[y1:y2, x1:x2].astype(int).sum(-1)
        dark = patch < patch.max() * 0.5
        assert np.array_equal(dark, glyphs[y])  # the class's glyph sits exactly in the recorded box


def test_glyphs_are_distinct_with_equal_ink():
    g = make_glyphs(8, np.random.default_rng(0))
    assert (g.reshape(8, -1).sum(1) == 12).all()
    d = (g.reshape(8, 1, -1) != g.reshape(1, 8, -1)).sum(-1)
    assert d[~np.eye(8, dtype=bool)].min() >= 6


def test_motif_training_data():
    data = load_motif_task(1, classes=2, train_per_class=3, test_per_class=2)
    x, y = data.test[1]
    assert x.shape == (3, 32, 32) and y == 1 and data.num_classes == 2
    assert np.allclose(((x.numpy() * 0.5 + 0.5) * 255).round(), data.test.pixels[1].transpose(2, 0, 1))
    assert data.fingerprint == load_motif_task(1, classes=2, train_per_class=3, test_per_class=2).fingerprint
    assert data.fingerprint != load_motif_task(2, classes=2, train_per_class=3, test_per_class=2).fingerprint
    assert data.test.motif_boxes.shape == (4, 4)


def _jpeg(path, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), colour).save(path)


def test_cub200_official_layout(tmp_path):
    base = tmp_path / "CUB_200_2011"
    paths = ["001.Albatross/a.jpg", "001.Albatross/b.jpg", "002.Auklet/c.jpg"]
    for i, p in enumerate(paths):
        _jpeg(base / "images" / p, (40 * i, 0, 0))
    (base / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in enumerate(paths, 1)))
    (base / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    (base / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    (base / "bounding_boxes.txt").write_text("1 1.0 2.0 10.0 5.0\n2 0 0 4 4\n3 3.5 1.0 2.0 2.0\n")
    (base / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n")
    data = load_cub200(tmp_path, augment=False)
    assert data.classes == ("001.Albatross", "002.Auklet")
    assert data.train.targets == [0, 1] and data.test.targets == [0]
    assert data.train.paths[1].endswith("002.Auklet/c.jpg")
    assert data.train.boxes.tolist() == [[1.0, 2.0, 11.0, 7.0], [3.5, 1.0, 5.5, 3.0]]
    x, y = data.test[0]
    assert x.shape == (3, 448, 448) and y == 0
    (base / "train_test_split.txt").write_text("1 1\n2 0\n")
    with pytest.raises(DataError, match=r"train_test_split.txt lacks image id\(s\) \[3\]"):
        load_cub200(tmp_path, augment=False)


def test_stanford_cars_devkit_mat_files(tmp_path):
    from scipy.io import savemat

    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]

    def annos(rows):
        return {"annotations": np.array(rows, dtype=fields)[None, :]}

    devkit = tmp_path / "devkit"
    devkit.mkdir()
    savemat(devkit / "cars_train_annos.mat", annos([(1, 2, 15, 12, 2, "00001.jpg"), (0, 0, 5, 5, 1, "00002.jpg")]))
    savemat(devkit / "cars_test_annos_withlabels.mat", annos([(3, 3, 9, 9, 2, "00001.jpg")]))
    savemat(devkit / "cars_meta.mat", {"class_names": np.array([["AM General Hummer", "Acura RL"]], dtype=object)})
    for folder, name in (("cars_train", "00001.jpg"), ("cars_train", "00002.jpg"), ("cars_test", "00001.jpg")):
        _jpeg(tmp_path / folder / name, (0, 90, 0))
    data = load_stanford_cars(tmp_path, augment=True)
    assert data.classes == ("AM General Hummer", "Acura RL")
    assert data.train.targets == [1, 0] and data.test.targets == [1]
    assert data.train.boxes[0].tolist() == [1, 2, 15, 12]
    assert data.test.paths[0].endswith("cars_test/00001.jpg")
    assert data.train[0][0].shape == (3, 448, 448)
    savemat(devkit / "cars_test_annos_withlabels.mat", annos([(3, 3, 9, 9, 7, "00001.jpg")]))
    with pytest.raises(DataError, match=r"classes \[7\] outside 1..2"):
        load_stanford_cars(tmp_path)


def test_fgvc_aircraft_variant_files(tmp_path):
    data_dir = tmp_path / "fgvc-aircraft-2013b" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "variants.txt").write_text("707-320\nA300B4\nF/A-18\n")
    (data_dir / "images_variant_trainval.txt").write_text("1025794 F/A-18\n1340192 707-320\n")
    (data_dir / "images_variant_test.txt").write_text("0056978 A300B4\n")
    (data_dir / "images_box.txt").write_text("1025794 1 2 30 40\n0056978 5 5 9 9\n")
    for i in ("1025794", "1340192", "0056978"):
        _jpeg(data_dir / "images" / f"{i}.jpg", (0, 0, 99))
    data = load_fgvc_aircraft(tmp_path, augment=False)
    assert data.num_classes == 3 and data.classes[2] == "F/A-18"
    assert data.train.targets == [2, 0] and data.test.targets == [1]
    assert data.train.boxes[0].tolist() == [1, 2, 30, 40] and np.isnan(data.train.boxes[1]).all()
    assert data.test.paths[0].endswith("images/0056978.jpg")
    (data_dir / "images_variant_test.txt").write_text("0056978 Boeing 999\n")
    with pytest.raises(DataError, match=r"variant\(s\) \['Boeing 999'\] are not in"):
        load_fgvc_aircraft(tmp_path)
