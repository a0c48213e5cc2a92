"""Weights: checkpoints with strict key checking, published weights offline, the weights hash."""

import urllib.error
from pathlib import Path

import pytest
import torch

from workbench.errors import DataError, WeightsUnavailableError
from workbench.models import create, state_dict_hash
from workbench.models import weights as weights_module


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub folder and a downloader that fails like a machine without network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def no_network(url, destination):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights_module, "_download_url", no_network)
    return calls


def test_checkpoint_round_trip(tmp_path):
    source = create("cornet_z", seed=5)
    path = tmp_path / "cornet.pt"
    torch.save(source.module.state_dict(), path)
    loaded = create("cornet_z", weights=path, seed=0)
    assert loaded.weights_id == source.weights_id != create("cornet_z", seed=0).weights_id
    assert loaded.weights == str(path.resolve())


def test_checkpoint_wrapped_and_dataparallel_keys(tmp_path):
    source = create("cornet_z", seed=5)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.module.state_dict().items()}}, path)
    assert create("cornet_z", weights=path).weights_id == source.weights_id


def test_checkpoint_missing_and_unexpected_keys_are_listed(tmp_path):
    state = create("cornet_z").module.state_dict()
    del state["V4.conv.bias"]
    state["V5.conv.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(DataError, match=r"1 missing key\(s\) \[V4\.conv\.bias\], "
                                        r"1 unexpected key\(s\) \[V5\.conv\.weight\]"):
        create("cornet_z", weights=path)


def test_checkpoint_shape_mismatch(tmp_path):
    state = create("cornet_z").module.state_dict()
    state["decoder.linear.bias"] = torch.zeros(10)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(DataError, match=r"decoder\.linear\.bias: checkpoint \(10,\) vs model \(1000,\)"):
        create("cornet_z", weights=path)


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": create("cornet_z").module}, path)  # a whole module: not weights_only
    with pytest.raises(DataError, match="weights_only=True"):
        create("cornet_z", weights=path)
    with pytest.raises(DataError, match="does not exist"):
        create("cornet_z", weights=tmp_path / "absent.pt")


@pytest.mark.parametrize("name, filename", [
    ("resnet18", "resnet18-f37072fd.pth"),
    ("vit_b_32", "vit_b_32-d86f8d99.pth"),
    ("deit_tiny", "deit_tiny_patch16_224-a1311bcf.pth"),
    ("cornet_z", "cornet_z-5c427c9c.pth"),
])
def test_imagenet_offline_names_url_and_destination(offline, tmp_path, name, filename):
    expected = tmp_path / "torch" / "hub" / "checkpoints" / filename
    with pytest.raises(WeightsUnavailableError) as info:
        create(name, weights="imagenet")
    message = str(info.value)
    assert f"Download {offline[0]}" in message and offline[0].endswith(filename)
    assert f"put the file at {expected}" in message


def test_snn_imagenet_needs_a_file_placed_by_hand(offline, tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"Spike-Element-Wise-ResNet.*put it at "
                       + str(tmp_path / "torch" / "hub" / "checkpoints" / "sew_resnet18_imagenet.pth")):
        create("sew_resnet18", weights="imagenet")
    assert offline == []  # nothing to download: no network call attempted


def test_imagenet_file_already_present_is_used_without_download(offline, tmp_path):
    source = create("cornet_z", seed=9)
    folder = Path(tmp_path / "torch" / "hub" / "checkpoints")
    folder.mkdir(parents=True)
    state = {f"module.{k}": v for k, v in source.module.state_dict().items()}
    torch.save({"state_dict": state}, folder / "cornet_z-5c427c9c.pth")
    model = create("cornet_z", weights="imagenet")
    assert model.weights == "imagenet" and model.weights_id == source.weights_id
    assert offline == []


def test_state_dict_hash_sees_every_tensor_byte():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    before = state_dict_hash(net)
    assert state_dict_hash(net) == before
    with torch.no_grad():
        net[0].weight[1, 2] += 1e-6
    assert state_dict_hash(net) != before
    net2 = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    net2.load_state_dict(net.state_dict())
    assert state_dict_hash(net2) == state_dict_hash(net)
