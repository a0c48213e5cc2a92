import h5py
import numpy as np
import pytest
import scipy.io
import xarray as xr
import yaml
from PIL import Image

from workbench.data import load
from workbench.errors import DataError


def _recording(n_stim=12, n_neur=4, n_rep=5, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.gamma(2.0, size=(n_stim, n_neur, 1))
    return signal + 0.3 * rng.normal(size=(n_stim, n_neur, n_rep))


def _images(folder, n, name="img{:02d}.png"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = []
    for i in range(n):
        array = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / name.format(i))
        arrays.append(array)
    return arrays


def _manifest(tmp_path, files, **options):
    raw = {"name": "myrec", "description": "my V1 recording", "species": "mouse",
           "regions": ["V1"], "stimuli": {"count": 12}, "license": "CC0", "citation": "me",
           "loader": "local", "root": "rec", "files": [{"path": p} for p in files],
           "options": options}
    path = tmp_path / "myrec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_npy_with_repeats_and_a_folder_of_images(tmp_path):
    values = _recording()
    arrays = _images(tmp_path / "rec" / "images", 12)
    np.save(tmp_path / "rec" / "r.npy", values.transpose(1, 0, 2))  # neuroid, stimulus, repetition
    path = _manifest(tmp_path, ["r.npy"], responses="r.npy", images="images",
                     dims=["neuroid", "stimulus", "repetition"])
    dataset = load(path)
    assert dataset.name == "myrec" and dataset.regions == ["V1"]
    np.testing.assert_allclose(dataset.responses("V1").values, values.mean(axis=2))
    assert dataset.stimuli.ids == [f"img{i:02d}" for i in range(12)]
    np.testing.assert_array_equal(dataset.stimuli.to_array(5), arrays[5])
    assert set(dataset.responses("V1")["species"].values) == {"mouse"}
    assert dataset.reliability("V1").shape == (4,)


def test_image_list_sets_the_order(tmp_path):
    values = _recording()[:, :, 0]
    arrays = _images(tmp_path / "rec" / "images", 12)
    order = [f"img{i:02d}.png" for i in reversed(range(12))]
    (tmp_path / "rec" / "order.txt").write_text("\n".join(order))
    np.save(tmp_path / "rec" / "r.npy", values)
    path = _manifest(tmp_path, ["r.npy", "order.txt"], responses="r.npy", images="images",
                     image_list="order.txt")
    dataset = load(path)
    assert dataset.stimuli.ids[0] == "img11"
    np.testing.assert_array_equal(dataset.stimuli.to_array(0), arrays[11])
    assert dataset.repeats("V1") is None


def test_netcdf_aligns_images_by_stimulus_id_and_splits_regions(tmp_path):
    values = _recording(n_neur=6)
    _images(tmp_path / "rec" / "images", 12)
    ids = [f"img{i:02d}" for i in range(12)][::-1]  # responses stored in another order
    array = xr.DataArray(values, dims=("stimulus", "neuroid", "repetition"),
                         coords={"stimulus_id": ("stimulus", ids),
                                 "neuroid_id": ("neuroid", [f"u{i}" for i in range(6)]),
                                 "region": ("neuroid", ["V1", "LM", "V1", "LM", "V1", "LM"])})
    array.to_netcdf(tmp_path / "rec" / "r.nc", engine="h5netcdf")
    dataset = load(_manifest(tmp_path, ["r.nc"], responses="r.nc", images="images"))
    assert dataset.regions == ["V1", "LM"]
    assert dataset.stimuli.ids == ids
    np.testing.assert_allclose(dataset.responses("LM").values, values[:, 1::2].mean(axis=2))
    assert list(dataset.responses("LM")["neuroid_id"].values) == ["u1", "u3", "u5"]


def test_mat_and_nwb_arrays(tmp_path):
    values = _recording()[:, :, 0]
    _images(tmp_path / "rec" / "images", 12)
    scipy.io.savemat(tmp_path / "rec" / "r.mat", {"resp": values.T})
    dataset = load(_manifest(tmp_path, ["r.mat"], responses="r.mat", images="images",
                             variable="resp", dims=["neuroid", "stimulus"]))
    np.testing.assert_allclose(dataset.responses("V1").values, values)
    with h5py.File(tmp_path / "rec" / "r.nwb", "w") as handle:
        handle.create_dataset("processing/ophys/responses/data", data=values)
    dataset = load(_manifest(tmp_path, ["r.nwb"], responses="r.nwb", images="images",
                             nwb_dataset="/processing/ophys/responses/data"))
    np.testing.assert_allclose(dataset.responses("V1").values, values)
    with pytest.raises(DataError, match="r.nwb: no HDF5 dataset '/nope'"):
        load(_manifest(tmp_path, ["r.nwb"], responses="r.nwb", images="images", nwb_dataset="/nope"))


def test_bad_local_input(tmp_path):
    values = _recording()
    _images(tmp_path / "rec" / "images", 11)
    np.save(tmp_path / "rec" / "r.npy", values)
    with pytest.raises(DataError, match="responses to 12 stimuli but 11 images"):
        load(_manifest(tmp_path, ["r.npy"], responses="r.npy", images="images",
                       dims=["stimulus", "neuroid", "repetition"]))
    with pytest.raises(DataError, match="the array has 3 dimensions but option 'dims' names 2"):
        load(_manifest(tmp_path, ["r.npy"], responses="r.npy", images="images"))
    with pytest.raises(DataError, match=r"unknown option\(s\) \['colour'\]"):
        load(_manifest(tmp_path, ["r.npy"], responses="r.npy", images="images", colour=1))
    (tmp_path / "rec" / "r.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="r.npy: not a valid .npy array"):
        load(_manifest(tmp_path, ["r.npy"], responses="r.npy", images="images"))
    with pytest.raises(DataError, match=r"myrec.yaml: file .*missing.npy does not exist"):
        load(_manifest(tmp_path, ["missing.npy"], responses="missing.npy", images="images"))


def test_nan_in_averaged_responses(tmp_path):
    values = _recording()[:, :, 0]
    values[3, 1] = np.nan
    _images(tmp_path / "rec" / "images", 12)
    np.save(tmp_path / "rec" / "r.npy", values)
    with pytest.raises(DataError, match=r"r.npy: 1 NaN/inf value\(s\) in the responses \(first at index \(3, 1\)"):
        load(_manifest(tmp_path, ["r.npy"], responses="r.npy", images="images"))


def test_the_readme_worked_example_loads(tmp_path):
    from workbench.data.manifest import BUILTIN_MANIFESTS

    text = (BUILTIN_MANIFESTS / "README.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    manifest = yaml.safe_load(example)
    folder = tmp_path / "my_lab" / manifest["root"]
    names = [f"img{i:03d}.png" for i in range(120)]
    _images(folder / "images", 120, name="img{:03d}.png")
    (folder / "image_order.txt").write_text("\n".join(names))
    rng = np.random.default_rng(5)
    signal = rng.gamma(2.0, size=(30, 120, 1))
    values = signal + 0.2 * rng.normal(size=(30, 120, 8))
    values[:, :10, 6:] = np.nan  # the first ten images were shown six times
    values[-3:] = rng.normal(size=(3, 120, 8)) * np.where(np.isnan(values[-3:]), np.nan, 1)
    np.save(folder / "responses.npy", values)
    (tmp_path / "my_lab" / "v1_2026.yaml").write_text(example)
    dataset = load(tmp_path / "my_lab" / "v1_2026.yaml")
    assert dataset.responses("V1").shape == (120, 27)  # the three noise-only neurons fail 0.5
    assert dataset.repeats("V1").shape == (120, 27, 8)
    assert (dataset.reliability("V1") >= 0.5).all()
