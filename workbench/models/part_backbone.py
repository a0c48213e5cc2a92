"""PART's backbones: a small ResNet for 32 px images, or torchvision's ResNet-50/101, whole or cut as the reference.

Reference code iCVTEAM/PART, ``model/backbones/resnet.py`` (``resnet50_bap``, ``resnet101_bap``,
``Bottleneck`` with ``use_cross``), read, not copied.

Cuts of a torchvision ResNet (``cut``), both with the last stride 1 (``LAST_STRIDE = 1``):

- ``"torchvision"``: the whole network up to ``layer4`` (3 blocks, 2048 channels); the stem's
  max-pool 3 x 3, stride 2, padding 1. ``layer4`` returns its output (N, 2048, h, w): the
  channel maps of part discovery, and (through a 1 x 1 projection) the transformers' tokens.
- ``"reference"`` (``resnet*_bap``): the stem's max-pool 2 x 2, stride 2, no padding
  (``nn.MaxPool2d(kernel_size=2, stride=None, padding=0)``); ``layer4`` keeps 2 blocks, the
  second cut after its second convolution (:class:`CutBottleneck`; its ``conv3``, ``bn3`` and
  residual only gave the reference a shape). ``layer4`` returns ``(attention, feature)``, both
  (N, 512, h, w): ``feature = relu(bn1(conv1(x)))`` of the second block, which the reference's
  transformers take as tokens without projection, and ``attention = relu(bn2(conv2(feature)))``,
  the channel maps of its part discovery (``ATT.NMS_crop(attention, feature, ...)``).

The cut keeps torchvision's module names for what it keeps (``layer4.0.*``,
``layer4.1.conv1/bn1/conv2/bn2``), so torchvision's ImageNet checkpoints load into it as into
the reference (which drops the keys it lacks). Both cuts give 28 x 28 maps at 448 px.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError
from workbench.models._blocks import BasicBlock
from workbench.models.weights import fetched

#: Bottleneck ResNets of ``build_backbone``: torchvision constructor -> its weights enum. The reference's
#: ``MODEL_NAME`` is ``resnet101`` by default (``config/default.py``), ``resnet50`` its option.
RESNETS = {"resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}
#: How a torchvision ResNet is cut (see the module docstring).
BACKBONE_CUTS = ("torchvision", "reference")
#: Kernel and stride of the reference's stem max-pool (``resnet.py``: ``MaxPool2d(kernel_size=2)``, no padding).
REFERENCE_POOL = 2


class CutBottleneck(nn.Module):
    """The first two convolutions of a torchvision ``Bottleneck``, under their names.

    ``forward(x)`` takes (N, C_in, h, w) and returns ``(attention, feature)``, both
    (N, width, h, w): ``feature = relu(bn1(conv1(x)))`` and ``attention = relu(bn2(conv2(feature)))``.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = block.conv1, block.bn1, block.conv2, block.bn2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(feature))), feature


def _small_backbone(widths: tuple[int, ...], blocks: int) -> tuple[nn.Sequential, int]:
    w = tuple(widths) or (16, 32, 64, 128)
    if len(w) != 4 or min(w) < 1:
        raise ValidationError(f"backbone 'small' takes 4 positive widths, found {w}")
    parts = OrderedDict(stem=nn.Sequential(nn.Conv2d(3, w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]),
                                           nn.ReLU(inplace=True)))
    cin = w[0]
    for i, (width, stride) in enumerate(zip(w, (1, 2, 2, 1)), 1):
        parts[f"layer{i}"] = nn.Sequential(*[BasicBlock(cin if j == 0 else width, width, stride if j == 0 else 1)
                                             for j in range(blocks)])
        cin = width
    return nn.Sequential(parts), w[3]


def build_backbone(kind: str, widths: tuple[int, ...] = (), blocks: int = 1, pretrained_backbone: bool = False,
                   cut: str = "torchvision") -> tuple[nn.Sequential, int]:
    """``(backbone, channels)``: modules ``stem, layer1..layer4`` mapping (N, 3, H, W) to (N, C, h, w).

    With ``cut="reference"`` (ResNets only) ``layer4`` returns ``(attention, feature)``, each with
    ``channels`` (512) channels; otherwise one tensor of ``channels`` channels.
    """
    if cut not in BACKBONE_CUTS:
        raise ValidationError(f"backbone_cut must be one of {BACKBONE_CUTS}, found {cut!r}")
    if kind == "small":
        if cut != "torchvision":
            raise ValidationError("backbone_cut 'reference' cuts a torchvision ResNet ('resnet50' or "
                                  "'resnet101'); backbone 'small' takes backbone_cut 'torchvision'")
        return _small_backbone(widths, blocks)
    if kind not in RESNETS:
        raise ValidationError(f"backbone {kind!r} is unknown; expected 'small', 'resnet50' or 'resnet101'")
    import torchvision.models as tvm

    weights = fetched(getattr(tvm, RESNETS[kind]).IMAGENET1K_V1) if pretrained_backbone else None
    net = getattr(tvm, kind)(weights=weights)
    first = net.layer4[0]  # last stride 1 (the reference's LAST_STRIDE = 1), no dilation
    first.conv2.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    if cut == "reference":
        pool = nn.MaxPool2d(REFERENCE_POOL, REFERENCE_POOL, padding=0)
        layer4, channels = nn.Sequential(first, CutBottleneck(net.layer4[1])), net.layer4[1].conv2.out_channels
    else:
        pool, layer4, channels = net.maxpool, net.layer4, 2048
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, pool)
    parts = OrderedDict(stem=stem, layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=layer4)
    return nn.Sequential(parts), channels


__all__ = ["BACKBONE_CUTS", "RESNETS", "CutBottleneck", "build_backbone"]
