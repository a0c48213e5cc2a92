import io
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from workbench.data import load, read_manifest
from workbench.data.loaders.cowley import load_cowley2023
from workbench.errors import DataError

RAW = "cowley_v4/responses_raw/responses_210325.npy"
AVG = "cowley_v4/responses_repeat_averaged/responses_210325.npy"
ZIP = "cowley_v4/images/images_210325.zip"


@pytest.fixture
def dataset(mirror):
    return load("cowley2023_v4", mirror=mirror)


def _odd_even_reliability(raw):
    """Direct odd/even split-half reliability of (neurons, images, repeats) spike counts."""
    out = []
    for n in range(raw.shape[0]):
        a, b = [], []
        for i in range(raw.shape[1]):
            reps = raw[n, i][~np.isnan(raw[n, i])]
            a.append(reps[0::2].mean())
            b.append(reps[1::2].mean())
        r = np.corrcoef(a, b)[0, 1]
        out.append(2 * r / (1 + r))
    return np.array(out)


def test_shapes_ids_and_coords(dataset, mirror):
    responses = dataset.responses("V4")
    assert dataset.regions == ["V4"] and dataset.kind("V4") == "responses"
    assert responses.dims == ("stimulus", "neuroid") and responses.shape == (640, 50)
    assert dataset.stimuli.ids[:2] == ["image0001", "image0002"] and len(dataset.stimuli) == 640
    assert list(responses["stimulus_id"].values) == dataset.stimuli.ids
    assert set(responses["region"].values) == {"V4"}
    assert set(responses["species"].values) == {"macaque"}
    assert set(responses["dataset"].values) == {"cowley2023_v4"}
    np.testing.assert_array_equal(responses.values, np.load(mirror / AVG).T)
    repeats = dataset.repeats("V4")
    assert repeats.shape == (640, 50, 10)
    np.testing.assert_array_equal(repeats.values, np.load(mirror / RAW).transpose(1, 0, 2))


def test_images_are_aligned_with_responses(dataset, mirror):
    with zipfile.ZipFile(mirror / ZIP) as archive:
        for i in (0, 317, 639):
            direct = np.asarray(Image.open(io.BytesIO(archive.read(f"image{i + 1:04d}.jpg"))))
            np.testing.assert_array_equal(dataset.stimuli.to_array(i), direct)
    assert dataset.stimuli[0].size == (112, 112) and dataset.stimuli[0].mode == "RGB"


def test_median_split_half_reliability_of_session_210325(mirror):
    dataset = load("cowley2023_v4", mirror=mirror, reliability_method="odd_even")
    direct = _odd_even_reliability(np.load(mirror / RAW))
    np.testing.assert_allclose(dataset.reliability("V4"), direct, rtol=1e-10)
    assert np.median(dataset.reliability("V4")) == pytest.approx(np.median(direct))
    assert 0.7 < np.median(direct) < 0.85
    assert dataset.ceiling("V4", "regression") == pytest.approx(direct.mean())


def test_reliability_threshold_filters_neuroids(mirror):
    direct = _odd_even_reliability(np.load(mirror / RAW))
    dataset = load("cowley2023_v4", mirror=mirror, reliability_method="odd_even",
                   reliability_threshold=0.8)
    kept = dataset.responses("V4")
    assert kept.sizes["neuroid"] == int((direct >= 0.8).sum()) < 50
    assert list(kept["neuroid_id"].values) == [f"210325_n{i:03d}" for i in np.flatnonzero(direct >= 0.8)]
    assert dataset.repeats("V4").sizes["neuroid"] == kept.sizes["neuroid"]
    summary = dataset.summary()["regions"]["V4"]
    assert summary["n_recorded"] == 50
    assert summary["median_reliability_recorded"] == pytest.approx(np.median(direct))
    assert summary["median_reliability"] == pytest.approx(np.median(direct[direct >= 0.8]))


def test_rdm_and_ceilings(dataset):
    from workbench.metrics import rdm

    np.testing.assert_allclose(dataset.rdm("V4").values, rdm(dataset.responses("V4").values))
    rsa_ceiling = dataset.ceiling("V4", "rsa")
    assert 0.5 < rsa_ceiling < 1.0
    assert dataset.ceiling("V4", "rsa") == rsa_ceiling  # memoised, deterministic
    assert dataset.ceiling("V4", "svcca") is None


def test_session_201025_is_repeat_averaged(mirror):
    dataset = load("cowley2023_v4", mirror=mirror, session="201025")
    assert dataset.responses("V4").shape == (1200, 89)
    assert dataset.repeats("V4") is None and dataset.reliability("V4") is None
    assert dataset.ceiling("V4", "rsa") is None
    with pytest.raises(DataError, match=r"session='1' is not valid; expected one of \['201025', '210325'\]"):
        load("cowley2023_v4", mirror=mirror, session="1")


