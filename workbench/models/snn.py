"""Spiking networks (spikingjelly 2.0, multi-step mode), as in the reference study.

Every network uses integrate-and-fire neurons (threshold 1, hard reset to 0, detached reset)
with the ATan surrogate gradient, and sees each static image repeated over T = 4 steps.
Inputs are (T, N, C, H, W); hooked layers output (T, N, ...).

SEW-ResNet-8 and -14 (the study's shallow networks): the architecture details could not be
recovered from the paper, so we chose the SEW-ResNet stem (7x7 conv, BN, IF, max-pool) followed
by three stages of SEW basic blocks with 64, 128 and 256 channels (1 block each for
SEW-ResNet-8: 1 + 3x2 convolutions + 1 FC = 8 weight layers; 2 blocks each for SEW-ResNet-14:
1 + 6x2 + 1 = 14), global average pooling and a 256 -> 1000 classifier.

Published ImageNet weights: spikingjelly 2.0 publishes no trained spiking checkpoints through
its API (its ``pretrained=True`` copies *ANN* ResNet/VGG weights), so ``weights="imagenet"``
reads a file placed by hand in torch hub's checkpoint folder (the error names it).
"""

from __future__ import annotations

from torch import nn

from workbench.errors import ValidationError
from workbench.models._layers import of_type, resnet_layers
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import load_checkpoint, missing_local_weights

TIME_STEPS = 4
SEW_SOURCE = ("the SEW-ResNet authors (Fang et al. 2021, "
              "https://github.com/fangwei123456/Spike-Element-Wise-ResNet)")
SPIKING_SOURCE = "a spikingjelly ImageNet training run of this architecture (T=4, IF neurons)"


def neuron_kwargs() -> dict:
    """IF neurons (v_threshold=1, v_reset=0), ATan surrogate, detached reset."""
    from spikingjelly.activation_based import neuron, surrogate

    return {"spiking_neuron": neuron.IFNode, "surrogate_function": surrogate.ATan(),
            "detach_reset": True, "v_threshold": 1.0, "v_reset": 0.0}


def _finish(name: str, net: nn.Module, layers, pretrained: bool, source: str) -> Architecture:
    if pretrained:
        load_checkpoint(net, missing_local_weights(name, f"{name}_imagenet.pth", source))
    return Architecture(net, tuple(layers), Preprocessing(224), time_steps=TIME_STEPS)


def _sew_resnet(name: str, builder, pretrained: bool, num_classes: int = 1000) -> Architecture:
    if num_classes != 1000 and pretrained:
        raise ValidationError(f"published ImageNet weights have 1000 classes, not num_classes={num_classes}")
    net = builder(pretrained=False, cnf="ADD", num_classes=num_classes, **neuron_kwargs())
    return _finish(name, net, resnet_layers(net, ("sn1", "maxpool")), pretrained, SEW_SOURCE)


@register_model("sew_resnet18", family="snn")
def sew_resnet18(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """SEW-ResNet-18 (Fang et al. 2021, ADD): sn1, max-pool, the 8 SEW blocks, average pool."""
    from spikingjelly.activation_based.model import sew_resnet

    return _sew_resnet("sew_resnet18", sew_resnet.sew_resnet18, pretrained, num_classes)


@register_model("sew_resnet34", family="snn")
def sew_resnet34(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """SEW-ResNet-34 (Fang et al. 2021, ADD): sn1, max-pool, the 16 SEW blocks, average pool."""
    from spikingjelly.activation_based.model import sew_resnet

    return _sew_resnet("sew_resnet34", sew_resnet.sew_resnet34, pretrained, num_classes)


@register_model("sew_resnet50", family="snn")
def sew_resnet50(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """SEW-ResNet-50 (Fang et al. 2021, ADD): sn1, max-pool, the 16 SEW bottlenecks, average pool."""
    from spikingjelly.activation_based.model import sew_resnet

    return _sew_resnet("sew_resnet50", sew_resnet.sew_resnet50, pretrained, num_classes)


def _shallow_sew(name: str, blocks_per_stage: int, pretrained: bool) -> Architecture:
    from spikingjelly.activation_based import layer
    from spikingjelly.activation_based.model import sew_resnet

    net = sew_resnet.SEWResNet(sew_resnet.BasicBlock, [blocks_per_stage] * 4, cnf="ADD",
                               **neuron_kwargs())
    net.layer4 = nn.Sequential()  # three stages only: an empty Sequential passes x through
    net.fc = layer.Linear(256, net.fc.out_features)
    return _finish(name, net, resnet_layers(net, ("sn1", "maxpool")), pretrained, SEW_SOURCE)


@register_model("sew_resnet8", family="snn")
def sew_resnet8(pretrained: bool = False) -> Architecture:
    """SEW-ResNet-8 (shallow; our reading of the study): sn1, max-pool, 3 SEW blocks, average pool."""
    return _shallow_sew("sew_resnet8", 1, pretrained)


@register_model("sew_resnet14", family="snn")
def sew_resnet14(pretrained: bool = False) -> Architecture:
    """SEW-ResNet-14 (shallow; our reading of the study): sn1, max-pool, 6 SEW blocks, average pool."""
    return _shallow_sew("sew_resnet14", 2, pretrained)


@register_model("spiking_resnet18", family="snn")
def spiking_resnet18(pretrained: bool = False) -> Architecture:
    """Spiking ResNet-18 (spikingjelly): sn1, max-pool, the 8 spiking blocks, average pool."""
    from spikingjelly.activation_based.model import spiking_resnet

    net = spiking_resnet.spiking_resnet18(pretrained=False, **neuron_kwargs())
    layers = resnet_layers(net, ("sn1", "maxpool"))
    return _finish("spiking_resnet18", net, layers, pretrained, SPIKING_SOURCE)


def _spiking_vgg(name: str, builder, pretrained: bool) -> Architecture:
    from spikingjelly.activation_based import neuron

    net = builder(pretrained=False, **neuron_kwargs())
    layers = (*of_type(net, "features", neuron.IFNode), *of_type(net, "classifier", neuron.IFNode))
    return _finish(name, net, layers, pretrained, SPIKING_SOURCE)


@register_model("spiking_vgg11_bn", family="snn")
def spiking_vgg11_bn(pretrained: bool = False) -> Architecture:
    """Spiking VGG-11 with batch norm: the IF neurons after every convolution and hidden FC layer."""
    from spikingjelly.activation_based.model import spiking_vgg

    return _spiking_vgg("spiking_vgg11_bn", spiking_vgg.spiking_vgg11_bn, pretrained)


@register_model("spiking_vgg16_bn", family="snn")
def spiking_vgg16_bn(pretrained: bool = False) -> Architecture:
    """Spiking VGG-16 with batch norm: the IF neurons after every convolution and hidden FC layer."""
    from spikingjelly.activation_based.model import spiking_vgg

    return _spiking_vgg("spiking_vgg16_bn", spiking_vgg.spiking_vgg16_bn, pretrained)
