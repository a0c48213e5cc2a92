"""The study's 12 SNNs: checkpoint layout of the authors' networks, spike-element-wise blocks.

Their layers and output shapes are checked against the study's lists in test_study_zoo.py.
"""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from workbench.models import create, list_models, model_info, study_models
from workbench.models.registry import build_architecture
from workbench.models.snn_study import MobileBlock, SEWBlock, basic_units, resnext_units

LAYOUT = json.loads((Path(__file__).parent / "data" / "snn_checkpoint_layout.json").read_text())
STUDY_SNNS = ["sew_resnet18", "sew_resnet34", "sew_resnet50", "sew_resnet101", "sew_resnet152",
              "sew_resnet8", "sew_resnet14", "wide_sew_resnet8", "wide_sew_resnet14",
              "sew_resnext11", "sew_resnext20", "spikingmobilenet"]


def _layout(name):
    with torch.device("meta"):
        module = build_architecture(name).module
    return [(key, list(value.shape)) for key, value in module.state_dict().items()]


def test_the_layout_file_covers_the_studys_snns():
    assert sorted(LAYOUT["models"]) == sorted(STUDY_SNNS) == sorted(study_models(family="snn"))
    assert "Grasshlw/SNN-Neural-Similarity-Static" in LAYOUT["source"]
    assert set(STUDY_SNNS) <= set(list_models(family="snn"))


@pytest.mark.parametrize("name", STUDY_SNNS)
def test_state_dict_has_the_layout_of_the_authors_checkpoint(name):
    expected = LAYOUT["models"][name]
    ours = _layout(name)
    if "keys" in expected:  # listed in full: name the differences
        theirs = expected["keys"]
        assert sorted(set(theirs) - dict(ours).keys()) == []  # missing from ours
        assert sorted(dict(ours).keys() - set(theirs)) == []  # not in the checkpoints
        assert {k: s for k, s in ours if theirs[k] != s} == {}
    text = "".join(f"{key} {'x'.join(map(str, shape))}\n" for key, shape in ours)
    assert (len(ours), hashlib.sha256(text.encode()).hexdigest()) == (expected["n_keys"], expected["sha256"])


def test_shallow_networks_have_the_studys_widths_and_depths():
    layout = dict(_layout("sew_resnet8"))
    assert layout["block1.0.conv1.weight"] == [128, 64, 3, 3]
    assert layout["block3.0.downsample.0.weight"] == [512, 256, 1, 1]
    assert layout["fc.weight"] == [1000, 512]
    assert dict(_layout("wide_sew_resnet14"))["block3.1.conv2.weight"] == [2048, 2048, 3, 3]
    # ResNeXt: inner width = input width, halved when the block keeps its width; 32 groups
    resnext = dict(_layout("sew_resnext20"))
    assert resnext["block2.0.conv2.weight"] == [128, 128 // 32, 3, 3]
    assert resnext["block2.1.conv2.weight"] == [128, 128 // 32, 3, 3]
    assert resnext["block2.1.conv3.weight"] == [256, 128, 1, 1]
    assert model_info("sew_resnet14").layers == (
        "sn1", "maxpool", "block1.0", "block1.1", "block2.0", "block2.1", "block3.0", "block3.1", "avgpool")


def _multi_step(module):
    from spikingjelly.activation_based import functional

    functional.set_step_mode(module, "m")
    return module.eval()


def test_sew_block_adds_branch_spikes_to_the_input():
    block = _multi_step(SEWBlock(4, basic_units(4, 4, 1), projection=False))
    x = torch.randint(0, 2, (2, 1, 4, 5, 5)).float()  # (T, N, C, H, W) spikes
    with torch.no_grad():
        for bn in (block.bn1, block.bn2):  # every pre-activation at 0: no branch spike
            bn.weight.zero_()
            bn.bias.zero_()
        assert torch.equal(block(x), x)
        block.bn2.bias.fill_(1.0)  # reaches the threshold 1 at every step: a spike everywhere
        assert torch.equal(block(x), x + 1)


def test_sew_block_projection_halves_the_resolution():
    block = _multi_step(SEWBlock(64, resnext_units(64, 128, 2), projection=True))
    with torch.no_grad():
        out = block(torch.randint(0, 2, (4, 2, 64, 8, 8)).float())
    assert out.shape == (4, 2, 128, 4, 4)
    assert set(out.unique().tolist()) <= {0.0, 1.0, 2.0}


def test_mobile_block_adds_the_input_only_when_shape_is_kept():
    kept, strided = MobileBlock(8, 8, 1, 6), MobileBlock(8, 8, 2, 6)
    assert kept.residual and not strided.residual and not MobileBlock(8, 16, 1, 6).residual
    assert [type(m).__name__ for m in MobileBlock(32, 16, 1, 1).layers] == [
        "Conv2d", "BatchNorm2d", "IFNode"] * 2  # no expansion: depthwise then pointwise
    _multi_step(kept)
    with torch.no_grad():
        kept.layers[-2].weight.zero_()
        kept.layers[-2].bias.zero_()
        x = torch.randint(0, 2, (2, 1, 8, 6, 6)).float()
        assert torch.equal(kept(x), x)


def test_a_study_snn_runs_t4_multi_step():
    model = create("sew_resnext11")
    assert model.time_steps == 4 and model.is_spiking
    x = torch.rand(4, 1, 3, 64, 64)
    with torch.no_grad():
        logits = model.module(x)
    assert logits.shape == (4, 1, 1000) and torch.isfinite(logits).all()
