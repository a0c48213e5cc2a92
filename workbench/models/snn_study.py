"""The spiking networks that Huang et al. 2023 built for their study (spikingjelly 2.0, multi-step).

Written from the appendix's Table 1 and Figure 1 (arXiv 2303.06060) and from reading the
authors' definitions (``similarity/model/ShallowSEWResNet.py`` and ``SpikingMobileNet.py`` of
github.com/Grasshlw/SNN-Neural-Similarity-Static), with the same module names, so that a state
dict has exactly the keys and shapes of the authors' checkpoints. Integrate-and-fire neurons,
ATan surrogate, detached reset, T = 4, inputs (T, N, 3, 224, 224); residual connections ADD
spikes (the study's ``cnf="ADD"``).

Shallow SEW-ResNets: a stem (7x7 convolution, stride 2, 64 channels, BN, IF; 3x3 max-pool,
stride 2) and three stages ``block1..block3`` of SEW blocks at 28, 14 and 7 px, each stage
halving the resolution in its first block, whose shortcut is a 1x1 convolution + BN + IF:

======================  =====================  ==============================================
network                 blocks per stage       block (output channels of stage 1 / 2 / 3)
======================  =====================  ==============================================
``sew_resnet8``         1, 1, 1                basic: 3x3, 3x3 (128 / 256 / 512)
``sew_resnet14``        2, 2, 2                basic (128 / 256 / 512)
``wide_sew_resnet8``    1, 1, 1                basic, 4x wider (512 / 1024 / 2048)
``wide_sew_resnet14``   2, 2, 2                basic, 4x wider (512 / 1024 / 2048)
``sew_resnext11``       1, 1, 1                1x1, 3x3 with 32 groups, 1x1 (128 / 256 / 512)
``sew_resnext20``       2, 2, 2                ResNeXt (128 / 256 / 512)
======================  =====================  ==============================================

then global average pooling and a fully connected layer to 1000 classes. A ResNeXt block's
inner width is its input width, halved when input and output widths are equal.

Spiking-MobileNet: MobileNet-V2's layout (a 3x3 stride-2 stem with 32 channels; seven stages
of inverted-residual blocks; a 1x1 convolution to 1280 channels) with an IF neuron after every
convolution (pointwise, depthwise, pointwise: Figure 1) and spikes ADDed where a block keeps
its width and resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.models.registry import Architecture, register_model
from workbench.models.snn import declare_study_checkpoint, finish_snn, if_neuron
from workbench.models.study_layers import study_specs

STEM_CHANNELS = 64
STAGE_CHANNELS = (128, 256, 512)
RESNEXT_GROUPS = 32
# MobileNet-V2's stages: (output channels, stride of the first block, expansion, blocks)
MOBILENET_STAGES = ((16, 1, 1, 1), (24, 2, 6, 2), (32, 2, 6, 3), (64, 2, 6, 4),
                    (96, 1, 6, 3), (160, 2, 6, 3), (320, 1, 6, 1))
MOBILENET_STEM, MOBILENET_HEAD = 32, 1280


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1):
    from spikingjelly.activation_based import layer

    return layer.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride,
                        padding=kernel // 2, groups=groups, bias=False)


def _bn(channels: int):
    from spikingjelly.activation_based import layer

    return layer.BatchNorm2d(channels)


class SEWBlock(nn.Module):
    """A spike-element-wise residual block: convolution units, then spikes ADDed to the shortcut.

    Parameters
    ----------
    in_channels : int
    units : sequence of (out_channels, kernel, stride, groups)
        The residual branch: unit ``i`` (from 1) is ``conv{i}`` -> ``bn{i}`` -> ``sn{i}``.
    projection : bool
        Whether the shortcut is ``downsample`` (1x1 convolution with the block's stride, BN)
        followed by the IF neurons ``downsample_sn``; otherwise the input itself.

    Input (T, N, in_channels, H, W) -> (T, N, units[-1][0], H / stride, W / stride) in
    multi-step mode: the branch's spikes (0 or 1) plus the shortcut (spikes after a projection,
    else the input, itself a sum of spikes after an earlier identity-shortcut block).
    """

    def __init__(self, in_channels: int, units, projection: bool):
        super().__init__()
        self.n_units = len(units)
        channels = in_channels
        for i, (out_channels, kernel, stride, groups) in enumerate(units, start=1):
            self.add_module(f"conv{i}", _conv(channels, out_channels, kernel, stride, groups))
            self.add_module(f"bn{i}", _bn(out_channels))
            self.add_module(f"sn{i}", if_neuron())
            channels = out_channels
        self.downsample = None
        if projection:
            stride = max(unit[2] for unit in units)
            self.downsample = nn.Sequential(_conv(in_channels, channels, 1, stride), _bn(channels))
            self.downsample_sn = if_neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i in range(1, self.n_units + 1):
            out = getattr(self, f"sn{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out)))
        shortcut = x if self.downsample is None else self.downsample_sn(self.downsample(x))
        return out + shortcut


def basic_units(in_channels: int, out_channels: int, stride: int):
    """Two 3x3 convolutions; the first carries the stride (``in_channels``: unused, one signature)."""
    return ((out_channels, 3, stride, 1), (out_channels, 3, 1, 1))


def resnext_units(in_channels: int, out_channels: int, stride: int):
    """1x1 reduce, 3x3 grouped (32 groups, the stride), 1x1 expand (Table 1's SEW-ResNeXt)."""
    inner = in_channels // 2 if in_channels == out_channels else in_channels
    return ((inner, 1, 1, 1), (inner, 3, stride, RESNEXT_GROUPS), (out_channels, 1, 1, 1))


class SpikingClassifier(nn.Module):
    """Base of the study's networks: the global average pool and fully connected layer."""

    def add_head(self, channels: int, num_classes: int) -> None:
        """Add ``avgpool`` and ``fc`` (after the other modules, so in definition order)."""
        from spikingjelly.activation_based import layer

        self.avgpool = layer.AdaptiveAvgPool2d((1, 1))
        self.fc = layer.Linear(channels, num_classes)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(T, N, C, H, W) in multi-step mode, (N, C, H, W) in single-step -> logits."""
        x = self.avgpool(x)
        return self.fc(torch.flatten(x, 2 if self.avgpool.step_mode == "m" else 1))

    def init_weights(self) -> None:
        """Kaiming-normal convolutions (fan out), BN scale 1 and shift 0, as the study initialises."""
        from spikingjelly.activation_based import layer

        for module in self.modules():
            if isinstance(module, layer.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, layer.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


class ShallowSEWResNet(SpikingClassifier):
    """The study's three-stage SEW-ResNet: input (T, N, 3, H, W) -> logits (T, N, num_classes).

    Parameters
    ----------
    blocks_per_stage : int
        Blocks in each of ``block1``, ``block2``, ``block3``.
    make_units : callable(in_channels, out_channels, stride)
        The residual branch of one block (:func:`basic_units` or :func:`resnext_units`).
    widen : int, default: 1
        Factor on the stage widths (4 for the wide networks).
    """

    def __init__(self, blocks_per_stage: int, make_units, widen: int = 1, num_classes: int = 1000):
        from spikingjelly.activation_based import layer

        super().__init__()
        widths = [STEM_CHANNELS, *(c * widen for c in STAGE_CHANNELS)]
        self.conv1 = _conv(3, STEM_CHANNELS, 7, 2)
        self.bn1 = _bn(STEM_CHANNELS)
        self.sn1 = if_neuron()
        self.maxpool = layer.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for stage, (c_in, c_out) in enumerate(zip(widths, widths[1:]), start=1):
            blocks = [SEWBlock(c_in, make_units(c_in, c_out, 2), projection=True)]
            blocks += [SEWBlock(c_out, make_units(c_out, c_out, 1), projection=False)
                       for _ in range(blocks_per_stage - 1)]
            self.add_module(f"block{stage}", nn.Sequential(*blocks))
        self.add_head(widths[-1], num_classes)
        self.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.sn1(self.bn1(self.conv1(x))))
        return self.classify(self.block3(self.block2(self.block1(x))))


class MobileBlock(nn.Module):
    """Spiking inverted residual: [1x1 expand], 3x3 depthwise (the stride), 1x1 project, each + BN + IF.

    The units are ``layers`` (a Sequential of conv, BN, IF triples); spikes of the input are
    ADDed to the output when the block keeps width and resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        units = [(in_channels, hidden, 1, 1, 1)] if expansion != 1 else []
        units += [(hidden, hidden, 3, stride, hidden), (hidden, out_channels, 1, 1, 1)]
        self.layers = nn.Sequential(*(
            module for c_in, c_out, kernel, s, groups in units
            for module in (_conv(c_in, c_out, kernel, s, groups), _bn(c_out), if_neuron())
        ))
        self.residual = in_channels == out_channels and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.residual else out


class SpikingMobileNet(SpikingClassifier):
    """The study's Spiking-MobileNet: input (T, N, 3, H, W) -> logits (T, N, num_classes).

    ``layers.0`` .. ``layers.6`` are the seven stages, ``layers.7``-``layers.9`` the 1x1
    convolution to 1280 channels, its BN and IF neurons.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = _conv(3, MOBILENET_STEM, 3, 2)
        self.bn1 = _bn(MOBILENET_STEM)
        self.sn1 = if_neuron()
        stages, channels = [], MOBILENET_STEM
        for out_channels, stride, expansion, n_blocks in MOBILENET_STAGES:
            strides = [stride] + [1] * (n_blocks - 1)
            stage = []
            for s in strides:
                stage.append(MobileBlock(channels, out_channels, s, expansion))
                channels = out_channels
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages, _conv(channels, MOBILENET_HEAD, 1), _bn(MOBILENET_HEAD),
                                    if_neuron())
        self.add_head(MOBILENET_HEAD, num_classes)
        self.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.layers(self.sn1(self.bn1(self.conv1(x)))))


def _shallow(name: str, pretrained: bool, blocks_per_stage: int, make_units, widen: int = 1) -> Architecture:
    net = ShallowSEWResNet(blocks_per_stage, make_units, widen)
    return finish_snn(name, net, study_specs(name, net), pretrained)


SHALLOW_SNNS = {  # name: (title, blocks per stage, block units, width factor, what the blocks are)
    "sew_resnet8": ("SEW-ResNet-8", 1, basic_units, 1, "3 SEW blocks (128/256/512 ch)"),
    "sew_resnet14": ("SEW-ResNet-14", 2, basic_units, 1, "6 SEW blocks (128/256/512 ch)"),
    "wide_sew_resnet8": ("Wide-SEW-ResNet-8", 1, basic_units, 4, "3 SEW blocks (512/1024/2048 ch)"),
    "wide_sew_resnet14": ("Wide-SEW-ResNet-14", 2, basic_units, 4, "6 SEW blocks (512/1024/2048 ch)"),
    "sew_resnext11": ("SEW-ResNeXt-11", 1, resnext_units, 1, "3 grouped SEW bottlenecks"),
    "sew_resnext20": ("SEW-ResNeXt-20", 2, resnext_units, 1, "6 grouped SEW bottlenecks"),
}


def _register_shallow(name: str, title: str, blocks_per_stage: int, make_units, widen: int, blocks: str) -> None:
    def factory(pretrained: bool = False) -> Architecture:
        return _shallow(name, pretrained, blocks_per_stage, make_units, widen)

    factory.__name__ = name
    factory.__doc__ = f"{title} (Huang et al. 2023): sn1, max-pool, {blocks}, average pool."
    register_model(name, family="snn")(factory)
    declare_study_checkpoint(name)


for _name, _row in SHALLOW_SNNS.items():
    _register_shallow(_name, *_row)


@register_model("spikingmobilenet", family="snn")
def spikingmobilenet(pretrained: bool = False) -> Architecture:
    """Spiking-MobileNet (Huang et al. 2023): sn1, each stage's blocks, the 1280-ch IF, average pool."""
    net = SpikingMobileNet()
    return finish_snn("spikingmobilenet", net, study_specs("spikingmobilenet", net), pretrained)


declare_study_checkpoint("spikingmobilenet")
