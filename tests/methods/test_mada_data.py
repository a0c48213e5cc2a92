"""MADA's data and model: generated domains, the real datasets' layouts and encodings, the segmentation net."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


def test_generated_domains_are_deterministic_per_seed_and_shifted():
    from workbench.methods.mada.data import SCENE_CLASSES, generate_scenes

    a = generate_scenes(3, "target_train", 12, 32)
    b = generate_scenes(3, "target_train", 12, 32)
    c = generate_scenes(4, "target_train", 12, 32)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])
    images, labels, conditions = a
    assert images.shape == (12, 3, 32, 32) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1 and labels.max() < len(SCENE_CLASSES)
    assert set(conditions) <= {0, 1, 2}
    # the same layouts drawn in the source style: identical labels, different pixels
    src, src_labels, src_cond = generate_scenes(3, "target_train", 12, 32, style="source")
    np.testing.assert_array_equal(src_labels, labels)
    assert (src_cond == -1).all() and np.abs(src - images).mean() > 0.05
    # a split is a prefix of a longer one (the index, not the count, seeds each scene)
    np.testing.assert_array_equal(generate_scenes(3, "source_train", 5, 32)[0],
                                  generate_scenes(3, "source_train", 8, 32)[0][:5])
    with pytest.raises(Exception, match="split"):
        generate_scenes(3, "validation", 2)


def test_png16_reader_decodes_every_filter_type(tmp_path):
    from workbench.methods.mada.data import read_png16, write_png16

    rng = np.random.default_rng(0)
    array = rng.integers(0, 65536, (7, 5, 3)).astype(np.uint16)
    path = tmp_path / "x.png"
    write_png16(path, array, filters=(0, 1, 2, 3, 4))
    np.testing.assert_array_equal(read_png16(path), array)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="bad.png"):
        read_png16(tmp_path / "bad.png")


def _write_rgb(path, h, w, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def test_real_dataset_layouts_and_label_encodings(tmp_path):
    from workbench.methods.mada.data import (
        CITYSCAPES_ID_TO_TRAIN,
        FileSegmentation,
        cityscapes_pairs,
        gta5_pairs,
        read_label,
        synthia_pairs,
        write_png16,
    )

    ids = np.array([[7, 8, 11, 26], [0, 33, 24, 255], [23, 21, 22, 1]], np.uint8)
    expected19 = np.array([[0, 1, 2, 13], [255, 18, 11, 255], [10, 8, 9, 255]])
    # Cityscapes: leftImg8bit/<split>/<city>/X_leftImg8bit.png + gtFine/.../X_gtFine_labelIds.png
    city = tmp_path / "cityscapes"
    for split in ("train", "val"):
        _write_rgb(city / "leftImg8bit" / split / "aachen" / "aachen_000000_000019_leftImg8bit.png", 3, 4, 100)
        (city / "gtFine" / split / "aachen").mkdir(parents=True)
        Image.fromarray(ids).save(city / "gtFine" / split / "aachen" / "aachen_000000_000019_gtFine_labelIds.png")
    pairs = cityscapes_pairs(city, "val")
    assert len(pairs) == 1 and pairs[0][1].name.endswith("_gtFine_labelIds.png")
    np.testing.assert_array_equal(read_label(pairs[0][1], "cityscapes"), expected19)
    # GTA5: images/N.png + labels/N.png, a palette PNG whose indices are the same ids
    gta = tmp_path / "gta5"
    _write_rgb(gta / "images" / "00001.png", 3, 4, 50)
    (gta / "labels").mkdir()
    palette = Image.fromarray(ids, mode="P")
    palette.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    palette.save(gta / "labels" / "00001.png")
    np.testing.assert_array_equal(read_label(gta5_pairs(gta)[0][1], "gta5"), expected19)
    # SYNTHIA RAND-CITYSCAPES: RGB/N.png + GT/LABELS/N.png, 16-bit, class id in the first channel
    syn = tmp_path / "synthia"
    _write_rgb(syn / "RGB" / "0000000.png", 2, 5, 10)
    (syn / "GT" / "LABELS").mkdir(parents=True)
    label = np.zeros((2, 5, 3), np.uint16)
    label[..., 0] = [[3, 4, 2, 21, 1], [8, 0, 16, 18, 12]]   # road sidewalk building wall sky / car void terrain truck motorcycle
    label[..., 1] = 7000                                     # instance ids: ignored
    write_png16(syn / "GT" / "LABELS" / "0000000.png", label, filters=(4, 1))
    path = synthia_pairs(syn)[0][1]
    np.testing.assert_array_equal(read_label(path, "synthia"), [[0, 1, 2, 3, 10], [13, 255, 9, 14, 17]])
    # 16 classes: terrain (9), truck (14), train (16) ignored, the rest renumbered
    np.testing.assert_array_equal(read_label(path, "synthia", 16), [[0, 1, 2, 3, 9], [12, 255, 255, 255, 14]])
    assert len(CITYSCAPES_ID_TO_TRAIN) == 19 and sorted(CITYSCAPES_ID_TO_TRAIN.values()) == list(range(19))
    # items: normalised image, labels resized by nearest neighbour
    image, lab = FileSegmentation(pairs, "cityscapes", 19, (6, 8))[0]
    assert image.shape == (3, 6, 8) and lab.shape == (6, 8) and lab.dtype == torch.int64
    np.testing.assert_array_equal(lab[::2, ::2].numpy(), expected19)
    with pytest.raises(Exception, match="labels"):
        (gta / "labels" / "00001.png").unlink()
        gta5_pairs(gta)


def test_segmentation_model_outputs_full_resolution_and_exposes_features():
    from workbench.models.registry import build_architecture, model_family

    arch = build_architecture("seg_cnn", num_classes=6, widths=(4, 8, 8), feature_dim=5)
    net = arch.module.eval()
    x = torch.randn(2, 3, 32, 40)
    features, low = net.forward_features(x)
    assert features.shape == (2, 5, 8, 10) and low.shape == (2, 6, 8, 10)
    logits = net(x)
    assert logits.shape == (2, 6, 32, 40)
    torch.testing.assert_close(logits, torch.nn.functional.interpolate(low, size=(32, 40), mode="bilinear"))
    modules = dict(net.named_modules())
    assert all(layer in modules for layer in arch.layers) and arch.layers[-1] == "decoder"
    assert model_family("seg_cnn") == "cnn"
