"""Training data loaders: digits32 in memory, CIFAR pickled batches and ImageFolder trees.

CIFAR and ImageNet are tested on small files written here in exactly the real on-disk
formats (pickled batches with protocol 2 and bytes keys; an ImageFolder tree of PNGs).
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from workbench.data.training import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    TrainingData,
    list_training_datasets,
    load_training_data,
)
from workbench.errors import DataError, ValidationError


def _draw(dataset, indices):
    return [dataset[i][0] for i in indices]


def _unnormalise(x: torch.Tensor, mean, std) -> np.ndarray:
    """Normalised (3, H, W) float image back to uint8 pixels (H, W, 3)."""
    m = torch.tensor(mean, dtype=torch.float64)[:, None, None]
    s = torch.tensor(std, dtype=torch.float64)[:, None, None]
    pixels = (x.double() * s + m) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------- registry

def test_list_and_unknown_name():
    assert list_training_datasets() == ["cifar10", "cifar100", "cub200", "digits32", "fg_motifs", "fgvc_aircraft",
                                        "imagenet", "mada_scenes", "mini_imagenet", "stanford_cars"]
    with pytest.raises(ValidationError) as info:
        load_training_data("digit32")
    msg = str(info.value)
    assert "'digit32'" in msg and "did you mean 'digits32'" in msg
    assert all(name in msg for name in list_training_datasets())
    with pytest.raises(ValidationError, match="valid names: cifar10, cifar100, cub200, digits32") as info:
        load_training_data("mnist")
    assert "did you mean" not in str(info.value)
    with pytest.raises(ValidationError, match=r"'digits32' takes no option\(s\) \['size'\]; its options: \[\]"):
        load_training_data("digits32", size=64)


# --------------------------------------------------------------------------------- digits32

@pytest.fixture(scope="module")
def digits():
    return load_training_data("digits32"), load_training_data("digits32", augment=False)


@pytest.fixture(scope="module")
def reference():
    """Independent recomputation: raw digits, upsampled to 32x32 in float64."""
    bunch = load_digits()
    up = F.interpolate(torch.from_numpy(bunch.images / 16.0)[:, None], size=(32, 32),
                       mode="bilinear", align_corners=False)[:, 0].numpy()
    return bunch.target, up


def test_digits_split_sizes_stratified_disjoint(digits, reference):
    data, _ = digits
    target, _ = reference
    assert isinstance(data, TrainingData) and data.name == "digits32"
    assert (len(data.train), len(data.test)) == (1347, 450)
    assert data.num_classes == 10 and data.classes == tuple("0123456789")
    tr, te = data.train.indices, data.test.indices
    assert not set(tr) & set(te)
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
    assert data.train.targets == target[tr].tolist() and data.test.targets == target[te].tolist()
    for c in range(10):  # every class is split 75/25 to within one image
        n_class = int((target == c).sum())
        assert abs(int((target[te] == c).sum()) - 0.25 * n_class) <= 1.0
    assert "1,347" in data.description and "450" in data.description


def test_digits_images_normalisation_and_preprocessing(digits, reference):
    _, plain = digits
    target, up = reference
    train_pixels = up[plain.train.indices]
    mean, std = train_pixels.mean(), train_pixels.std()
    pre = plain.preprocessing
    assert pre.input_size == 32
    np.testing.assert_allclose(pre.mean, [mean] * 3, rtol=1e-12)
    np.testing.assert_allclose(pre.std, [std] * 3, rtol=1e-12)
    train = torch.stack(_draw(plain.train, range(len(plain.train))))
    assert train.shape == (1347, 3, 32, 32) and train.dtype == torch.float32
    assert abs(train.double().mean().item()) < 1e-5
    assert abs(train.double().std().item() - 1.0) < 1e-4
    assert torch.equal(train[:, 0], train[:, 2])  # grey replicated to RGB
    for k in (0, 100, 449):  # a test image is its raw digit, upsampled and normalised
        x, label = plain.test[k]
        i = plain.test.indices[k]
        assert label == target[i] and isinstance(label, int)
        expected = (up[i] - mean) / std
        np.testing.assert_allclose(x[1].numpy(), expected, atol=1e-5)


def test_digits_deterministic_and_seed_independent(digits):
    data, plain = digits
    torch.manual_seed(123)
    again = load_training_data("digits32", augment=False)
    assert again.fingerprint == data.fingerprint == plain.fingerprint
    assert len(data.fingerprint) == 64 and int(data.fingerprint, 16) >= 0
    assert np.array_equal(again.train.indices, plain.train.indices)
    assert all(torch.equal(a, b) for a, b in zip(_draw(again.test, range(0, 450, 7)),
                                                 _draw(plain.test, range(0, 450, 7))))


def test_digits_fingerprint_tracks_the_split(monkeypatch, digits):
    from workbench.data.training import digits as digits_module

    monkeypatch.setattr(digits_module, "SPLIT_SEED", 1)
    other = load_training_data("digits32", augment=False)
    assert not np.array_equal(other.test.indices, digits[1].test.indices)
    assert other.fingerprint != digits[1].fingerprint


def test_digits_augmentation_is_a_shift_and_replays_from_torch_rng(digits):
    data, plain = digits
    fill = -data.preprocessing.mean[0] / data.preprocessing.std[0]
    state = torch.get_rng_state()
    first = _draw(data.train, range(60))
    torch.set_rng_state(state)
    assert all(torch.equal(a, b) for a, b in zip(first, _draw(data.train, range(60))))
    shifts = set()
    for k, x in enumerate(first):
        clean = plain.train[k][0]
        padded = F.pad(clean, (2, 2, 2, 2), value=fill)
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(x, padded[:, dy:dy + 32, dx:dx + 32])]
        assert matches, f"augmented item {k} is not a shift of its image by <= 2 px"
        shifts.update(matches)
    assert len(shifts) >= 10  # the offsets really vary


def test_digits_without_augmentation_draws_nothing(digits):
    data, plain = digits
    state = torch.get_rng_state()
    items = _draw(plain.train, range(20)) + _draw(data.test, range(20))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    assert all(torch.equal(a, b) for a, b in zip(items, _draw(plain.train, range(20))
                                                 + _draw(data.test, range(20))))


# ------------------------------------------------------------------------------------ CIFAR

def _dump(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` opcodes, as Python 2's cPickle wrote the
    official CIFAR files (whose keys, names and raw array data are all Python 2 strings)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _dump_py2(path, obj):
    with open(path, "wb") as fh:
        _Py2Pickler(fh, protocol=2).dump(obj)


def _batch(rng, n, num_classes, label_key, name):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).tolist()
    batch = {b"batch_label": name.encode(), b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(n)],
             label_key.encode(): labels}
    if label_key == "fine_labels":
        batch[b"coarse_labels"] = [lab // 5 for lab in labels]
    return batch


def write_cifar10(root, rng, sizes=(3, 2, 3, 2, 3), n_test=4, dump=_dump):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = []
    for i, n in enumerate(sizes, start=1):
        batch = _batch(rng, n, 10, "labels", f"training batch {i} of 5")
        dump(folder / f"data_batch_{i}", batch)
        train.append(batch)
    test = _batch(rng, n_test, 10, "labels", "testing batch 1 of 1")
    dump(folder / "test_batch", test)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    dump(folder / "batches.meta", {b"num_cases_per_batch": 10000, b"label_names": names,
                                   b"num_vis": 3072})
    x = np.concatenate([b[b"data"] for b in train])
    y = sum((b[b"labels"] for b in train), [])
    return (x, y), (test[b"data"], test[b"labels"]), [n.decode() for n in names]


def write_cifar100(root, rng, n_train=6, n_test=3):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train = _batch(rng, n_train, 100, "fine_labels", "training batch 1 of 1")
    test = _batch(rng, n_test, 100, "fine_labels", "testing batch 1 of 1")
    _dump(folder / "train", train)
    _dump(folder / "test", test)
    names = [f"class_{i:03d}".encode() for i in range(100)]
    _dump(folder / "meta", {b"fine_label_names": names,
                            b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]})
    return ((train[b"data"], train[b"fine_labels"]), (test[b"data"], test[b"fine_labels"]),
            [n.decode() for n in names])


def _as_hwc(rows):
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("name, writer, mean, std", [
    ("cifar10", write_cifar10, CIFAR10_MEAN, CIFAR10_STD),
    ("cifar100", write_cifar100, CIFAR100_MEAN, CIFAR100_STD),
])
def test_cifar_pixels_labels_and_classes_exact(tmp_path, name, writer, mean, std):
    (x_train, y_train), (x_test, y_test), names = writer(tmp_path, np.random.default_rng(0))
    data = load_training_data(name, root=tmp_path, augment=False)
    assert data.classes == tuple(names) and data.num_classes == len(names)
    assert data.preprocessing.input_size == 32
    assert data.preprocessing.mean == mean and data.preprocessing.std == std
    for split, x, y in ((data.train, x_train, y_train), (data.test, x_test, y_test)):
        assert len(split) == len(y) and split.targets == list(y)
        images = _as_hwc(x)
        for k in range(len(y)):
            item, label = split[k]
            assert item.shape == (3, 32, 32) and item.dtype == torch.float32
            assert label == y[k] and isinstance(label, int)
            assert np.array_equal(_unnormalise(item, mean, std), images[k])
    # the declared preprocessing, applied to the raw image, gives exactly the test item
    for k in range(len(y_test)):
        torch.testing.assert_close(data.preprocessing(_as_hwc(x_test)[k]), data.test[k][0],
                                   atol=1e-6, rtol=0)
    assert f"train {len(y_train)} / test {len(y_test)}" in data.description


def test_cifar_python2_pickles_as_in_the_official_archive(tmp_path):
    (x_train, y_train), (x_test, y_test), names = write_cifar10(
        tmp_path, np.random.default_rng(8), dump=_dump_py2)
    raw = (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    assert b"_codecs" not in raw and b"U\x04data" in raw  # Python 2 strings, not bytes
    data = load_training_data("cifar10", root=tmp_path, augment=False)
    assert data.classes == tuple(names) and data.train.targets == y_train
    for split, x in ((data.train, x_train), (data.test, x_test)):
        for k, image in enumerate(_as_hwc(x)):
            assert np.array_equal(_unnormalise(split[k][0], CIFAR10_MEAN, CIFAR10_STD), image)


def test_cifar_augmentation_crop_flip_and_replay(tmp_path):
    (x_train, _), _, _ = write_cifar10(tmp_path, np.random.default_rng(1))
    data = load_training_data("cifar10", root=tmp_path)
    state = torch.get_rng_state()
    first = _draw(data.train, list(range(len(data.train))) * 2)
    torch.set_rng_state(state)
    again = _draw(data.train, list(range(len(data.train))) * 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    images = torch.from_numpy(x_train.reshape(-1, 3, 32, 32))
    n = len(images)
    seen_flip, seen_shift = set(), set()
    for k, x in enumerate(first):
        pixels = torch.from_numpy(_unnormalise(x, CIFAR10_MEAN, CIFAR10_STD)).permute(2, 0, 1)
        padded = F.pad(images[k % n], (4, 4, 4, 4), value=0)
        matches = [(top, left, flip) for top in range(9) for left in range(9)
                   for flip in (False, True)
                   if torch.equal(pixels, (lambda c: c.flip(-1) if flip else c)(
                       padded[:, top:top + 32, left:left + 32]))]
        assert matches, f"augmented item {k % n} is no zero-padded crop (+ flip) of its image"
        seen_flip.update(m[2] for m in matches)
        seen_shift.update(m[:2] for m in matches)
    assert seen_flip == {False, True} and len(seen_shift) > 5
    # draw for draw the same images as torchvision's v2 RandomCrop + RandomHorizontalFlip
    reference = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    for k in range(n):
        state = torch.get_rng_state()
        item = data.train[k][0]
        after = torch.get_rng_state()
        torch.set_rng_state(state)
        expected = TF.normalize(reference(images[k]).float() / 255, CIFAR10_MEAN, CIFAR10_STD)
        assert torch.equal(torch.get_rng_state(), after)
        torch.testing.assert_close(item, expected, atol=1e-6, rtol=0)


def test_cifar_default_root_and_missing_folder(tmp_path, data_cache):
    with pytest.raises(DataError) as info:
        load_training_data("cifar10")
    msg = str(info.value)
    expected_root = data_cache / "training" / "cifar10"
    assert str(expected_root / "cifar-10-batches-py") in msg
    assert "data_batch_1..5" in msg and "test_batch" in msg and "batches.meta" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    with pytest.raises(DataError, match="cifar-100-python/{train,test,meta}"):
        load_training_data("cifar100", root=tmp_path / "nothing")
    # the default root is used when the files are there
    write_cifar10(expected_root, np.random.default_rng(2))
    assert len(load_training_data("cifar10").test) == 4


def test_cifar_missing_and_truncated_files_named(tmp_path):
    write_cifar10(tmp_path, np.random.default_rng(3))
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "batches.meta").unlink()
    with pytest.raises(DataError, match=r"lacks batches\.meta"):
        load_training_data("cifar10", root=tmp_path)
    shutil.rmtree(folder)
    write_cifar10(tmp_path, np.random.default_rng(3))
    path = folder / "data_batch_3"
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        load_training_data("cifar10", root=tmp_path)
    assert str(path) in str(info.value)


def test_cifar_malformed_batches_rejected(tmp_path):
    write_cifar10(tmp_path, np.random.default_rng(4))
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump(path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(DataError, match=r"labels range 0\.\.10, expected 0\.\.9") as info:
        load_training_data("cifar10", root=tmp_path)
    assert str(path) in str(info.value)
    _dump(path, {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match=r"shape \(N, 3072\), found uint8 \(2, 1024\)"):
        load_training_data("cifar10", root=tmp_path)


class _Payload:
    def __reduce__(self):
        return (os.getpid, ())


def test_cifar_pickle_naming_other_code_is_refused(tmp_path):
    write_cifar10(tmp_path, np.random.default_rng(5))
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    _dump(path, {b"data": _Payload(), b"labels": []})
    with pytest.raises(DataError, match="getpid") as info:
        load_training_data("cifar10", root=tmp_path)
    assert str(path) in str(info.value)


def test_cifar_failed_download_names_url_and_folder(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    calls = []

    def offline(url, download_root, **kwargs):
        calls.append((url, download_root))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        load_training_data("cifar100", root=tmp_path, download=True)
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", str(tmp_path))]
    msg = str(info.value)
    assert "no network" in msg and str(tmp_path) in msg and "cifar-100-python" in msg
    # files already present: no download is attempted
    write_cifar100(tmp_path, np.random.default_rng(6))
    assert len(load_training_data("cifar100", root=tmp_path, download=True).train) == 6
    assert len(calls) == 1


def test_cifar_fingerprint_is_content_not_location(tmp_path):
    write_cifar10(tmp_path / "a", np.random.default_rng(7))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    fa = load_training_data("cifar10", root=tmp_path / "a").fingerprint
    assert load_training_data("cifar10", root=tmp_path / "b", augment=False).fingerprint == fa
    path = tmp_path / "b" / "cifar-10-batches-py" / "test_batch"
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch[b"data"][0, 0] ^= 1  # one pixel, one bit
    _dump(path, batch)
    assert load_training_data("cifar10", root=tmp_path / "b").fingerprint != fa


# --------------------------------------------------------------------------------- ImageNet

def write_imagefolder(root, rng, counts=(("train", 2), ("val", 1)), classes=("n01", "n02", "n03")):
    files = {}
    for split, n in counts:
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
                path = root / split / c / f"{c}_{i}.png"
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
                files[path] = classes.index(c)
    return files


def test_imagenet_tree_labels_transforms_and_replay(tmp_path):
    files = write_imagefolder(tmp_path, np.random.default_rng(0))
    data = load_training_data("imagenet", root=tmp_path)
    assert data.classes == ("n01", "n02", "n03") and data.num_classes == 3
    assert (len(data.train), len(data.test)) == (6, 3)
    pre = data.preprocessing
    assert (pre.input_size, pre.resize_size) == (224, 256)
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    for k in range(len(data.test)):  # val items are exactly the declared preprocessing
        path, label = data.test.samples[k]
        x, y = data.test[k]
        assert y == files[Path(path)] == label and path.split(os.sep)[-3] == "val"
        assert type(x) is torch.Tensor and x.shape == (3, 224, 224) and x.dtype == torch.float32
        torch.testing.assert_close(x, pre(Image.open(path)), atol=1e-6, rtol=0)
    state = torch.get_rng_state()
    first = _draw(data.train, range(6))
    torch.set_rng_state(state)
    second = _draw(data.train, range(6))
    assert all(a.shape == (3, 224, 224) and torch.equal(a, b) for a, b in zip(first, second))
    third = _draw(data.train, range(6))
    assert not all(torch.equal(a, b) for a, b in zip(first, third))  # really random
    plain = load_training_data("imagenet", root=tmp_path, augment=False)
    assert torch.equal(plain.train[0][0], plain.train[0][0])
    torch.testing.assert_close(plain.train[0][0], pre(Image.open(plain.train.samples[0][0])),
                               atol=1e-6, rtol=0)
    assert plain.fingerprint == data.fingerprint


def test_imagenet_fingerprint_lists_paths_and_sizes(tmp_path):
    write_imagefolder(tmp_path / "a", np.random.default_rng(1))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    fa = load_training_data("imagenet", root=tmp_path / "a").fingerprint
    assert load_training_data("imagenet", root=tmp_path / "b").fingerprint == fa
    shutil.copy(tmp_path / "b" / "val" / "n01" / "n01_0.png",
                tmp_path / "b" / "val" / "n01" / "extra.png")
    assert load_training_data("imagenet", root=tmp_path / "b").fingerprint != fa


def test_imagenet_layout_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_training_data("imagenet", root=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value) and "train/<class>/" in str(info.value)
    write_imagefolder(tmp_path / "a", np.random.default_rng(2), counts=(("train", 1),))
    with pytest.raises(DataError, match="split folder .*val does not exist"):
        load_training_data("imagenet", root=tmp_path / "a")
    write_imagefolder(tmp_path / "b", np.random.default_rng(3), counts=(("train", 1),))
    write_imagefolder(tmp_path / "b", np.random.default_rng(3), counts=(("val", 1),),
                      classes=("n01", "n02", "n04"))
    with pytest.raises(DataError, match=r"only in train: \['n03'\]; only in val: \['n04'\]"):
        load_training_data("imagenet", root=tmp_path / "b")
    write_imagefolder(tmp_path / "c", np.random.default_rng(4))
    for f in (tmp_path / "c" / "val" / "n02").iterdir():
        f.unlink()
    with pytest.raises(DataError) as info:
        load_training_data("imagenet", root=tmp_path / "c")
    assert str(tmp_path / "c" / "val") in str(info.value) and "n02" in str(info.value)


def test_download_of_a_dataset_that_cannot_be_downloaded_is_refused_naming_where_files_go(tmp_path):
    from workbench.data.training import load_training_data

    with pytest.raises(ValidationError, match=r"'cub200' cannot be downloaded \(download=True\); place its files "
                                              r"under root \(default .*cub200\)"):
        load_training_data("cub200", root=tmp_path, download=True)
