"""PART's data: the generated motif task (registered as ``fg_motifs``), and the benchmarks at PART's view."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.training import load_training_data
from workbench.errors import ValidationError
from workbench.methods.part.data import MOTIF, load_data, make_glyphs, make_motif_task


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


def _motifs(seed, **options):
    return load_training_data("fg_motifs", seed=seed, augment=False, **options)


def test_motif_training_data_by_name():
    data = _motifs(1, classes=2, train_per_class=3, test_per_class=2)
    x, y = data.test[1]
    assert x.shape == (3, 32, 32) and y == 1 and data.num_classes == 2
    assert np.allclose(((x.numpy() * 0.5 + 0.5) * 255).round(), data.test.pixels[1].transpose(2, 0, 1))
    assert data.fingerprint == _motifs(1, classes=2, train_per_class=3, test_per_class=2).fingerprint
    assert data.fingerprint != _motifs(2, classes=2, train_per_class=3, test_per_class=2).fingerprint
    assert data.fingerprint != _motifs(1, classes=2, train_per_class=4, test_per_class=2).fingerprint
    assert data.test.motif_boxes.shape == (4, 4)
    with pytest.raises(ValidationError, match=r"'fg_motifs' takes no option\(s\) \['size'\]; its options: "
                                              r"\['classes', 'distractors', 'seed', 'test_per_class'"):
        _motifs(1, size=64)


def test_part_reads_the_benchmarks_at_its_448_px_view(tmp_path):
    from types import SimpleNamespace

    from tests.data.test_training_benchmarks import write_cub

    write_cub(tmp_path)
    config = SimpleNamespace(dataset="cub200", data_root=tmp_path)
    part, default = load_data(config, augment=False), load_training_data("cub200", root=tmp_path, augment=False)
    assert part.test[0][0].shape == (3, 448, 448) and default.test[0][0].shape == (3, 224, 224)
    assert part.preprocessing.input_size == 448 and part.fingerprint != default.fingerprint
    assert part.train.boxes.tolist() == default.train.boxes.tolist()


