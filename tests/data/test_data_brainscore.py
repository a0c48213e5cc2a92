"""MajajHong2015 (Brain-Score netCDF) and Chang 2021 loaders on small files in their formats."""

import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from PIL import Image

from workbench.data import fetch, load, read_manifest
from workbench.data.fetch import MIRROR_HINT
from workbench.errors import ChecksumError, DataError

N_IMAGES, N_V4, N_IT = 8, 3, 4


def _write_majajhong(folder, *, drop_image=None, extra_image=False, time_bins=((70, 170),)):
    """A small assembly shaped like Brain-Score's: presentation x neuroid x time_bin."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"{h:040x}" for h in rng.integers(0, 2**60, N_IMAGES)]  # sha1-like image ids
    repeats = [3, 2, 3, 3, 1, 3, 2, 3]
    presented = [i for r in range(3) for i in range(N_IMAGES) if r < repeats[i]]
    rng.shuffle(presented)
    presented = [i for i in presented if i != drop_image]
    n_neur = N_V4 + N_IT
    signal = rng.normal(size=(N_IMAGES, n_neur))
    values = signal[presented] + 0.1 * rng.normal(size=(len(presented), n_neur))
    values = np.repeat(values[:, :, None], len(time_bins), axis=2)
    image_ids = [ids[i] for i in presented] + (["f" * 40] if extra_image else [])
    if extra_image:
        values = np.concatenate([values, values[:1]])
    assembly = xr.DataArray(
        values, dims=("presentation", "neuroid", "time_bin"),
        coords={"image_id": ("presentation", image_ids),
                "repetition": ("presentation", np.zeros(len(image_ids), int)),
                "neuroid_id": ("neuroid", [f"Chabo_L_M_{i}" for i in range(n_neur)]),
                "region": ("neuroid", ["V4"] * N_V4 + ["IT"] * N_IT),
                "animal": ("neuroid", ["Chabo"] * n_neur),
                "time_bin_start": ("time_bin", [t[0] for t in time_bins]),
                "time_bin_end": ("time_bin", [t[1] for t in time_bins])},
        name="dicarlo.MajajHong2015.public")
    assembly.to_netcdf(folder / "assy_dicarlo_MajajHong2015_public.nc", engine="h5netcdf")
    table = pd.DataFrame({"image_id": ids, "filename": [f"{i}.png" for i in ids],
                          "object_name": ["car"] * N_IMAGES})
    table.to_csv(folder / "image_dicarlo_hvm-public.csv", index=False)
    with zipfile.ZipFile(folder / "image_dicarlo_hvm-public.zip", "w") as archive:
        for k, i in enumerate(ids):
            Image.fromarray(np.full((4, 4), k * 20, dtype=np.uint8)).save(folder / "tmp.png")
            archive.write(folder / "tmp.png", f"{i}.png")
    return ids, presented, values[:, :, 0]


def _local_majajhong(tmp_path, **kwargs):
    """The shipped manifest, on small files in Brain-Score's format under a local ``root``
    (the real files' pinned checksums would refuse them)."""
    raw = yaml.safe_load(read_manifest("majajhong2015").source.read_text())
    raw["root"] = "files"
    raw["files"] = [{"path": entry["path"]} for entry in raw["files"]]
    path = tmp_path / "majajhong2015.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, _write_majajhong(tmp_path / "files" / "majajhong2015", **kwargs)


def test_majajhong_groups_presentations_into_repeats(tmp_path):
    manifest, (ids, presented, values) = _local_majajhong(tmp_path)
    dataset = load(manifest, expected_stimuli=None)
    assert dataset.regions == ["V4", "IT"]
    assert dataset.stimuli.ids == ids
    it = dataset.responses("IT")
    assert it.shape == (N_IMAGES, N_IT)
    presented = np.array(presented)
    direct = np.stack([values[presented == i, N_V4:].mean(axis=0) for i in range(N_IMAGES)])
    np.testing.assert_allclose(it.values, direct)
    repeats = dataset.repeats("V4")
    assert repeats.shape == (N_IMAGES, N_V4, 3)
    np.testing.assert_allclose(repeats.values[1, :, :2], values[presented == 1, :N_V4].T)
    assert np.isnan(repeats.values[4, :, 1:]).all()  # image 4 was shown once
    assert np.asarray(dataset.stimuli[3]).max() == 60
    assert set(it["species"].values) == {"macaque"}


def test_majajhong_count_check_of_the_shipped_manifest(tmp_path):
    manifest, _ = _local_majajhong(tmp_path)
    with pytest.raises(DataError, match="8 stimuli, expected 3200"):
        load(manifest)


def test_majajhong_bad_files(tmp_path):
    manifest, _ = _local_majajhong(tmp_path, drop_image=2)
    folder = tmp_path / "files" / "majajhong2015"
    with pytest.raises(DataError, match=r"1 stimuli were never presented.*image count and response count"):
        load(manifest, expected_stimuli=None)
    _write_majajhong(folder, extra_image=True)
    with pytest.raises(DataError, match=r"1 presentation\(s\) of images not in the stimulus set"):
        load(manifest, expected_stimuli=None)
    _write_majajhong(folder, time_bins=((70, 170), (170, 270)))
    with pytest.raises(DataError, match=r"no time bin \[50.0, 100.0\]; the file has \[\(70, 170\), \(170, 270\)\]"):
        load(manifest, expected_stimuli=None, time_bin=[50, 100])
    with pytest.raises(DataError, match="2 time bins; choose one"):
        load(manifest, expected_stimuli=None, time_bin=None)
    assert load(manifest, expected_stimuli=None, time_bin=[170, 270]).regions == ["V4", "IT"]
    with pytest.raises(DataError, match=r"no neuroids in region\(s\) \['V1'\]"):
        load(manifest, expected_stimuli=None, regions=["V1"])


def test_majajhong_is_fetched_from_its_pinned_public_urls_with_brainscore_sha1s():
    manifest = read_manifest("majajhong2015")
    assert not manifest.user_provided
    for entry in manifest.files:
        name = entry.path.split("/")[-1]
        assert entry.url.startswith(f"https://brainio-brainscore.s3.amazonaws.com/{name}?versionId=")
        assert len(entry.sha1) == 40
    assert manifest.file(".nc").sha1 == "13d28ca0ce88ee550b54db3004374ae19096e9b9"


def test_majajhong_offline_takes_the_mirror_and_checks_it(tmp_path, data_cache):
    """The mirror is read and verified against the shipped sha1s (small files fail them)."""
    manifest = read_manifest("majajhong2015")
    _write_majajhong(tmp_path / "mirror" / "majajhong2015")
    nc = (tmp_path / "mirror" / manifest.file(".nc").path).read_bytes()
    with pytest.raises(ChecksumError, match=rf"assy_dicarlo_MajajHong2015_public.nc \(from "
                       rf"{tmp_path}/mirror/.*\): sha1 {hashlib.sha1(nc).hexdigest()}, expected "
                       "13d28ca0ce88ee550b54db3004374ae19096e9b9"):
        fetch(manifest, mirror=tmp_path / "mirror", progress=False)
    assert not (data_cache / "majajhong2015").exists() or not any(
        (data_cache / "majajhong2015").iterdir())


def test_majajhong_failed_download_gives_the_mirror_hint(data_cache, monkeypatch):
    import pooch

    class Offline:
        def __init__(self, **kwargs):
            pass

        def __call__(self, url, output_file, pooch_instance):
            raise ConnectionError(f"no route to host for {url}")

    monkeypatch.setattr(pooch, "HTTPDownloader", Offline)
    with pytest.raises(DataError) as caught:
        load("majajhong2015")
    message = str(caught.value)
    assert message.startswith("majajhong2015/assy_dicarlo_MajajHong2015_public.nc: download from "
                              "https://brainio-brainscore.s3.amazonaws.com/")
    assert "no route to host" in message and message.endswith(MIRROR_HINT)


def _write_chang(folder, n_images=60, n_neurons=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    signal = rng.normal(size=(n_neurons, n_images, 1))
    signal[4:] = 0.0  # two cells respond with noise only
    responses = 5.0 + signal + 0.3 * rng.normal(size=(n_neurons, n_images, 4))
    np.save(folder / "responses.npy", responses)
    names = [f"face{i:04d}.png" for i in range(n_images)]
    with zipfile.ZipFile(folder / "images.zip", "w") as archive:
        for name in names:
            Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).save(folder / "t.png")
            archive.write(folder / "t.png", name)
    (folder / "image_list.txt").write_text("\n".join(names) + "\n")
    return responses


def test_chang2021_keeps_neurons_with_ceiling_at_least_0_1(tmp_path, data_cache):
    from workbench.data.reliability import split_half_reliability

    mirror = tmp_path / "mirror"
    responses = _write_chang(mirror / "chang2021_face_am")
    dataset = load("chang2021_face_am", mirror=mirror, expected_stimuli=None)
    reliability = split_half_reliability(responses.transpose(1, 0, 2))
    keep = reliability >= 0.1
    assert dataset.regions == ["AM"]
    assert dataset.responses("AM").shape == (60, int(keep.sum()))
    assert 0 < keep.sum() < 6
    np.testing.assert_allclose(dataset.responses("AM").values,
                               responses[keep].mean(axis=2).T)
    assert dataset.stimuli.ids[0] == "face0000"
    assert (dataset.reliability("AM") >= 0.1).all()
