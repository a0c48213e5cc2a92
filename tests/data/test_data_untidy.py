"""Recordings that are not tidy (issue 19, point 7): messages that name the file and field,
recordings without images, and an offline fetch that says how to use a local copy."""

import socket

import numpy as np
import pytest
import xarray as xr
import yaml

from workbench.cli import main
from workbench.data import fetch, load, read_manifest
from workbench.errors import DataError, ValidationError


def _manifest(tmp_path, files, name="myrec", **options):
    raw = {"name": name, "description": "my V1 recording", "species": "mouse",
           "regions": ["V1"], "stimuli": {"count": 12}, "license": "CC0", "citation": "me",
           "loader": "local", "root": "rec", "files": [{"path": p} for p in files],
           "options": options}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _responses(n_stim=12, n_neur=5):
    return np.random.default_rng(0).gamma(2.0, size=(n_stim, n_neur))


def test_manifest_without_images_names_the_manifest_and_the_field(tmp_path):
    (tmp_path / "rec").mkdir()
    np.save(tmp_path / "rec" / "r.npy", _responses())
    path = _manifest(tmp_path, ["r.npy"], responses="r.npy")
    with pytest.raises(DataError) as info:
        load(path)
    message = str(info.value)
    assert f"manifest {path}" in message and "field 'options.images' is missing" in message
    assert "`images: null`" in message
    path = _manifest(tmp_path, ["r.npy"], name="nothing", images="images")
    with pytest.raises(DataError, match=r"nothing.yaml: field 'options.responses' is missing"):
        load(path)


def test_a_recording_without_images_scores_precomputed_features(tmp_path):
    from workbench.activations import extract_stats
    from workbench.metrics import compare
    from workbench.models import create

    (tmp_path / "rec").mkdir()
    values = _responses()
    np.save(tmp_path / "rec" / "r.npy", values)
    dataset = load(_manifest(tmp_path, ["r.npy"], responses="r.npy", images=None))
    assert not dataset.stimuli.has_images and len(dataset.stimuli) == 12
    assert dataset.stimuli.ids[:2] == ["stim0000", "stim0001"]
    np.testing.assert_allclose(dataset.responses("V1").values, values)
    features = np.random.default_rng(1).normal(size=(12, 40))  # computed elsewhere, same order
    scores = compare(features, dataset.responses("V1").values, ["rsa", "cka"])
    assert np.isfinite(list(scores.values())).all()
    with pytest.raises(DataError, match=r"dataset myrec: stimulus 'stim0003' has no image"):
        dataset.stimuli[3]
    with pytest.raises(ValidationError, match=r"stimuli \(12 ids\) have no images"):
        extract_stats(create("cornet_z"), dataset.stimuli, cache=False)


def test_ids_without_images_come_from_the_netcdf_or_the_image_list(tmp_path):
    (tmp_path / "rec").mkdir()
    ids = [f"face{i:02d}" for i in range(12)][::-1]
    xr.DataArray(_responses(), dims=("stimulus", "neuroid"),
                 coords={"stimulus_id": ("stimulus", ids)}).to_netcdf(tmp_path / "rec" / "r.nc",
                                                                      engine="h5netcdf")
    dataset = load(_manifest(tmp_path, ["r.nc"], responses="r.nc", images=None))
    assert dataset.stimuli.ids == ids
    np.save(tmp_path / "rec" / "r.npy", _responses())
    (tmp_path / "rec" / "order.txt").write_text("\n".join(f"img{i}.png" for i in range(12)))
    dataset = load(_manifest(tmp_path, ["r.npy", "order.txt"], name="listed", responses="r.npy",
                             images=None, image_list="order.txt"))
    assert dataset.stimuli.ids[:2] == ["img0", "img1"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_npy_names_the_file_and_says_it_is_not_a_valid_array(tmp_path, damage):
    (tmp_path / "rec").mkdir()
    target = tmp_path / "rec" / "r.npy"
    if damage == "garbage":
        target.write_bytes(np.random.default_rng(2).bytes(300))
    else:
        np.save(target, _responses())
        target.write_bytes(target.read_bytes()[:200])
    path = _manifest(tmp_path, ["r.npy"], responses="r.npy", images=None)
    with pytest.raises(DataError) as info:
        load(path)
    message = str(info.value)
    assert str(target) in message and "not a valid .npy array" in message
    assert f"manifest {path}, option 'responses'" in message


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_offline_fetch_says_how_to_use_a_local_copy(tmp_path, capsys):
    raw = {"name": "remote", "description": "d", "species": "mouse", "regions": ["V1"],
           "stimuli": {}, "license": "CC0", "citation": "c", "loader": "local",
           "files": [{"path": "remote/r.npy", "url": f"http://127.0.0.1:{_closed_port()}/r.npy",
                      "sha256": "0" * 64}]}
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError) as info:
        fetch(read_manifest(path), progress=False)
    assert "remote/r.npy: download from http://127.0.0.1" in str(info.value)
    assert "--mirror DIR" in str(info.value) and "WORKBENCH_DATA_MIRROR" in str(info.value)
    assert main(["data", "fetch", str(path)]) == 1
    err = capsys.readouterr().err
    assert "--mirror" in err and "WORKBENCH_DATA_MIRROR" in err
