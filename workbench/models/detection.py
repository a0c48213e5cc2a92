"""Detection backbones: the feature extractors of the detectors trained by ``workbench train unidet``.

``unidet_backbone`` is a small ResNet for small images (64-96 px on the CPU preset): a 3 x 3
stride-2 stem, then four stages of one basic block each (stride 2 each), so the stages have
strides 4, 8, 16 and 32. :meth:`DetectionBackbone.pyramid` returns the last three stages for a
feature pyramid (torchvision's FPN inside the detector, :mod:`workbench.methods.unidet.detector`);
``forward`` returns the globally pooled last stage (N, C), a classifier-free feature
extractor, which is what a run directory saves and what the study layer scores.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from workbench.errors import ValidationError
from workbench.models._blocks import BasicBlock
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model


class DetectionBackbone(nn.Module):
    """Images (N, 3, H, W) -> pooled features (N, widths[-1]); :meth:`pyramid` for detection.

    Parameters
    ----------
    widths : tuple of 4 int
        Channels of ``layer1`` .. ``layer4`` (the stem has ``widths[0]``).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValidationError(f"unidet_backbone widths={widths}; expected 4 positive channel counts")
        self.widths = widths
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        cin = widths[0]
        for i, w in enumerate(widths, 1):
            setattr(self, f"layer{i}", BasicBlock(cin, w, 2))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    @property
    def pyramid_channels(self) -> list[int]:
        """Channels of the three pyramid levels (strides 8, 16, 32)."""
        return list(self.widths[1:])

    def pyramid(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Feature maps of ``layer2``, ``layer3``, ``layer4`` (strides 8, 16, 32) of images (N, 3, H, W)."""
        x = self.layer1(self.stem(x))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return OrderedDict([("0", c3), ("1", c4), ("2", c5)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.pyramid(x)["2"]).flatten(1)


@register_model("unidet_backbone", family="cnn")
def unidet_backbone(pretrained: bool = False, widths: tuple = (16, 32, 48, 64), input_size: int = 64) -> Architecture:
    """Small ResNet detection backbone (stem + 4 blocks, strides 4-32); trained by `workbench train unidet`."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("unidet_backbone has no published weights; train it (`workbench train unidet`)")
    net = DetectionBackbone(tuple(widths))
    preprocessing = Preprocessing(input_size=int(input_size), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return Architecture(net, ("stem", "layer1", "layer2", "layer3", "layer4", "avgpool"), preprocessing)
