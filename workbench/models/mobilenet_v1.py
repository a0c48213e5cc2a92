"""MobileNet-V1 (Howard et al. 2017) as LATS's reference code defines it, the paper's second ANN.

Layout of Yanqi-Chen/LATS ``models/mobilenetv1.py`` (read, not copied): a 3x3 stride-2 conv
(32 channels) with BN and ReLU, then 13 depthwise-separable stages (a depthwise 3x3 conv, BN,
ReLU, a 1x1 conv, BN, ReLU) to 1024 channels, global average pooling and a bias-free
classifier (a 1x1 conv there, a bias-free ``Linear`` here: the same map). The reference's
``AvgPool2d(7)`` is an adaptive pool here (the same at 224 px; other sizes work too).

Initial weights as there: PyTorch's default for the convs and BN (its builder's ``conv2d``
does not re-initialise them), kaiming normal with fan-in and the ReLU gain for the classifier
(its ``conv1x1``). Analysis layers: the stem and the 13 stages (``model.0`` ... ``model.13``)
and ``avgpool``.
"""

from __future__ import annotations

from torch import nn

from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model

#: (output channels, stride) of the 13 depthwise-separable stages.
STAGES = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class MobileNetV1(nn.Module):
    """Images (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        stages = [nn.Sequential(*_conv_bn_relu(3, 32, 3, 2))]
        cin = 32
        for cout, stride in STAGES:
            stages.append(nn.Sequential(*_conv_bn_relu(cin, cin, 3, stride, groups=cin),
                                        *_conv_bn_relu(cin, cout, 1, 1)))
            cin = cout
        self.model = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes, bias=False)
        nn.init.kaiming_normal_(self.fc.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.avgpool(self.model(x)).flatten(1))


@register_model("mobilenet_v1", family="cnn")
def mobilenet_v1(pretrained: bool = False, num_classes: int = 1000) -> Architecture:
    """MobileNet-V1 as LATS's reference code (no published weights): stem, 13 stages, avgpool."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("mobilenet_v1 has no published weights here; train it (`workbench train lats`)")
    net = MobileNetV1(num_classes)
    layers = tuple(f"model.{i}" for i in range(len(net.model))) + ("avgpool",)
    return Architecture(net, layers, Preprocessing(224))
