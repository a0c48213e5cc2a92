"""Small networks for 32 x 32 inputs, trained by the methods' tiny presets on this CPU.

- ``small_cnn``: four conv-BN-ReLU stages (32, 64, 128, 128 channels; max-pool after stages
  2 and 3), global average pooling and a linear classifier.
- ``small_sew_resnet``: a SEW-ResNet (Fang et al. 2021, ADD connections) shrunk to 32 x 32
  inputs: a 3 x 3 conv stem (16 channels, BN, IF neuron) and three SEW basic blocks (16, 32
  and 64 channels, stride 1, 2, 2), global average pooling and a linear classifier; IF
  neurons as in :mod:`workbench.models.snn`, T = 4 by default.

Both take ``num_classes`` (default 10) and declare ImageNet-free preprocessing: a trained
run's model card replaces it with the normalisation the network was trained with.
"""

from __future__ import annotations

import math

from torch import nn

from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model

#: What an untrained small network declares: 32 px, inputs scaled to [-1, 1].
SMALL_PREPROCESSING = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"batch"``: BatchNorm2d; ``"group"``: GroupNorm with 8 groups (fewer where ``channels``
    is not a multiple of 8), whose output for a sample does not depend on the rest of its batch."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    raise ValidationError(f"norm={kind!r}; expected 'batch' or 'group'")


def _conv_stage(cin: int, cout: int, pool: bool, norm: str) -> nn.Sequential:
    parts = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), norm_layer(norm, cout), nn.ReLU(inplace=True)]
    if pool:
        parts.append(nn.MaxPool2d(2))
    return nn.Sequential(*parts)


class SmallCNN(nn.Module):
    """Input (N, 3, 32, 32) -> logits (N, num_classes).

    ``norm="group"`` (GroupNorm, 8 groups) makes every sample's output independent of the rest
    of its batch, which BatchNorm does not (see docs/training.md on torchrun).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, norm: str = "batch"):
        super().__init__()
        self.layer1 = _conv_stage(in_channels, 32, pool=False, norm=norm)
        self.layer2 = _conv_stage(32, 64, pool=True, norm=norm)
        self.layer3 = _conv_stage(64, 128, pool=True, norm=norm)
        self.layer4 = _conv_stage(128, 128, pool=False, norm=norm)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model("small_cnn", family="cnn")
def small_cnn(pretrained: bool = False, num_classes: int = 10, norm: str = "batch") -> Architecture:
    """Small CNN for 32 px inputs (4 conv stages, 32-128 channels); trained by the methods' tiny presets."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("small_cnn has no published weights; train it (`workbench train`)")
    net = SmallCNN(num_classes, norm=norm)
    return Architecture(net, ("layer1", "layer2", "layer3", "layer4", "avgpool"), SMALL_PREPROCESSING)


class SmallSEWResNet(nn.Module):
    """Multi-step input (T, N, 3, 32, 32) -> logits (T, N, num_classes)."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        from spikingjelly.activation_based import layer
        from spikingjelly.activation_based.model import sew_resnet

        from workbench.models.snn import neuron_kwargs

        kwargs = neuron_kwargs()
        spiking_neuron = kwargs.pop("spiking_neuron")
        self.conv1 = layer.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = layer.BatchNorm2d(widths[0])
        self.sn1 = spiking_neuron(**kwargs)
        blocks, cin = [], widths[0]
        for width, stride in zip(widths, (1, 2, 2)):
            downsample = None
            if stride != 1 or cin != width:
                downsample = nn.Sequential(layer.Conv2d(cin, width, 1, stride=stride, bias=False),
                                           layer.BatchNorm2d(width))
            blocks.append(sew_resnet.BasicBlock(cin, width, stride, downsample, cnf="ADD",
                                                spiking_neuron=spiking_neuron, **kwargs))
            cin = width
        self.layer1, self.layer2, self.layer3 = blocks
        self.avgpool = layer.AdaptiveAvgPool2d(1)
        self.flatten = layer.Flatten(start_dim=1)
        self.fc = layer.Linear(cin, num_classes)

    def forward(self, x):
        x = self.sn1(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model("small_sew_resnet", family="snn")
def small_sew_resnet(pretrained: bool = False, num_classes: int = 10) -> Architecture:
    """Small SEW-ResNet for 32 px inputs (stem + 3 SEW blocks, 16-64 channels, IF neurons, T=4)."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("small_sew_resnet has no published weights; train it (`workbench train`)")
    from spikingjelly.activation_based import functional

    net = SmallSEWResNet(num_classes)
    functional.set_step_mode(net, "m")
    return Architecture(net, ("sn1", "layer1", "layer2", "layer3", "avgpool"), SMALL_PREPROCESSING,
                        time_steps=4)
