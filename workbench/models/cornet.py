"""CORnet-Z, CORnet-RT and CORnet-S (Kubilius et al. 2018, 2019): areas V1, V2, V4, IT, a decoder.

Written here (the CORnet package is not a dependency) with the published module names, so the
published checkpoints (keys ``module.V1.conv.weight`` ...) load with strict key checking.
Pretrained weights are the CORnet authors' files (``cornet-models`` on S3), as the study used.

The recurrent networks run each area several times per image. A layer spec ``"<area>:call[k]"``
(:mod:`workbench.models.layer_spec`) reads an area's output at its call ``k``:

- CORnet-RT unrolls the whole network over ``times=5`` steps: every area runs once per step,
  so ``"V4:call[t]"`` is V4 at step ``t`` (0..4); at step 0 only V1 sees the image.
- CORnet-S repeats each area's bottleneck block ``times`` = 2 (V2), 4 (V4), 2 (IT) times inside
  the area; ``"V4.output:call[t]"`` is V4 after its ``t``-th repetition and ``"V4"`` the last.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import (check_state_dict, declare_weights, load_checkpoint, published_weights,
                                      read_state_dict, url_source)

CORNET_Z_URL = "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth"
CORNET_RT_URL = "https://s3.amazonaws.com/cornet-models/cornet_rt-933c001c.pth"
CORNET_S_URL = "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth"
AREAS = ("V1", "V2", "V4", "IT")
for _name, _url in (("cornet_z", CORNET_Z_URL), ("cornet_rt", CORNET_RT_URL), ("cornet_s", CORNET_S_URL)):
    declare_weights(_name, url_source(_url))


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


def _decoder(channels: int, num_classes: int, *, output: bool = True) -> nn.Sequential:
    """Global average pool, flatten, linear read-out (and an identity named ``output``)."""
    parts = [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
             ("linear", nn.Linear(channels, num_classes))]
    return nn.Sequential(OrderedDict(parts + ([("output", nn.Identity())] if output else [])))


class CORnetZ(nn.Sequential):
    """CORnet-Z: input (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(OrderedDict([
            ("V1", CORblockZ(3, 64, kernel_size=7, stride=2)),
            ("V2", CORblockZ(64, 128)),
            ("V4", CORblockZ(128, 256)),
            ("IT", CORblockZ(256, 512)),
            ("decoder", _decoder(512, num_classes)),
        ]))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)


