"""Convolutional networks from torchvision.

Analysis layers follow the reference study's choice of one output per stage: the stem, every
residual / inverted-residual / dense block or inception module, and the global pooling.
With ``pretrained=True`` the published torchvision weights are used (see
:func:`workbench.models.weights.ensure_hub_file` for offline use).
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from workbench.errors import ValidationError
from workbench.models._layers import children, of_type, resnet_layers
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import ensure_hub_file

IMAGENET_224 = Preprocessing(input_size=224)


def build_torchvision(builder, weights_enum, pretrained: bool, **random_kwargs) -> nn.Module:
    """Build a torchvision model, randomly initialised or with its published weights.

    ``random_kwargs`` apply to the random initialisation only: with published weights
    torchvision fixes the matching settings itself.
    """
    if pretrained:
        ensure_hub_file(weights_enum.url)  # clear offline error; torchvision then reads the file
        return builder(weights=weights_enum)
    return builder(weights=None, **random_kwargs)


@register_model("alexnet", family="cnn")
def alexnet(pretrained: bool = False) -> Architecture:
    """AlexNet (Krizhevsky et al. 2012): the 5 convolutional and 2 fully connected ReLUs."""
    net = build_torchvision(tvm.alexnet, tvm.AlexNet_Weights.IMAGENET1K_V1, pretrained)
    layers = (*of_type(net, "features", nn.ReLU), *of_type(net, "classifier", nn.ReLU))
    return Architecture(net, layers, IMAGENET_224)


def _vgg(builder, weights_enum, pretrained: bool) -> Architecture:
    net = build_torchvision(builder, weights_enum, pretrained)
    layers = (*of_type(net, "features", nn.ReLU), *of_type(net, "classifier", nn.ReLU))
    return Architecture(net, layers, IMAGENET_224)


@register_model("vgg11", family="cnn")
def vgg11(pretrained: bool = False) -> Architecture:
    """VGG-11 (Simonyan & Zisserman 2015): the ReLU after every convolution and hidden FC layer."""
    return _vgg(tvm.vgg11, tvm.VGG11_Weights.IMAGENET1K_V1, pretrained)


@register_model("vgg16", family="cnn")
def vgg16(pretrained: bool = False) -> Architecture:
    """VGG-16 (Simonyan & Zisserman 2015): the ReLU after every convolution and hidden FC layer."""
    return _vgg(tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1, pretrained)


def _resnet(builder, weights_enum, pretrained: bool, num_classes: int = 1000) -> Architecture:
    if num_classes != 1000 and pretrained:
        raise ValidationError(f"published ImageNet weights have 1000 classes, not num_classes={num_classes}")
    net = build_torchvision(builder, weights_enum, pretrained, num_classes=num_classes)
    return Architecture(net, resnet_layers(net, ("relu", "maxpool")), IMAGENET_224)


@register_model("resnet18", family="cnn")
def resnet18(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """ResNet-18 (He et al. 2016): stem ReLU, max-pool, the 8 residual blocks, average pool."""
    return _resnet(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, pretrained, num_classes)


@register_model("resnet34", family="cnn")
def resnet34(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """ResNet-34 (He et al. 2016): stem ReLU, max-pool, the 16 residual blocks, average pool."""
    return _resnet(tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1, pretrained, num_classes)


@register_model("resnet50", family="cnn")
def resnet50(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """ResNet-50 (He et al. 2016): stem ReLU, max-pool, the 16 bottleneck blocks, average pool."""
    return _resnet(tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1, pretrained, num_classes)


@register_model("densenet121", family="cnn")
def densenet121(pretrained: bool = False) -> Architecture:
    """DenseNet-121 (Huang et al. 2017): stem pool, each dense block and transition, final norm."""
    net = build_torchvision(tvm.densenet121, tvm.DenseNet121_Weights.IMAGENET1K_V1, pretrained)
    layers = tuple(
        name for name in children(net, "features")
        if name.split(".")[-1].startswith(("pool0", "denseblock", "transition", "norm5"))
    )
    return Architecture(net, layers, IMAGENET_224)


@register_model("mobilenet_v2", family="cnn")
def mobilenet_v2(pretrained: bool = False) -> Architecture:
    """MobileNet-V2 (Sandler et al. 2018): each of the 19 feature stages."""
    net = build_torchvision(tvm.mobilenet_v2, tvm.MobileNet_V2_Weights.IMAGENET1K_V1, pretrained)
    return Architecture(net, tuple(children(net, "features")), IMAGENET_224)


@register_model("mobilenet_v3_small", family="cnn")
def mobilenet_v3_small(pretrained: bool = False) -> Architecture:
    """MobileNet-V3-small (Howard et al. 2019): each of the 13 feature stages and the pooling."""
    net = build_torchvision(
        tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1, pretrained
    )
    return Architecture(net, (*children(net, "features"), "avgpool"), IMAGENET_224)


@register_model("efficientnet_b0", family="cnn")
def efficientnet_b0(pretrained: bool = False) -> Architecture:
    """EfficientNet-B0 (Tan & Le 2019): each of the 9 feature stages and the pooling."""
    net = build_torchvision(
        tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights.IMAGENET1K_V1, pretrained
    )
    return Architecture(net, (*children(net, "features"), "avgpool"), IMAGENET_224)


@register_model("googlenet", family="cnn")
def googlenet(pretrained: bool = False) -> Architecture:
    """GoogLeNet (Szegedy et al. 2015): stem convolutions, pools and the 9 inception modules."""
    net = build_torchvision(
        tvm.googlenet, tvm.GoogLeNet_Weights.IMAGENET1K_V1, pretrained, aux_logits=False,
        init_weights=True,
    )
    layers = tuple(
        name for name in children(net, "")
        if name.startswith(("conv", "maxpool", "inception", "avgpool"))
    )
    return Architecture(net, layers, IMAGENET_224)
