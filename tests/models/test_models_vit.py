"""The study's 26 vision transformers: names, layers (shapes per stimulus), TNT's tuple blocks, weights."""

import numpy as np
import pytest
import torch

from workbench.activations.hooks import hooked, layer_outputs
from workbench.errors import WeightsUnavailableError
from workbench.models import create, list_models, model_description, model_info
from workbench.models import weights as weights_module
from workbench.models.registry import model_entry
from workbench.models.study_layers import study_layers, study_models
from workbench.models.vit_timm import STUDY_VITS


def _meta_shapes(name: str):
    """Declared layers, their output shape per stimulus (a forward on the meta device), channels-last ones."""
    with torch.device("meta"):
        arch = model_entry(name).factory(pretrained=False)
        arch.module.eval()
        shapes = {}
        with hooked(arch.module, arch.layers, lambda layer, x: shapes.setdefault(layer, tuple(x.shape[1:]))):
            arch.module(torch.zeros(1, 3, 224, 224))
    return arch.layers, [shapes[layer] for layer in arch.layers], arch.channels_last


@pytest.mark.parametrize("name", study_models("vit"))
def test_every_study_vit_has_the_studys_layers_and_shapes(name):
    assert name in list_models(family="vit")
    study = [layer.shape for layer in study_layers(name)]
    layers, shapes, channels_last = _meta_shapes(name)
    assert len(shapes) == len(study)
    for layer, got, expected in zip(layers, shapes, study):
        if layer in channels_last:  # timm 1.0's Swin: (H, W, C) maps of the study's (H*W, C) tokens
            assert expected == (got[0] * got[1], got[2]), layer
        elif layer == "head.global_pool":  # Swin's pool: (C,) for the study's (C, 1)
            assert expected == (*got, 1)
        else:
            assert got == expected, layer
    assert bool(channels_last) == name.startswith("swin_")
    row = next((row for row in STUDY_VITS if row.name == name), None)
    if row is not None:  # timm's: the pretrained config's normalisation, the whole image at 224 px
        from timm.models import get_pretrained_cfg

        cfg, prep = get_pretrained_cfg(f"{row.arch}.{row.tag}"), model_info(name).preprocessing
        assert (prep.input_size, prep.mean, prep.std, prep.resize_size) == (224, cfg.mean, cfg.std, None)
        assert prep.interpolation == cfg.interpolation


def test_renamed_positions_map_to_timm_1_modules():
    swin = model_info("swin_tiny_patch4_window7_224").layers
    assert swin[:4] == ("layers.0.blocks.0", "layers.0.blocks.1", "layers.1.downsample", "layers.1.blocks.0")
    assert swin[-1] == "head.global_pool"
    levit = model_info("levit_128s").layers  # the study's blocks[1], [3], [5], [7] ...
    assert levit[:4] == ("stages.0.blocks.0", "stages.0.blocks.1", "stages.1.downsample", "stages.1.blocks.0")
    assert model_info("tnt_s_patch16_224").layers[0] == "blocks.0:out[1]"
    assert model_info("cait_xxs24_224").layers[-1] == "norm" and len(model_info("vit_b_16").layers) == 12
    assert "tnt_s_legacy_patch16_224" in model_description("tnt_s_patch16_224")


@torch.no_grad()
def test_tnt_blocks_give_their_patch_tokens():
    net = create("tnt_s_patch16_224").module
    image = torch.randn(1, 3, 224, 224)
    got = layer_outputs(net, ["blocks.2:out[1]", "blocks.2:out[0]"], image)
    pixels = net.pixel_embed(image, net.pixel_pos)  # TNT's forward written out to block 2
    patches = net.norm2_proj(net.proj(net.norm1_proj(pixels.reshape(1, net.num_patches, -1))))
    patches = torch.cat((net.cls_token, patches), dim=1) + net.patch_pos
    for block in net.blocks[:3]:
        pixels, patches = block(pixels, patches)
    assert patches.shape == (1, 197, 384) and pixels.shape == (196, 16, 24)
    np.testing.assert_allclose(got["blocks.2:out[1]"], patches.flatten(1).double().numpy(), rtol=1e-5, atol=1e-6)
    assert got["blocks.2:out[0]"].shape[0] == 196  # element 0, the pixel tokens: one row per patch


def test_table_follows_timm_tags():
    from timm.models import get_pretrained_cfg

    assert [row.name for row in STUDY_VITS] == study_models("vit")[4:]
    for row in STUDY_VITS:
        assert get_pretrained_cfg(f"{row.arch}.{row.tag}").hf_hub_id == f"timm/{row.arch}.{row.tag}", row.name
    assert model_info("tnt_s_patch16_224").preprocessing.mean == (0.5, 0.5, 0.5)


def test_substitutes_say_they_are_not_the_studys_networks():
    assert "not the study's network" in model_description("deit_tiny")
    assert "not the study's network" in model_description("swin_t")
    assert model_info("deit_tiny").layers[-1] == "norm"  # unchanged for the demo


def test_study_vit_weights_are_the_named_timm_file(offline):
    from safetensors.torch import save_file

    folder = weights_module.hub_checkpoint_dir()
    name = "deit_tiny_distilled_patch16_224"
    filename = f"{name}.fb_in1k.safetensors"
    with pytest.raises(WeightsUnavailableError, match=f"put the file at {folder / filename}"):
        create(name, weights="imagenet")
    assert offline == [f"https://huggingface.co/timm/{name}.fb_in1k/resolve/main/model.safetensors"]
    source = create(name, seed=3)
    save_file({k: v.contiguous() for k, v in source.module.state_dict().items()}, folder / filename)
    loaded = create(name, weights="imagenet")
    assert loaded.weights == "imagenet" and loaded.weights_id == source.weights_id
