import zipfile

import numpy as np
import pytest
from PIL import Image

from workbench.data import StimulusSet
from workbench.errors import DataError


def _images(n=4, size=8):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _zip(path, arrays, names):
    with zipfile.ZipFile(path, "w") as archive:
        for array, name in zip(arrays, names):
            Image.fromarray(array).save(path.parent / name)
            archive.write(path.parent / name, name)
    return path


def test_arrays_keep_order_and_pixels():
    arrays = _images()
    stimuli = StimulusSet.from_arrays(arrays, ["a", "b", "c", "d"])
    assert len(stimuli) == 4 and stimuli.ids == ["a", "b", "c", "d"]
    assert stimuli[2].mode == "RGB"
    np.testing.assert_array_equal(stimuli.to_array(2), arrays[2])
    np.testing.assert_array_equal(np.asarray(stimuli[-1]), arrays[3])
    assert [np.asarray(im).sum() for im in stimuli[1:3]] == [a.sum() for a in arrays[1:3]]
    with pytest.raises(IndexError):
        stimuli[4]


def test_grayscale_arrays_are_mode_l():
    stimuli = StimulusSet.from_arrays([np.full((4, 5), 7, dtype=np.uint8)], ["g"])
    assert stimuli[0].mode == "L" and stimuli[0].size == (5, 4)


def test_fingerprint_tracks_content_ids_and_order():
    arrays = _images()
    ids = ["a", "b", "c", "d"]
    base = StimulusSet.from_arrays(arrays, ids).fingerprint()
    assert base == StimulusSet.from_arrays([a.copy() for a in arrays], ids).fingerprint()
    assert len(base) == 64
    assert base != StimulusSet.from_arrays(arrays[::-1], ids[::-1]).fingerprint()
    assert base != StimulusSet.from_arrays(arrays, ["a", "b", "c", "e"]).fingerprint()
    changed = [a.copy() for a in arrays]
    changed[1][0, 0, 0] ^= 1
    assert base != StimulusSet.from_arrays(changed, ids).fingerprint()


def test_zip_images_load_lazily_in_member_order(tmp_path):
    arrays = _images()
    names = [f"image{i + 1:04d}.png" for i in range(4)]
    path = _zip(tmp_path / "s.zip", arrays, names)
    stimuli = StimulusSet.from_zip(path, names[::-1], ["w", "x", "y", "z"])
    np.testing.assert_array_equal(stimuli.to_array(0), arrays[3])
    assert stimuli.fingerprint() != StimulusSet.from_zip(path, names, list("wxyz")).fingerprint()


def test_folder_images(tmp_path):
    arrays = _images()
    names = [f"{i}.png" for i in range(4)]
    for array, name in zip(arrays, names):
        Image.fromarray(array).save(tmp_path / name)
    stimuli = StimulusSet.from_folder(tmp_path, names, names)
    np.testing.assert_array_equal(stimuli.to_array(1), arrays[1])
    with pytest.raises(DataError, match="1 image file"):
        StimulusSet.from_folder(tmp_path, ["0.png", "nope.png"], ["a", "b"])


def test_truncated_and_incomplete_zips_are_errors(tmp_path):
    names = ["a.png", "b.png"]
    path = _zip(tmp_path / "s.zip", _images(2), names)
    with pytest.raises(DataError, match=r"s.zip: 1 image\(s\) missing from the zip"):
        StimulusSet.from_zip(path, ["a.png", "c.png"], ["a", "c"])
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="t.zip: not a readable zip archive"):
        StimulusSet.from_zip(truncated, names, names)


def test_duplicate_ids_and_count_mismatch():
    with pytest.raises(DataError, match="unique"):
        StimulusSet.from_arrays(_images(2), ["a", "a"])
    with pytest.raises(DataError, match="found 2 images but 3 stimulus ids"):
        StimulusSet.from_arrays(_images(2), ["a", "b", "c"])
