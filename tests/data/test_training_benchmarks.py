"""The file-based benchmarks of the registry (CUB-200-2011, Stanford Cars, FGVC-Aircraft) in their
official layouts, and the one transform builder they and ImageNet use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data.training import load_training_data
from workbench.data.training.transforms import image_transforms
from workbench.errors import DataError, ValidationError
from workbench.models.preprocessing import Preprocessing


def _jpeg(path, colour, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def write_cub(root):
    """A 3-image CUB-200-2011 tree under ``root`` (2 train, 1 test; boxes and class names)."""
    base = root / "CUB_200_2011"
    paths = ["001.Albatross/a.jpg", "001.Albatross/b.jpg", "002.Auklet/c.jpg"]
    for i, p in enumerate(paths):
        _jpeg(base / "images" / p, (40 * i, 0, 0))
    (base / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in enumerate(paths, 1)))
    (base / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    (base / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    (base / "bounding_boxes.txt").write_text("1 1.0 2.0 10.0 5.0\n2 0 0 4 4\n3 3.5 1.0 2.0 2.0\n")
    (base / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n")
    return base


def test_cub200_official_layout_and_one_fingerprint_per_view(tmp_path):
    base = write_cub(tmp_path)
    data = load_training_data("cub200", root=tmp_path, augment=False)
    assert data.classes == ("001.Albatross", "002.Auklet")
    assert data.train.targets == [0, 1] and data.test.targets == [0]
    assert data.train.paths[1].endswith("002.Auklet/c.jpg")
    assert data.train.boxes.tolist() == [[1.0, 2.0, 11.0, 7.0], [3.5, 1.0, 5.5, 3.0]]
    x, y = data.test[0]
    assert x.shape == (3, 224, 224) and y == 0
    assert (data.preprocessing.input_size, data.preprocessing.resize_size) == (224, 256)
    torch.testing.assert_close(x, data.preprocessing(Image.open(data.test.paths[0])), atol=1e-6, rtol=0)
    large = load_training_data("cub200", root=tmp_path, augment=True, size=448, resize=(512, 512),
                               augmentation="fine_grained")
    assert large.train[0][0].shape == (3, 448, 448) and large.preprocessing.resize_size is None
    assert large.fingerprint != data.fingerprint
    assert load_training_data("cub200", root=tmp_path, size=224).fingerprint == data.fingerprint
    (base / "train_test_split.txt").write_text("1 1\n2 0\n")
    with pytest.raises(DataError, match=r"train_test_split.txt lacks image id\(s\) \[3\]"):
        load_training_data("cub200", root=tmp_path, augment=False)


def test_default_root_is_the_data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    write_cub(tmp_path / "training" / "cub200")
    assert load_training_data("cub200").train.targets == [0, 1]


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
    data = load_training_data("stanford_cars", root=tmp_path, augment=True)
    assert data.classes == ("AM General Hummer", "Acura RL")
    assert data.train.targets == [1, 0] and data.test.targets == [1]
    assert data.train.boxes[0].tolist() == [1, 2, 15, 12]
    assert data.test.paths[0].endswith("cars_test/00001.jpg")
    assert data.train[0][0].shape == (3, 448, 448)
    savemat(devkit / "cars_test_annos_withlabels.mat", annos([(3, 3, 9, 9, 7, "00001.jpg")]))
    with pytest.raises(DataError, match=r"classes \[7\] outside 1..2"):
        load_training_data("stanford_cars", root=tmp_path)


def test_fgvc_aircraft_variant_files(tmp_path):
    data_dir = tmp_path / "fgvc-aircraft-2013b" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "variants.txt").write_text("707-320\nA300B4\nF/A-18\n")
    (data_dir / "images_variant_trainval.txt").write_text("1025794 F/A-18\n1340192 707-320\n")
    (data_dir / "images_variant_test.txt").write_text("0056978 A300B4\n")
    (data_dir / "images_box.txt").write_text("1025794 1 2 30 40\n0056978 5 5 9 9\n")
    for i in ("1025794", "1340192", "0056978"):
        _jpeg(data_dir / "images" / f"{i}.jpg", (0, 0, 99))
    data = load_training_data("fgvc_aircraft", root=tmp_path, augment=False)
    assert data.num_classes == 3 and data.classes[2] == "F/A-18"
    assert data.train.targets == [2, 0] and data.test.targets == [1]
    assert data.train.boxes[0].tolist() == [1, 2, 30, 40] and np.isnan(data.train.boxes[1]).all()
    assert data.test.paths[0].endswith("images/0056978.jpg")
    (data_dir / "images_variant_test.txt").write_text("0056978 Boeing 999\n")
    with pytest.raises(DataError, match=r"variant\(s\) \['Boeing 999'\] are not in"):
        load_training_data("fgvc_aircraft", root=tmp_path)


def test_image_transforms_test_view_is_the_preprocessing_and_training_replays(tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    train, test = image_transforms(24, 28, "crop_flip")
    torch.testing.assert_close(test(image), Preprocessing(24, resize_size=28)(image), atol=1e-6, rtol=0)
    square = image_transforms(24, (30, 30), None)[1](image)
    torch.testing.assert_close(square, Preprocessing(30)(image)[:, 3:27, 3:27], atol=1e-6, rtol=0)
    for augmentation in ("crop_flip", "fine_grained"):
        train = image_transforms(24, (30, 30), augmentation)[0]
        state = torch.get_rng_state()
        first = [train(image) for _ in range(4)]
        torch.set_rng_state(state)
        assert all(torch.equal(a, train(image)) and a.shape == (3, 24, 24) for a in first)
    with pytest.raises(ValidationError, match=r"augmentation='jitter' is not valid; expected one of "
                                              r"\['crop_flip', 'fine_grained'\]"):
        image_transforms(24, 28, "jitter")