class CORblockRT(nn.Module):
    """One recurrent area of CORnet-RT.

    At each step the area's drive (its input from the area below, convolved, group-normed and
    rectified; zeros before any input has arrived) is added to its state (its previous output)
    and passed through a 3x3 convolution, group norm and ReLU; the result is the new state and
    the output, (N, out_channels, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.out_channels = out_channels
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                                    padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.nonlin_input = nn.ReLU()
        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.nonlin1 = nn.ReLU()
        self.output = nn.Identity()

    def output_size(self, size: int) -> int:
        """Side of the output (pixels) for an input of side ``size``."""
        conv = self.conv_input
        return (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1

    def forward(self, inp: torch.Tensor | None, state: torch.Tensor | None,
                idle_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
        """One step. ``inp=None``: no input yet, the drive is zeros of shape (N, H', W') ``idle_shape``."""
        if inp is None:
            weight = self.conv1.weight
            drive = torch.zeros((idle_shape[0], self.out_channels, *idle_shape[1:]),
                                device=weight.device, dtype=weight.dtype)
        else:
            drive = self.nonlin_input(self.norm_input(self.conv_input(inp)))
        x = drive if state is None else drive + state
        return self.output(self.nonlin1(self.norm1(self.conv1(x))))


class CORnetRT(nn.Module):
    """CORnet-RT: input (N, 3, H, W) -> logits (N, num_classes), unrolled over ``times`` steps.

    At step 0 the image reaches V1 and the higher areas run on zero drive; at every later step
    each area reads the output of the area below from the previous step (V1 the image again).
    The decoder reads IT after the last step.
    """

    def __init__(self, times: int = 5, num_classes: int = 1000):
        super().__init__()
        self.times = times
        self.V1 = CORblockRT(3, 64, kernel_size=7, stride=4)
        self.V2 = CORblockRT(64, 128, stride=2)
        self.V4 = CORblockRT(128, 256, stride=2)
        self.IT = CORblockRT(256, 512, stride=2)
        self.decoder = _decoder(512, num_classes, output=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        side, sides = image.shape[-1], {}
        for area in AREAS:  # output side of each area (224 px: 56, 28, 14, 7)
            side = sides[area] = getattr(self, area).output_size(side)
        outputs: dict[str, torch.Tensor] = {}
        for step in range(self.times):
            below = {"V1": image, **{upper: outputs.get(lower) for lower, upper in zip(AREAS, AREAS[1:])}}
            outputs = {area: getattr(self, area)(below[area], outputs.get(area),
                                                 (image.shape[0], sides[area], sides[area]))
                       for area in AREAS}
        return self.decoder(outputs["IT"])


class CORblockS(nn.Module):
    """One area of CORnet-S: a bottleneck residual block repeated ``times`` times.

    The first repetition halves the resolution (strided 3x3 convolution, projected skip); the
    others keep it, with the identity skip. Each repetition has its own batch norms
    (``norm1_t``, ``norm2_t``, ``norm3_t``). Output (N, out_channels, ceil(H/2), ceil(W/2)).
    """

    scale = 4  # channel expansion inside the bottleneck

    def __init__(self, in_channels: int, out_channels: int, times: int = 1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU()
        self.conv2 = nn.Conv2d(wide, wide, kernel_size=3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU()
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU()
        self.output = nn.Identity()
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        for t in range(self.times):
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            self.conv2.stride = (2, 2) if t == 0 else (1, 1)  # one set of weights, two strides
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.output(self.nonlin3(x + skip))
        return x


class CORnetS(nn.Sequential):
    """CORnet-S: input (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(OrderedDict([
            ("V1", nn.Sequential(OrderedDict([
                ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm1", nn.BatchNorm2d(64)),
                ("nonlin1", nn.ReLU()),
                ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
                ("norm2", nn.BatchNorm2d(64)),
                ("nonlin2", nn.ReLU()),
                ("output", nn.Identity()),
            ]))),
            ("V2", CORblockS(64, 128, times=2)),
            ("V4", CORblockS(128, 256, times=4)),
            ("IT", CORblockS(256, 512, times=2)),
            ("decoder", _decoder(512, num_classes)),
        ]))
        for module in self.modules():  # the authors' initialisation (He normal, fan-out)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def _load_published(net: nn.Module, path) -> None:
    """Load a CORnet file; batch-norm step counters absent from older files count as 0."""
    state = read_state_dict(path)
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    check_state_dict(net, state, path)
    net.load_state_dict(state, strict=True)


@register_model("cornet_z", family="cnn")
def cornet_z(pretrained: bool = False) -> Architecture:
    """CORnet-Z (Kubilius et al. 2018): the outputs of areas V1, V2, V4, IT and the pooling."""
    net = CORnetZ()
    if pretrained:
        load_checkpoint(net, published_weights("cornet_z"))
    return Architecture(net, ("V1", "V2", "V4", "IT", "decoder.avgpool"), Preprocessing(224))


@register_model("cornet_rt", family="cnn")
def cornet_rt(pretrained: bool = False) -> Architecture:
    """CORnet-RT (Kubilius et al. 2018), 5 steps: V1, V2, V4, IT at the last step, pooled IT.

    The study's list hooks ``decoder`` for every entry but reads what its forward returns for
    an area index: each area's output after the last step ("<area>:call[-1]", (C, H, W)) and the
    pooled, flattened IT ("decoder.flatten", (512,)).
    """
    path = published_weights("cornet_rt") if pretrained else None  # offline: fail before building
    net = CORnetRT()
    if path is not None:
        _load_published(net, path)
    layers = (*(f"{area}:call[-1]" for area in AREAS), "decoder.flatten")
    return Architecture(net, layers, Preprocessing(224))


@register_model("cornet_s", family="cnn")
def cornet_s(pretrained: bool = False) -> Architecture:
    """CORnet-S (Kubilius et al. 2019): V1, V2, V4, IT after their last repetition, the pooling."""
    path = published_weights("cornet_s") if pretrained else None  # offline: fail before building
    net = CORnetS()
    if path is not None:
        _load_published(net, path)
    return Architecture(net, ("V1", "V2", "V4", "IT", "decoder.avgpool"), Preprocessing(224))
