"""The model zoo's contract: every registered model builds, declares real layers, is seeded."""

import numpy as np
import pytest
import torch

from workbench.activations import extract
from workbench.errors import ValidationError
from workbench.models import (
    FAMILIES,
    ModelWrapper,
    Preprocessing,
    create,
    list_models,
    model_info,
    parse_layer_spec,
    study_models,
)

# beside the study's 81 networks (tests/models/test_study_zoo.py), the zoo keeps these
EXTRAS = {"snn": {"spiking_resnet18", "spiking_vgg11_bn", "spiking_vgg16_bn"}, "cnn": set(),
          "vit": {"swin_t", "deit_tiny"}}
EXPECTED = {family: set(study_models(family)) | extras for family, extras in EXTRAS.items()}
# the heaviest networks run their forward check only in the slow suite
HEAVY = {"vgg16", "spiking_vgg16_bn", "vit_b_16", "vit_b_32", "sew_resnet50", "resnet50",
         "sew_resnet34", "spiking_vgg11_bn", "densenet121", "vgg11", "sew_resnet101", "sew_resnet152",
         "wide_sew_resnet8", "wide_sew_resnet14"}
# the study's other networks are built and run here only if light, with a kind of layer spec
# each (their layers and shapes are checked on the meta device by test_study_zoo.py)
LIGHT = {"squeezenet1_1", "shufflenet_v2_x1_0", "mobilenet_v3_small", "cornet_rt"}
# transformers with a fixed token grid need their native input size
NATIVE_SIZE = {"vit_b_16", "vit_b_32", "deit_tiny"}


# the study's zoo; the training methods' architectures (small_cnn, ...) live in other modules
STUDY_MODULES = {"workbench.models.cnn", "workbench.models.snn", "workbench.models.snn_study", "workbench.models.vit",
                 "workbench.models.vit_timm", "workbench.models.cornet"}
BUILT_BEFORE = ({"resnet18", "resnet34", "googlenet", "mobilenet_v2", "efficientnet_b0", "alexnet", "cornet_z",
                 "sew_resnet8", "sew_resnet14", "sew_resnet18"} | set().union(*EXTRAS.values()))


def _study_models(names):
    from workbench.models.registry import _REGISTRY

    return {n for n in names if _REGISTRY[n].factory.__module__ in STUDY_MODULES}


def test_zoo_lists_every_family():
    for family in FAMILIES:
        assert _study_models(list_models(family=family)) == EXPECTED[family]
    assert sorted(_study_models(list_models())) == sorted(set().union(*EXPECTED.values()))
    assert {"small_cnn", "small_sew_resnet"} <= set(list_models())
    assert list_models(pattern="sew_*") == sorted(n for n in EXPECTED["snn"] if n.startswith("sew"))


def test_list_models_rejects_unknown_family():
    with pytest.raises(ValidationError, match="family='rnn'.*expected one of"):
        list_models(family="rnn")


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValidationError, match="unknown model 'sew_resnet81'.*'sew_resnet18'"):
        create("sew_resnet81")


def test_sew_resnet18_layers_match_the_study():
    info = model_info("sew_resnet18")
    blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert info.layers == ("sn1", "maxpool", *blocks, "avgpool")
    assert info.time_steps == 4 and info.family == "snn"


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_layers_that_are_submodules(name):
    info = model_info(name)  # built on the meta device: checks the module tree, no weights
    assert len(info.layers) >= 5 and len(set(info.layers)) == len(info.layers)
    assert info.family in FAMILIES and isinstance(info.preprocessing, Preprocessing)


def _heavy_slow():
    """Every model but the study's heavy ones that were not in the zoo before; the heaviest slow."""
    names = [n for n in list_models() if n not in study_models() or n in HEAVY | LIGHT | BUILT_BEFORE]
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


@pytest.mark.parametrize("name", _heavy_slow())
def test_every_model_builds_with_real_layers(name):
    model = create(name)
    assert isinstance(model, ModelWrapper) and model.family in FAMILIES
    assert model.weights == "random(seed=0)"
    assert isinstance(model.preprocessing, Preprocessing)
    assert not model.module.training
    modules = dict(model.module.named_modules())
    assert len(model.layers) >= 5 and len(set(model.layers)) == len(model.layers)
    paths = [parse_layer_spec(layer).path for layer in model.layers]
    assert all(path in modules for path in paths)
    order = list(modules)  # declared layers follow the network's definition order
    assert [order.index(path) for path in paths] == sorted(order.index(path) for path in paths)
    assert model.time_steps == (4 if model.is_spiking else 1)
    assert model_info(name).layers == model.layers


@pytest.mark.parametrize("name", _heavy_slow())
def test_every_layer_hooks_a_module_that_runs(name):
    model = create(name)
    if name not in NATIVE_SIZE:
        model = model.with_preprocessing(input_size=64)
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    out = extract(model, [image, image[:, :, 0]], batch_size=2)
    assert list(out) == list(model.layers)
    for layer, acts in out.items():
        assert acts.dims == ("stimulus", "neuroid") and acts.shape[0] == 2
        assert acts.shape[1] > 0 and np.isfinite(acts.values).all(), layer


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = create("cornet_z", seed=3), create("cornet_z", seed=3), create("cornet_z", seed=4)
    assert a.weights_id == b.weights_id != c.weights_id
    assert c.weights == "random(seed=4)"
    for pa, pb in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(pa, pb)


def test_create_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create("cornet_z", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_bad_layer_names_list_the_valid_ones():
    model = create("cornet_z")
    with pytest.raises(ValidationError, match=r"\['V9'\] not in cornet_z; expected one or more of"):
        model.check_layers(["V1", "V9"])
    assert model.check_layers(None) == model.layers
    assert model.check_layers("V2.conv") == ("V2.conv",)


def test_bad_weights_argument():
    with pytest.raises(ValidationError, match="weights=3 is not valid"):
        create("cornet_z", weights=3)


def test_with_preprocessing_shares_the_network():
    model = create("cornet_z")
    small = model.with_preprocessing(input_size=32)
    assert small.module is model.module and small.preprocessing.input_size == 32
    assert model.preprocessing.input_size == 224