# --- bad input: the loader is driven with modified copies of the real files -------------

@pytest.fixture
def files(mirror, tmp_path):
    manifest = read_manifest("cowley2023_v4")
    out = {}
    for entry in manifest.files:
        target = tmp_path / "copy" / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / entry.path, target)
        out[entry.path] = target
    return manifest, out


def test_truncated_zip(files):
    manifest, paths = files
    data = paths[ZIP].read_bytes()
    paths[ZIP].write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="images_210325.zip: not a readable zip archive"):
        load_cowley2023(manifest, paths)


def test_image_count_differs_from_response_count(files):
    manifest, paths = files
    with zipfile.ZipFile(paths[ZIP]) as archive, \
            zipfile.ZipFile(paths[ZIP].with_name("short.zip"), "w") as short:
        for name in archive.namelist()[:-1]:
            short.writestr(name, archive.read(name))
    paths[ZIP].write_bytes(paths[ZIP].with_name("short.zip").read_bytes())
    with pytest.raises(DataError, match="images_210325.zip: holds 639 images but .*responses to 640"):
        load_cowley2023(manifest, paths)


def test_nan_outside_the_padding(files):
    manifest, paths = files
    raw = np.load(paths[RAW])
    raw[3, 10, 0] = np.nan  # a NaN before real repeats
    np.save(paths[RAW], raw)
    with pytest.raises(DataError, match="responses_210325.npy: NaN outside the repeat padding"):
        load_cowley2023(manifest, paths)
    raw = np.load(paths[RAW])
    raw[3, 10, 0] = 1.0
    n_valid = int((~np.isnan(raw[3, 10])).sum())
    raw[3, 10, n_valid - 1] = np.nan  # this neuron lacks a repeat the others have
    np.save(paths[RAW], raw)
    with pytest.raises(DataError, match="different number of repeats across neuroids"):
        load_cowley2023(manifest, paths)


def test_wrong_shapes(files):
    manifest, paths = files
    np.save(paths[RAW], np.load(paths[RAW])[:, :, 0])
    with pytest.raises(DataError, match=r"responses_210325.npy: expected a 3-D array, found shape \(50, 640\)"):
        load_cowley2023(manifest, paths)
    np.save(paths[RAW], np.ones((50, 600, 10)))
    with pytest.raises(DataError, match=r"shape \(50, 600, 10\) does not match"):
        load_cowley2023(manifest, paths)


def test_averages_must_match_the_repeats(files):
    manifest, paths = files
    avg = np.load(paths[AVG])
    avg[0, 0] += 1
    np.save(paths[AVG], avg)
    with pytest.raises(DataError, match="differs from the repeat mean"):
        load_cowley2023(manifest, paths)


def test_constant_neuroids_are_dropped_with_a_warning(files):
    manifest, paths = files
    raw = np.load(paths[RAW])
    raw[[4, 7]] = np.where(np.isnan(raw[[4, 7]]), np.nan, 2.0)
    np.save(paths[RAW], raw)
    np.save(paths[AVG], np.nanmean(raw, axis=2))
    with pytest.warns(UserWarning, match="dropped 2 of 50 neuroids with no variance"):
        dataset = load_cowley2023(manifest, paths)
    ids = list(dataset.responses("V4")["neuroid_id"].values)
    assert len(ids) == 48 and "210325_n004" not in ids and "210325_n007" not in ids


def test_corrupt_mirror_file_is_never_used(tmp_path, mirror, data_cache):
    bad_mirror = tmp_path / "mirror"
    shutil.copytree(mirror / "cowley_v4", bad_mirror / "cowley_v4")
    target = bad_mirror / RAW
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"responses_210325.npy .*sha256 [0-9a-f]{64}, expected 4008dbbf"):
        load("cowley2023_v4", mirror=bad_mirror)
    assert not (data_cache / RAW).exists()


def test_load_without_fetching_uses_the_verified_cache(mirror, data_cache):
    with pytest.raises(DataError, match=r"not in .*; run `workbench data fetch cowley2023_v4`"):
        load("cowley2023_v4", fetch=False)
    load("cowley2023_v4", mirror=mirror, session="201025")
    assert load("cowley2023_v4", fetch=False, session="201025").responses("V4").shape == (1200, 89)
    (data_cache / AVG).write_bytes(b"damaged")
    with pytest.raises(DataError, match="responses_210325.npy .*size 7 bytes"):
        load("cowley2023_v4", fetch=False)
