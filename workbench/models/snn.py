"""Spiking networks from spikingjelly 2.0's own definitions (multi-step mode), as in the study.

Every network uses integrate-and-fire neurons (threshold 1, hard reset to 0, detached reset)
with the ATan surrogate gradient, and sees each static image repeated over T = 4 steps.
Inputs are (T, N, C, H, W); hooked layers output (T, N, ...).

SEW-ResNet-18/34/50/101/152 (Fang et al. 2021, ADD connection) are spikingjelly's; their state
dicts have the key names and shapes of the study's own ``SEWResNet.py`` (Huang et al. 2023,
github.com/Grasshlw/SNN-Neural-Similarity-Static), so the authors' checkpoints load unchanged.
The study's shallow, wide and ResNeXt SEW networks and its Spiking-MobileNet, which
spikingjelly does not define, are in :mod:`workbench.models.snn_study`.

Trained weights: ``weights="imagenet"`` reads the authors' checkpoint (the study's ImageNet
training, T=4), placed by hand in torch hub's checkpoint folder (``workbench models weights``
prints where; spikingjelly's ``pretrained=True`` copies *ANN* weights and is not used).
Spiking ResNet-18 and the spiking VGGs are not among the study's networks and have no
published checkpoint.
"""

from __future__ import annotations

from torch import nn

from workbench.errors import ValidationError
from workbench.models._layers import of_type, resnet_layers
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.study_layers import study_specs
from workbench.models.weights import WeightsSource, declare_weights, load_checkpoint, published_weights

TIME_STEPS = 4
STUDY_CHECKPOINTS = "https://drive.google.com/drive/folders/1oRplrHdJDnONhYWRvP5VP0sU4G8NuMfq"
STUDY_ORIGIN = (f"{STUDY_CHECKPOINTS} (the study's checkpoint folder, linked from the README of "
                "github.com/Grasshlw/SNN-Neural-Similarity-Static)")
SPIKING_ORIGIN = "a spikingjelly ImageNet training of this network (T=4, IF neurons; none is published)"


def neuron_kwargs() -> dict:
    """IF neurons (v_threshold=1, v_reset=0), ATan surrogate, detached reset."""
    from spikingjelly.activation_based import neuron, surrogate

    return {"spiking_neuron": neuron.IFNode, "surrogate_function": surrogate.ATan(),
            "detach_reset": True, "v_threshold": 1.0, "v_reset": 0.0}


def if_neuron() -> nn.Module:
    """One IF neuron layer with :func:`neuron_kwargs`'s settings (single-step until set to 'm')."""
    kwargs = neuron_kwargs()
    return kwargs.pop("spiking_neuron")(**kwargs)


def declare_study_checkpoint(name: str) -> None:
    """Declare that ``name``'s ImageNet weights are the study authors' checkpoint, placed by hand."""
    declare_weights(name, WeightsSource(filename=f"{name}_imagenet.pth", origin=STUDY_ORIGIN))


def finish_snn(name: str, net: nn.Module, layers, pretrained: bool) -> Architecture:
    """The Architecture of a spiking network at 224 px and T=4 in multi-step mode, with its declared weights.

    spikingjelly builds its networks in single-step mode; a network is switched to multi-step
    here, so that training (which feeds (T, N, C, H, W)) and analysis get the same network.
    """
    from spikingjelly.activation_based import functional

    functional.set_step_mode(net, "m")
    if pretrained:
        load_checkpoint(net, published_weights(name))
    return Architecture(net, tuple(layers), Preprocessing(224), time_steps=TIME_STEPS)


def _sew_resnet(name: str, pretrained: bool, num_classes: int) -> Architecture:
    from spikingjelly.activation_based.model import sew_resnet

    if num_classes != 1000 and pretrained:
        raise ValidationError(f"published ImageNet weights have 1000 classes, not num_classes={num_classes}")
    net = getattr(sew_resnet, name)(pretrained=False, cnf="ADD", num_classes=num_classes, **neuron_kwargs())
    return finish_snn(name, net, study_specs(name, net), pretrained)


SEW_RESNETS = {  # spikingjelly's builders, ADD connections: name -> what its blocks are
    "sew_resnet18": "the 8 SEW blocks", "sew_resnet34": "the 16 SEW blocks",
    "sew_resnet50": "the 16 SEW bottlenecks", "sew_resnet101": "the 33 SEW bottlenecks",
    "sew_resnet152": "the 50 SEW bottlenecks",
}


def _register_sew_resnet(name: str, blocks: str) -> None:
    def factory(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
        return _sew_resnet(name, pretrained, num_classes)

    depth = name.removeprefix("sew_resnet")
    factory.__name__ = name
    factory.__doc__ = f"SEW-ResNet-{depth} (Fang et al. 2021, ADD): sn1, max-pool, {blocks}, average pool."
    register_model(name, family="snn")(factory)
    declare_study_checkpoint(name)


for _name, _blocks in SEW_RESNETS.items():
    _register_sew_resnet(_name, _blocks)
for _name in ("spiking_resnet18", "spiking_vgg11_bn", "spiking_vgg16_bn"):
    declare_weights(_name, WeightsSource(filename=f"{_name}_imagenet.pth", origin=SPIKING_ORIGIN))


@register_model("spiking_resnet18", family="snn")
def spiking_resnet18(pretrained: bool = False) -> Architecture:
    """Spiking ResNet-18 (spikingjelly): sn1, max-pool, the 8 spiking blocks, average pool."""
    from spikingjelly.activation_based.model import spiking_resnet

    net = spiking_resnet.spiking_resnet18(pretrained=False, **neuron_kwargs())
    return finish_snn("spiking_resnet18", net, resnet_layers(net, ("sn1", "maxpool")), pretrained)


def _spiking_vgg(name: str, builder, pretrained: bool) -> Architecture:
    from spikingjelly.activation_based import neuron

    net = builder(pretrained=False, **neuron_kwargs())
    layers = (*of_type(net, "features", neuron.IFNode), *of_type(net, "classifier", neuron.IFNode))
    return finish_snn(name, net, layers, pretrained)


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
