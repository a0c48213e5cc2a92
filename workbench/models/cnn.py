"""The reference study's convolutional networks (CORnets apart): torchvision's, and timm's
Inception-ResNet-V2.

Each is registered under the study's name and scored on the study's layers
(:mod:`workbench.models.study_layers`: the study's module expressions resolved on our network,
e.g. ``features[3]`` -> ``features.3``), at the study's input size (224 px; 299 px for
``inception_v3`` and ``inceptionresnetv2``). With ``pretrained=True`` the published weights
are used: torchvision's ``IMAGENET1K_V1`` (see :func:`workbench.models.weights.ensure_hub_file`
for offline use), timm's ``inception_resnet_v2.tf_in1k``.
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from workbench.errors import ValidationError
from workbench.models.hub import build_timm, hf_hub_weights
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.study_layers import study_input_size, study_layers, study_specs
from workbench.models.weights import declare_weights, fetched, published_weights, url_source

IMAGENET_224 = Preprocessing(input_size=224)

#: The study's torchvision CNNs (torchvision's names): name -> title of the description.
TORCHVISION_CNNS = {
    "alexnet": "AlexNet (Krizhevsky et al. 2012)",
    **{f"vgg{depth}": f"VGG-{depth} (Simonyan & Zisserman 2015)" for depth in (11, 13, 16, 19)},
    **{f"resnet{depth}": f"ResNet-{depth} (He et al. 2016)" for depth in (18, 34, 50, 101, 152)},
    "resnext50_32x4d": "ResNeXt-50 32x4d (Xie et al. 2017)",
    "resnext101_32x8d": "ResNeXt-101 32x8d (Xie et al. 2017)",
    "googlenet": "GoogLeNet (Szegedy et al. 2015)",
    "inception_v3": "Inception-V3 (Szegedy et al. 2016)",
    "squeezenet1_1": "SqueezeNet 1.1 (Iandola et al. 2016)",
    "mobilenet_v2": "MobileNet-V2 (Sandler et al. 2018)",
    "mobilenet_v3_small": "MobileNet-V3-small (Howard et al. 2019)",
    "mobilenet_v3_large": "MobileNet-V3-large (Howard et al. 2019)",
    "shufflenet_v2_x1_0": "ShuffleNet-V2 1.0x (Ma et al. 2018)",
    "mnasnet1_0": "MnasNet 1.0 (Tan et al. 2019)",
    **{f"densenet{depth}": f"DenseNet-{depth} (Huang et al. 2017)" for depth in (121, 169, 201)},
    **{f"efficientnet_b{i}": f"EfficientNet-B{i} (Tan & Le 2019)" for i in range(8)},
    "regnet_x_800mf": "RegNetX-800MF (Radosavovic et al. 2020)",
    "regnet_x_8gf": "RegNetX-8GF (Radosavovic et al. 2020)",
    "regnet_y_800mf": "RegNetY-800MF (Radosavovic et al. 2020)",
    "regnet_y_8gf": "RegNetY-8GF (Radosavovic et al. 2020)",
    **{f"convnext_{size}": f"ConvNeXt-{size.title()} (Liu et al. 2022)" for size in ("tiny", "small", "base", "large")},
}
#: Settings of the random initialisation where torchvision's defaults differ from the
#: published network's module tree, or warn.
RANDOM_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"init_weights": True},
}


def build_torchvision(builder, weights_enum, pretrained: bool, **random_kwargs) -> nn.Module:
    """Build a torchvision model, randomly initialised or with its published weights.

    ``random_kwargs`` apply to the random initialisation only: with published weights
    torchvision fixes the matching settings itself.
    """
    if pretrained:
        return builder(weights=fetched(weights_enum))
    return builder(weights=None, **random_kwargs)


def _register_torchvision_cnn(name: str, title: str) -> None:
    builder = tvm.get_model_builder(name)
    weights_enum = tvm.get_model_weights(name).IMAGENET1K_V1
    preprocessing = Preprocessing(input_size=study_input_size(name))

    def factory(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
        if num_classes != 1000 and pretrained:
            raise ValidationError(f"published ImageNet weights have 1000 classes, not num_classes={num_classes}")
        net = build_torchvision(builder, weights_enum, pretrained, num_classes=num_classes,
                                **RANDOM_KWARGS.get(name, {}))
        return Architecture(net, study_specs(name, net), preprocessing)

    factory.__name__ = name
    factory.__doc__ = (f"{title}, torchvision IMAGENET1K_V1: the study's {len(study_layers(name))} "
                       "layers")
    register_model(name, family="cnn")(factory)
    declare_weights(name, url_source(weights_enum.url))


for _name, _title in TORCHVISION_CNNS.items():
    _register_torchvision_cnn(_name, _title)

INCEPTION_RESNET_V2 = ("inception_resnet_v2", "tf_in1k")  # timm architecture and pretrained tag
declare_weights("inceptionresnetv2", hf_hub_weights("timm/inception_resnet_v2.tf_in1k", "inception_resnet_v2.tf_in1k"))


@register_model("inceptionresnetv2", family="cnn")
def inceptionresnetv2(pretrained: bool = False) -> Architecture:
    """Inception-ResNet-V2 (Szegedy et al. 2017), timm inception_resnet_v2.tf_in1k: the study's 52 layers.

    The study used Cadene's port of the TensorFlow weights (``pretrainedmodels``), as timm's
    ``tf_in1k`` tag is, with the same module names: ``conv2d_1a`` ... ``conv2d_7b`` and the
    ``repeat``, ``repeat_1`` and ``repeat_2`` sequences are the same paths here. Its
    ``avgpool_1a`` (an 8x8 average pool, (1536, 1, 1) at 299 px) is timm's
    ``global_pool.pool`` (a global average pool: the same values). Inputs are normalised with
    mean = std = 0.5, the setting the study's definition records for these weights.
    """
    net = build_timm(*INCEPTION_RESNET_V2, published_weights("inceptionresnetv2") if pretrained else None)
    layers = study_specs("inceptionresnetv2", net, renames={"avgpool_1a": "global_pool.pool"})
    preprocessing = Preprocessing(study_input_size("inceptionresnetv2"), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return Architecture(net, layers, preprocessing)
