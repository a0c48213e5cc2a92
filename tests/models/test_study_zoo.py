"""The reference study's 81 networks: each is in the zoo under the study's name and family, and
its declared layers are the study's (count, and output shape per stimulus at the study's input
size, on random weights), read from the study's data file (workbench/models/study/).

The forward pass runs on torch's meta device (shapes only, no memory); a network that cannot be
built or run there (torchvision's RegNets compute their widths with tensors) runs on the CPU
at batch 1.
"""

import json

import pytest
import torch

from workbench.activations.hooks import hooked
from workbench.models import (
    list_models,
    model_info,
    model_study_name,
    study_family,
    study_input_size,
    study_layers,
    study_models,
    study_source,
)
from workbench.models.registry import build_architecture, prepare_for_analysis
from workbench.models.study_layers import STUDY_FILE

STUDY = study_models()


def test_the_data_file_names_its_source_and_holds_the_81_networks():
    source = study_source()
    assert source["repository"] == "https://github.com/Grasshlw/SNN-Neural-Similarity-Static"
    assert len(source["commit"]) == 40
    assert [len(study_models(family)) for family in ("snn", "cnn", "vit")] == [12, 43, 26]
    raw = json.loads(STUDY_FILE.read_text())["models"]
    assert list(raw) == STUDY and "lorafb_snet18" not in raw
    # the logits are left out of the scored layers and kept apart
    assert raw["alexnet"]["logits"] == ["classifier[6]", [1000], "linear", 12]
    assert [layer.name for layer in study_layers("alexnet")][-3:] == ["avgpool", "classifier[2]", "classifier[5]"]


def test_an_input_read_takes_its_size_from_the_previous_layer():
    last = study_layers("densenet169")[-1]
    assert (last.name, last.recorded_shape, last.shape, last.reads_input) == ("classifier", (-1,), (1664,), True)
    assert last.spec == "classifier:input"
    assert study_input_size("inceptionresnetv2") == 299 == study_input_size("inception_v3")
    assert study_input_size("resnet18") == 224


@pytest.mark.parametrize("name", STUDY)
def test_the_network_is_registered_under_the_studys_name_and_family(name):
    assert name in list_models(family=study_family(name))
    assert model_study_name(name) == name
    assert model_info(name).preprocessing.input_size == study_input_size(name)


def _layer_shapes(name: str, device: str) -> tuple[tuple[str, ...], dict[str, tuple], frozenset]:
    """Declared layers, the shape per stimulus of each at the study's size, channels-last layers."""
    family = study_family(name)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        arch = build_architecture(name)
    prepare_for_analysis(arch.module, family)
    size = arch.preprocessing.input_size
    x = torch.zeros(1, 3, size, size, device=device)
    if family == "snn":
        x = x.unsqueeze(0).repeat(arch.time_steps, 1, 1, 1, 1)  # (T, 1, C, H, W)
    skip = 2 if family == "snn" else 1  # (T, N, ...) or (N, ...)
    shapes = {}
    with hooked(arch.module, arch.layers, lambda layer, out: shapes.setdefault(layer, tuple(out.shape[skip:]))):
        with torch.inference_mode():
            arch.module(x)
    if family == "snn":
        from spikingjelly.activation_based import functional

        functional.reset_net(arch.module)
    return tuple(arch.layers), shapes, frozenset(arch.channels_last)


def _same_values(ours: tuple, study: tuple, channels_last: bool) -> bool:
    """Shapes that order the same values alike: equal but for dimensions of size 1, or (on a
    channels-last layer) (H, W, C) for the study's tokens (H * W, C)."""
    ours, study = tuple(n for n in ours if n != 1), tuple(n for n in study if n != 1)
    if ours == study:
        return True
    return channels_last and len(ours) == 3 and (ours[0] * ours[1], ours[2]) == study


@pytest.mark.parametrize("name", STUDY)
def test_declared_layers_are_the_studys_in_count_and_shape(name):
    try:
        layers, shapes, channels_last = _layer_shapes(name, "meta")
    except (NotImplementedError, RuntimeError):
        layers, shapes, channels_last = _layer_shapes(name, "cpu")
    expected = study_layers(name)
    assert len(layers) == len(expected), f"{name}: {len(layers)} layers declared, the study scores {len(expected)}"
    assert sorted(shapes) == sorted(layers), f"{name}: layers that did not run: {set(layers) - set(shapes)}"
    wrong = [(layer, shapes[layer], study.name, study.shape) for layer, study in zip(layers, expected)
             if not _same_values(shapes[layer], study.shape, layer in channels_last)]
    assert not wrong, f"{name}: (our layer, its shape, the study's layer, its shape): {wrong}"
