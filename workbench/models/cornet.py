"""CORnet-Z (Kubilius et al. 2018): four convolutional areas V1, V2, V4 and IT, then a decoder.

Written here (the CORnet package is not a dependency) with the published module names, so the
published checkpoint (keys ``module.V1.conv.weight`` ...) loads with strict key checking.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import ensure_hub_file, load_checkpoint

CORNET_Z_URL = "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth"


class CORblockZ(nn.Module):
    """One area: convolution, ReLU, 3x3 max-pool with stride 2 (halves the resolution)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = nn.Identity()

    def forward(self, x):
        return self.output(self.pool(self.nonlin(self.conv(x))))


class CORnetZ(nn.Sequential):
    """CORnet-Z: input (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(OrderedDict([
            ("V1", CORblockZ(3, 64, kernel_size=7, stride=2)),
            ("V2", CORblockZ(64, 128)),
            ("V4", CORblockZ(128, 256)),
            ("IT", CORblockZ(256, 512)),
            ("decoder", nn.Sequential(OrderedDict([
                ("avgpool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("linear", nn.Linear(512, num_classes)),
                ("output", nn.Identity()),
            ]))),
        ]))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)


@register_model("cornet_z", family="cnn")
def cornet_z(pretrained: bool = False) -> Architecture:
    """CORnet-Z (Kubilius et al. 2018): the outputs of areas V1, V2, V4, IT and the pooling."""
    net = CORnetZ()
    if pretrained:
        load_checkpoint(net, ensure_hub_file(CORNET_Z_URL))
    return Architecture(net, ("V1", "V2", "V4", "IT", "decoder.avgpool"), Preprocessing(224))
