"""Semantic-segmentation networks: a small encoder-decoder for the CPU and torchvision's DeepLab-v3.

Both return per-pixel class scores ``(N, num_classes, H, W)`` at the input resolution from
``forward`` and expose their decoder feature map through ``forward_features`` (used by the
class-wise descriptors of :mod:`workbench.methods.mada`):

- ``seg_cnn``: three conv-BN-ReLU encoder stages (``layer1`` full resolution, ``layer2`` 1/2,
  ``layer3`` 1/4, widths ``widths``), a dilated context block ``layer4`` (1/4 resolution), a
  decoder ``decoder`` (3 x 3 conv-BN-ReLU to ``feature_dim`` channels on the concatenation of
  ``layer4`` and ``layer3``) and a 1 x 1 ``classifier``; the
  logits (1/4 resolution) are upsampled bilinearly to the input size. Analysis layers: the
  encoder stages and the decoder, so a run scores in ``workbench score`` like a classifier.
- ``deeplabv3_resnet50_seg`` / ``deeplabv3_resnet101_seg``: torchvision's DeepLab-v3 (ResNet
  backbone, output stride 8, ASPP head) without pretrained weights unless ``pretrained_backbone``;
  the decoder feature map is the ASPP head's output before its last 1 x 1 convolution (256
  channels, 1/8 resolution). The reference code's network (munanning/MADA, models/deeplab.py) is
  DeepLab-v3+/ResNet-101 (output stride 16 and a decoder whose 256-channel features are at 1/4
  resolution); it is not in torchvision, and v3 is its closest maintained builder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.small import norm_layer
from workbench.models.weights import fetched

#: What an untrained ``seg_cnn`` declares: 64 px, inputs scaled to [-1, 1].
SEG_PREPROCESSING = Preprocessing(input_size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _conv(cin: int, cout: int, norm: str, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         norm_layer(norm, cout), nn.ReLU(inplace=True))


class Segmenter(nn.Module):
    """A segmentation network defined by ``forward_features(x) -> (features, low-res logits)``;
    what MADA trains."""

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits (N, C, H, W) at the input resolution; with ``return_features``, what
        :meth:`forward_features` returns (a training step that needs the features calls this
        through its DistributedDataParallel wrapper, which syncs the gradients of ``forward`` only)."""
        features, logits = self.forward_features(x)
        if return_features:
            return features, logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class SmallSegNet(Segmenter):
    """Input (N, 3, H, W) -> logits (N, num_classes, H, W); H and W divisible by 4.

    Parameters
    ----------
    num_classes : int
    widths : tuple of 3 ints
        Channels of ``layer1`` (full resolution), ``layer2`` (1/2) and ``layer3`` (1/4);
        ``layer4`` (dilation 2) keeps ``widths[2]``.
    feature_dim : int
        Channels D of the decoder feature map (the descriptors' dimension).
    norm : {"batch", "group"}
        Normalisation after each convolution (``"group"``: each sample's output independent of
        its batch, so that torchrun's processes train exactly as one process would).
    """

    def __init__(self, num_classes: int = 5, widths: tuple[int, int, int] = (16, 32, 48), feature_dim: int = 32,
                 norm: str = "batch"):
        super().__init__()
        if len(widths) != 3:
            raise ValidationError(f"seg_cnn widths={list(widths)}; expected 3 channel counts")
        w1, w2, w3 = (int(w) for w in widths)
        self.layer1 = _conv(3, w1, norm)
        self.layer2 = _conv(w1, w2, norm, stride=2)
        self.layer3 = _conv(w2, w3, norm, stride=2)
        self.layer4 = _conv(w3, w3, norm, dilation=2)
        self.decoder = _conv(2 * w3, int(feature_dim), norm)
        self.classifier = nn.Conv2d(int(feature_dim), num_classes, 1)
        self.num_classes = num_classes
        self.feature_dim = int(feature_dim)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (N, D, H/4, W/4), logits (N, C, H/4, W/4))``: the decoder map and its scores."""
        x3 = self.layer3(self.layer2(self.layer1(x)))
        features = self.decoder(torch.cat([self.layer4(x3), x3], dim=1))
        return features, self.classifier(features)


@register_model("seg_cnn", family="cnn")
def seg_cnn(pretrained: bool = False, num_classes: int = 5, widths: tuple[int, int, int] = (16, 32, 48),
            feature_dim: int = 32, norm: str = "batch") -> Architecture:
    """Small segmentation encoder-decoder for 64 px inputs (3 conv stages, dilated block, decoder); MADA's tiny preset."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("seg_cnn has no published weights; train it (`workbench train mada`)")
    net = SmallSegNet(num_classes, tuple(widths), feature_dim, norm)
    return Architecture(net, ("layer1", "layer2", "layer3", "layer4", "decoder"), SEG_PREPROCESSING)


class DeepLabV3(Segmenter):
    """torchvision's DeepLab-v3 with a tensor output and the ASPP feature map exposed."""

    def __init__(self, depth: int, num_classes: int, pretrained_backbone: bool = False):
        super().__init__()
        from torchvision.models import ResNet50_Weights, ResNet101_Weights
        from torchvision.models.segmentation import deeplabv3_resnet50, deeplabv3_resnet101

        builder, weights = {50: (deeplabv3_resnet50, ResNet50_Weights.IMAGENET1K_V1),
                            101: (deeplabv3_resnet101, ResNet101_Weights.IMAGENET1K_V1)}[depth]
        net = builder(weights=None, weights_backbone=fetched(weights) if pretrained_backbone else None,
                      num_classes=num_classes, aux_loss=False)
        self.backbone = net.backbone            # IntermediateLayerGetter: {"out": layer4}
        head = list(net.classifier.children())  # ASPP, conv, BN, ReLU, final 1x1 conv
        self.decoder = nn.Sequential(*head[:-1])
        self.classifier = head[-1]
        self.num_classes = num_classes
        self.feature_dim = self.classifier.in_channels

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (N, 256, H/8, W/8), logits (N, C, H/8, W/8))``."""
        features = self.decoder(self.backbone(x)["out"])
        return features, self.classifier(features)


_DEEPLAB_LAYERS = ("backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4", "decoder")


@register_model("deeplabv3_resnet50_seg", family="cnn")
def deeplabv3_resnet50_seg(pretrained: bool = False, num_classes: int = 19,
                           pretrained_backbone: bool = False) -> Architecture:
    """torchvision DeepLab-v3/ResNet-50 for segmentation (tensor output, ASPP features exposed)."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("deeplabv3_resnet50_seg: train it (`workbench train mada --preset paper`)")
    return Architecture(DeepLabV3(50, num_classes, pretrained_backbone), _DEEPLAB_LAYERS, Preprocessing(input_size=512))


@register_model("deeplabv3_resnet101_seg", family="cnn")
def deeplabv3_resnet101_seg(pretrained: bool = False, num_classes: int = 19,
                            pretrained_backbone: bool = False) -> Architecture:
    """torchvision DeepLab-v3/ResNet-101 for segmentation (tensor output, ASPP features exposed)."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("deeplabv3_resnet101_seg: train it (`workbench train mada --preset paper`)")
    return Architecture(DeepLabV3(101, num_classes, pretrained_backbone), _DEEPLAB_LAYERS, Preprocessing(input_size=512))
