"""Any timm or torchvision network by name: ``timm:<name>``, ``torchvision:<name>``."""

import numpy as np
import pytest
import torch

from workbench.activations import extract
from workbench.errors import ValidationError, WeightsUnavailableError
from workbench.models import check_model_names, create, model_family, model_info
from workbench.models import weights as weights_module
from workbench.models.registry import model_entry


def test_timm_model_has_its_feature_info_stages_and_config():
    import timm
    from timm.models import get_pretrained_cfg

    info = model_info("timm:resnet10t")
    assert info.family == "cnn" and info.layers == ("act1", "layer1", "layer2", "layer3", "layer4")
    cfg = get_pretrained_cfg("resnet10t")  # default tag c3_in1k: trained at 176 px, evaluated at 224
    assert info.preprocessing.input_size == cfg.test_input_size[-1] == 224
    assert info.preprocessing.resize_size == int(224 / cfg.test_crop_pct)
    assert info.preprocessing.interpolation == cfg.interpolation
    assert info.description.startswith(f"timm resnet10t.{cfg.tag}")
    model = create("timm:resnet10t").with_preprocessing(input_size=64, resize_size=None)
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    acts = extract(model, [image], batch_size=1)
    assert list(acts) == list(info.layers) and acts["layer4"].shape == (1, 512 * 2 * 2)
    with torch.device("meta"):
        assert info.layers == tuple(f["module"] for f in timm.create_model("resnet10t").feature_info)


def test_timm_transformers_are_vits_with_their_blocks():
    assert model_family("timm:vit_tiny_patch16_224") == "vit"
    assert model_info("timm:vit_tiny_patch16_224").layers == tuple(f"blocks.{i}" for i in range(12))
    swin = model_info("timm:swin_tiny_patch4_window7_224")  # stages opened into their blocks
    assert swin.layers[:3] == ("layers.0.blocks.0", "layers.0.blocks.1", "layers.1.blocks.0")
    assert model_info("timm:tnt_s_patch16_224").layers[0] == "blocks.0:out[1]"
    assert model_info("timm:convnext_nano").family == "cnn"
    assert model_info("timm:convnext_nano.in12k_ft_in1k").description.startswith("timm convnext_nano.in12k_ft_in1k")


def test_torchvision_models_have_their_blocks_and_transforms():
    from torchvision import models as tvm

    small = model_info("torchvision:mobilenet_v3_small")
    assert small.family == "cnn" and small.layers == tuple(f"features.{i}" for i in range(13))
    transform = tvm.MobileNet_V3_Small_Weights.DEFAULT.transforms()
    assert (small.preprocessing.input_size, small.preprocessing.resize_size) == (224, 256) == (
        transform.crop_size[0], transform.resize_size[0])
    rng_state = torch.random.get_rng_state()
    regnet = model_info("torchvision:regnet_y_400mf")  # builds off the meta device
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # leaving the caller's stream as it was
    assert regnet.layers[0] == "trunk_output.block1.block1-0" and len(regnet.layers) == 16
    assert model_info("torchvision:resnet18").layers == tuple(f"layer{s}.{b}" for s in range(1, 5) for b in (0, 1))
    assert model_info("torchvision:vit_b_16").family == "vit"
    model = create("torchvision:mobilenet_v3_small").with_preprocessing(input_size=64, resize_size=None)
    acts = extract(model, [np.zeros((32, 32, 3), dtype=np.uint8)], batch_size=1, layers=["features.12"])
    assert acts["features.12"].shape == (1, 576 * 2 * 2)


def test_swin_stages_are_channels_last():
    model = create("torchvision:swin_t")
    assert model.family == "vit" and set(model.layers) == set(model.channels_last)
    with torch.device("meta"):
        arch = model_entry("timm:swin_tiny_patch4_window7_224").factory(pretrained=False)
    assert arch.channels_last == frozenset(arch.layers) and len(arch.layers) == 12


@pytest.mark.parametrize("name, hint", [
    ("timm:convnext_nan", r"timm [\d.]+ has no model 'convnext_nan'; did you mean 'convnext_nano'"),
    ("torchvision:regnet_y_400", r"no classification model 'regnet_y_400'; did you mean 'regnet_y_400mf'"),
    ("timm:resnet18.bogus", r"no pretrained tag 'bogus' for 'resnet18'; did you mean 'resnet18\."),
])
def test_unknown_names_get_close_matches(name, hint):
    with pytest.raises(ValidationError, match=rf"unknown model '{name}': .*{hint}"):
        check_model_names(["cornet_z", name])


def test_pretrained_offline_names_the_file_to_place(offline):
    from timm.models import get_pretrained_cfg

    folder = weights_module.hub_checkpoint_dir()
    tag = get_pretrained_cfg("resnet10t").tag
    with pytest.raises(WeightsUnavailableError, match=f"put the file at {folder / f'resnet10t.{tag}.safetensors'}"):
        create("timm:resnet10t", weights="imagenet")
    with pytest.raises(WeightsUnavailableError, match="put the file at .*mobilenet_v3_small-047dcff4.pth"):
        create("torchvision:mobilenet_v3_small", weights="imagenet")
    assert offline == [f"https://huggingface.co/timm/resnet10t.{tag}/resolve/main/model.safetensors",
                     "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth"]
