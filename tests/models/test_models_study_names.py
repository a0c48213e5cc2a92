"""Study names and aliases in the registry, ``workbench models list``'s study column, and the
study's CNNs' own choices (Inception-ResNet-V2's pooled layer, torchvision's published weights)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.activations.hooks import hooked
from workbench.cli import main
from workbench.errors import ValidationError
from workbench.models import (
    Architecture,
    create,
    list_models,
    model_aliases,
    model_family,
    model_info,
    model_study_name,
    register_model,
    study_models,
)
from workbench.models import registry
from workbench.models.registry import build_architecture


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations inside a test are undone after it."""
    registry._load_zoo()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))


def _tiny(pretrained: bool = False) -> Architecture:
    """A tiny network for the registry's tests."""
    return Architecture(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten()), ("0", "1"))


def test_an_alias_names_the_same_network_and_keeps_the_name_asked_for(scratch_registry):
    register_model("tiny_net", family="cnn", aliases=("tiny", "tn"))(_tiny)
    assert "tiny_net" in list_models() and "tiny" not in list_models()
    assert model_aliases("tiny") == ("tiny", "tn") and model_family("tn") == "cnn"
    assert model_study_name("tiny") is None and model_info("tiny").study is None
    model = create("tiny", seed=1)
    assert model.name == "tiny" and model.weights_id == create("tiny_net", seed=1).weights_id


def test_a_study_name_is_its_network_and_must_have_the_studys_family(scratch_registry):
    assert model_study_name("resnet18") == "resnet18" == model_info("resnet18").study
    assert model_study_name("swin_t") is None and model_study_name("deit_tiny") is None
    with pytest.raises(ValidationError, match="'sew_resnet18' is the study's snn 'sew_resnet18'; family='cnn'"):
        register_model("sew_resnet18", family="cnn")


def test_a_name_or_alias_is_registered_once(scratch_registry):
    with pytest.raises(ValidationError, match=r"\['resnet18'\] of 'tiny_net' are already registered"):
        register_model("tiny_net", family="cnn", aliases=("resnet18",))(_tiny)
    with pytest.raises(ValidationError, match="already registered or repeated"):
        register_model("tiny_net", family="cnn", aliases=("tn", "tn"))(_tiny)
    assert "tiny_net" not in list_models()


def test_models_list_shows_family_and_study_name_columns(capsys, scratch_registry):
    register_model("tiny_net", family="cnn", aliases=("tiny",))(_tiny)
    assert main(["models", "list", "--pattern", "tiny_net"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("name "))
    assert header.split()[:4] == ["name", "family", "study", "name"]
    row = next(line for line in out.splitlines() if line.strip().startswith("tiny_net "))
    assert row.split()[:5] == ["tiny_net", "cnn", "-", "2", "layers"] and row.endswith("(also: tiny)")
    assert main(["models", "list", "--study"]) == 0
    out = capsys.readouterr().out
    assert "snn (12 models)" in out and "cnn (43 models)" in out and "vit (26 models)" in out
    assert "tiny_net" not in out and "not in the zoo" not in out
    row = next(line for line in out.splitlines() if line.strip().startswith("densenet169 "))
    assert row.split()[:5] == ["densenet169", "cnn", "densenet169", "13", "layers"]


def test_the_study_cnns_layers_are_declared_without_building_weights():
    assert model_info("alexnet").layers == ("features.1", "features.2", "features.4", "features.5", "features.7",
                                            "features.9", "features.11", "features.12", "avgpool",
                                            "classifier.2", "classifier.5")
    assert model_info("regnet_x_800mf").layers[1] == "trunk_output.block1.block1-0"  # the study's block1[0]
    assert model_info("densenet201").layers[-1] == "classifier:input"
    assert model_info("inception_v3").preprocessing.input_size == 299
    assert len([n for n in study_models("cnn") if n in list_models(family="cnn")]) == 43


def test_a_different_number_of_classes_is_refused_with_published_weights():
    assert build_architecture("vgg13", num_classes=7).module.classifier[-1].out_features == 7
    with pytest.raises(ValidationError, match="published ImageNet weights have 1000 classes, not num_classes=7"):
        registry.model_entry("vgg13").factory(pretrained=True, num_classes=7)


@pytest.mark.slow
def test_inception_resnet_v2_pools_as_the_studys_8x8_average_pool():
    model = create("inceptionresnetv2")
    assert model.layers[-3:] == ("block8", "conv2d_7b", "global_pool.pool")
    outputs = {}
    x = torch.randn(1, 3, 299, 299)
    with hooked(model.module, ["conv2d_7b", "global_pool.pool"], outputs.__setitem__), torch.no_grad():
        model.module(x)
    assert outputs["global_pool.pool"].shape == (1, 1536, 1, 1)
    torch.testing.assert_close(outputs["global_pool.pool"], F.avg_pool2d(outputs["conv2d_7b"], 8))
