"""MajajHong2015 (Brain-Score netCDF) and Chang 2021 loaders on small files in their formats."""

import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from workbench.data import load
from workbench.errors import DataError

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


def test_majajhong_groups_presentations_into_repeats(data_cache):
    ids, presented, values = _write_majajhong(data_cache / "majajhong2015")
    dataset = load("majajhong2015", expected_stimuli=None)
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


def test_majajhong_count_check_of_the_shipped_manifest(data_cache):
    _write_majajhong(data_cache / "majajhong2015")
    with pytest.raises(DataError, match="8 stimuli, expected 3200"):
        load("majajhong2015")


def test_majajhong_bad_files(data_cache):
    folder = data_cache / "majajhong2015"
    _write_majajhong(folder, drop_image=2)
    with pytest.raises(DataError, match=r"1 stimuli were never presented.*image count and response count"):
        load("majajhong2015", expected_stimuli=None)
    _write_majajhong(folder, extra_image=True)
    with pytest.raises(DataError, match=r"1 presentation\(s\) of images not in the stimulus set"):
        load("majajhong2015", expected_stimuli=None)
    _write_majajhong(folder, time_bins=((70, 170), (170, 270)))
    with pytest.raises(DataError, match=r"no time bin \[50.0, 100.0\]; the file has \[\(70, 170\), \(170, 270\)\]"):
        load("majajhong2015", expected_stimuli=None, time_bin=[50, 100])
    with pytest.raises(DataError, match="2 time bins; choose one"):
        load("majajhong2015", expected_stimuli=None, time_bin=None)
    assert load("majajhong2015", expected_stimuli=None, time_bin=[170, 270]).regions == ["V4", "IT"]
    with pytest.raises(DataError, match=r"no neuroids in region\(s\) \['V1'\]"):
        load("majajhong2015", expected_stimuli=None, regions=["V1"])


def test_majajhong_missing_files_say_where_to_put_them(data_cache):
    with pytest.raises(DataError, match="provided by the user.*brainio-brainscore"):
        load("majajhong2015")


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
