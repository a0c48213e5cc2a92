"""Weights: checkpoints with strict key checking, published weights offline, the weights hash."""

import argparse
import collections
import re
from pathlib import Path, PosixPath

import pytest
import torch

from workbench.errors import DataError, ValidationError, WeightsUnavailableError
from workbench.models import create, state_dict_hash


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
    with pytest.raises(ValidationError, match=rf"checkpoint {path} pickles the global "
                                              r"workbench\.models\.cornet\.CORnetZ .*refused"):
        create("cornet_z", weights=path)
    torch.save([1, 2], path)
    with pytest.raises(DataError, match="does not hold a state dict"):
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


def _savc_imagenet_backbone():
    from workbench.models.savc import load_backbone_weights

    from workbench.training import build_network

    load_backbone_weights(build_network("savc_net", seed=0, num_classes=5, backbone="resnet18").module, "imagenet")


def _part_imagenet_backbone():
    from workbench.models.part_backbone import build_backbone

    build_backbone("resnet50", pretrained_backbone=True)


def _mada_imagenet_backbone():
    from workbench.models.segmentation import DeepLabV3

    DeepLabV3(101, 19, pretrained_backbone=True)


@pytest.mark.parametrize("build, filename", [
    (_savc_imagenet_backbone, "resnet18-f37072fd.pth"),  # SAVC's paper_cub
    (_part_imagenet_backbone, "resnet50-0676ba61.pth"),  # PART
    (_mada_imagenet_backbone, "resnet101-63fe2227.pth"),  # MADA's DeepLab-v3
])
def test_method_backbones_offline_name_url_and_destination(offline, tmp_path, build, filename):
    """The methods' ImageNet backbones go through the hub cache: offline, the error says where to put
    the file instead of torchvision's URLError."""
    with pytest.raises(WeightsUnavailableError) as info:
        build()
    assert len(offline) == 1 and offline[0].endswith(filename)
    assert f"Download {offline[0]} on a machine with network access" in str(info.value)
    assert f"put the file at {tmp_path / 'torch' / 'hub' / 'checkpoints' / filename}" in str(info.value)


def test_snn_imagenet_needs_a_file_placed_by_hand(offline, tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"drive\.google\.com/drive/folders/1oRplrHdJDnONhYWRvP5VP0sU4G8NuMfq"
                       r" \(the study's checkpoint folder.*put it at "
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


class _TrainingState(collections.OrderedDict):
    """An OrderedDict subclass: pickled as a global of this test module."""


def _authors_checkpoint(model, path, **extra):
    """A file as the study's train_imagenet.py saves it (model, optimizer, scheduler, args, ...)."""
    params = list(model.module.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for param in params:
        optimizer.state[param]["momentum_buffer"] = torch.full_like(param, 0.5)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=315)
    args = argparse.Namespace(model_name=model.name, T=4, epochs=320, lr=0.1, opt="sgd", auto_augment=None,
                              amp=True, distributed=False)
    torch.save({"model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict(), "epoch": 319, "args": args, "test_acc": 61.25,
                "max_test_acc": 61.5, "scaler": torch.amp.GradScaler("cpu").state_dict(), **extra}, path)
    return path


def test_authors_checkpoint_loads_by_path_and_as_imagenet(offline, tmp_path, capsys):
    from workbench.cli import main

    source = create("sew_resnet8", seed=3)
    by_path = create("sew_resnet8", weights=_authors_checkpoint(source, tmp_path / "sew_resnet8.pth"))
    assert by_path.weights_id == source.weights_id != create("sew_resnet8").weights_id

    assert main(["models", "weights", "sew_resnet8"]) == 0
    name, status, where, origin = capsys.readouterr().out.splitlines()[1].split("\t")
    assert (name, status) == ("sew_resnet8", "absent") and "drive.google.com" in origin
    Path(where).parent.mkdir(parents=True)
    _authors_checkpoint(source, where)
    imagenet = create("sew_resnet8", weights="imagenet")
    assert imagenet.weights == "imagenet" and imagenet.weights_id == source.weights_id
    assert offline == []


def test_checkpoint_with_a_dataparallel_prefix_in_the_authors_format(tmp_path):
    source = create("sew_resnet8", seed=4)
    path = _authors_checkpoint(source, tmp_path / "ddp.pth")
    saved = torch.load(path, weights_only=False)
    saved["model"] = {f"module.{k}": v for k, v in saved["model"].items()}
    torch.save(saved, path)
    assert create("sew_resnet8", weights=path).weights_id == source.weights_id


@pytest.mark.parametrize("extra, global_name", [
    ({"output_path": PosixPath("/logs")}, "pathlib.PosixPath"),
    ({"model_ema": _TrainingState(a=torch.zeros(1))}, f"{__name__}._TrainingState"),
])
def test_checkpoint_with_another_global_is_refused_naming_it(tmp_path, extra, global_name):
    path = _authors_checkpoint(create("sew_resnet8"), tmp_path / "other.pth", **extra)
    with pytest.raises(ValidationError, match=rf"checkpoint {path} pickles the global {re.escape(global_name)} "):
        create("sew_resnet8", weights=path)
