"""Full-spike SEW-ResNets (FSNN) and their dual-stream training form (DSNN), spikingjelly multi-step.

Chen, Peng, Li & Tian 2023, *Training Full Spike Neural Networks via Auxiliary Accumulation
Pathway* (arXiv:2301.11929); our reading of the reference code (iCGY96/AAP,
``imagenet/dsnn.py``), written for spikingjelly 2.0 and the study's neurons.

**FSNN.** A SEW-ResNet whose every inter-block signal is binary. A block computes the residual
spikes ``s_res = IF(BN(conv(IF(BN(conv(x))))))`` and the identity spikes ``s_id`` (``x``
itself, or ``IF(BN(conv1x1_stride(x)))`` at a block that changes shape), then joins them with a
*connect function* whose output is again in {0, 1} (:data:`CONNECT_FUNCTIONS`):

=======  ==============================  ============================
name     output                          as logic
=======  ==============================  ============================
IAND     ``s_id * (1 - s_res)``          ``s_id AND NOT s_res`` (default)
AND      ``s_id * s_res``                ``s_id AND s_res``
OR       ``s_id + s_res - s_id * s_res`` ``s_id OR s_res``
XOR      ``s_id + s_res - 2 s_id s_res`` ``s_id XOR s_res``
=======  ==============================  ============================

(ADD, the ordinary SEW-ResNet's ``s_id + s_res``, is not binary and so not offered.) The stem's
output (IF spikes, max-pooled in the ImageNet layouts) is binary too.

**AAP, the auxiliary accumulation pathway.** ``x_acc`` starts as the stem's spikes; after
block ``i`` (counted over all stages, in order), ``x_acc <- P_i(x_acc) + s_res_i``, where
``P_i`` is the identity, or, at a block that changes shape, a depthwise 3x3 conv with the
block's stride (only when the stride is > 1), a 1x1 conv to the block's width, BN and ReLU. The
spike stream never reads ``x_acc``. Both streams are average-pooled over space into the *same*
classifier (``fc``); the network returns per-time-step logits (T, N, classes), whose mean over T
is the prediction (what :meth:`workbench.training.Network.logits` takes), as the reference
code's mean over T before its linear classifier.

The zoo has both forms of each layout (family ``snn``, IF neurons with hard reset to 0 and
detached reset, T = 4 as the study's SNNs). The surrogate gradient (``surrogate``,
:data:`SURROGATES`) is by default spikingjelly's Sigmoid with alpha 4, what the reference code
ran (the default of the multi-step IF node of the spikingjelly version it names);
``surrogate="atan"`` gives the study's ATan (alpha 2). The forward pass is the same for both:
only the gradients differ.

- ``fsnn_tiny`` / ``dsnn_tiny``: 32 px inputs, 3x3 stem (``width`` channels, stride
  ``stem_stride``, default 2, no max-pool), four stages of ``blocks`` blocks (default 2 each:
  8 blocks) with ``width`` x (1, 2, 4, 8) channels (default width 8) and strides (1, 2, 2, 2),
  so 16, 8, 4 and 2 px feature maps. The stride-2 stem quarters the cost on the CPU; the tiny
  preset's digits are 8 x 8 images upsampled to 32 px, so it loses no detail of them.
- ``fsnn18`` / ``dsnn18``, ``fsnn34`` / ``dsnn34``: the SEW-ResNet-18/34 layouts for 224 px
  (7x7 stride-2 stem, 64 channels, max-pool; stages of 64-512 channels).

An FSNN's analysis layers are the stem (``sn1``; and ``maxpool``), every block
(``layerS.B``: its binary output) and ``avgpool``; it outputs the spike head. A DSNN has the
FSNN's parameters plus the AAP's (``aap.I``, one module per block) and outputs the AAP head;
its analysis layers are the stem, the accumulation after every block (``aap.I``) and
``acc_avgpool``. Removing the AAP (:func:`fsnn_state_dict`) leaves a state dict that loads,
strictly, into the FSNN of the same layout, whose output is bit-identical with the DSNN's spike
head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model

#: Connect functions whose output is binary when both inputs are.
CONNECT_FUNCTIONS = ("IAND", "AND", "OR", "XOR")
#: Heads a :class:`FullSpikeResNet` can return.
HEADS = ("spike", "acc", "both")
#: Default T, as the study's SNNs.
TIME_STEPS = 4
#: Prefix of the AAP's parameters in a DSNN's state dict.
AAP_PREFIX = "aap."
#: Surrogate gradients of the IF neurons: name -> (spikingjelly class name, alpha).
SURROGATES = {"sigmoid": ("Sigmoid", 4.0), "atan": ("ATan", 2.0)}
#: The DSNN form of every FSNN architecture in the zoo.
DSNN_OF = {"fsnn_tiny": "dsnn_tiny", "fsnn18": "dsnn18", "fsnn34": "dsnn34"}

_TINY_PREPROCESSING = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def check_connect(name: str) -> str:
    """``name`` if it is a full-spike connect function; otherwise a ValidationError naming the choices."""
    if name not in CONNECT_FUNCTIONS:
        extra = (" (ADD is the ordinary SEW-ResNet's sum, which is not binary: use small_sew_resnet or "
                 "sew_resnet18 for it)") if str(name).upper() == "ADD" else ""
        raise ValidationError(f"connect={name!r} is not a full-spike connect function{extra}; "
                              f"expected one of {list(CONNECT_FUNCTIONS)}")
    return name


def connect(s_id: torch.Tensor, s_res: torch.Tensor, kind: str) -> torch.Tensor:
    """Join identity spikes and residual spikes, elementwise (same shape; binary in, binary out).

    Parameters
    ----------
    s_id, s_res : Tensor
        Spikes in {0, 1}, any equal shapes (e.g. (T, N, C, H, W)).
    kind : {"IAND", "AND", "OR", "XOR"}
    """
    if kind == "IAND":
        return s_id * (1.0 - s_res)
    if kind == "AND":
        return s_id * s_res
    if kind == "OR":
        return s_id + s_res - s_id * s_res
    if kind == "XOR":
        return s_id + s_res - 2.0 * s_id * s_res
    raise ValidationError(f"connect={kind!r}; expected one of {list(CONNECT_FUNCTIONS)}")


def check_surrogate(name: str) -> str:
    """``name`` if it is in :data:`SURROGATES`; otherwise a ValidationError naming the choices."""
    if name not in SURROGATES:
        raise ValidationError(f"surrogate={name!r}; expected one of {list(SURROGATES)}")
    return name


def _neuron(surrogate: str = "sigmoid"):
    """IF neuron (threshold 1, hard reset to 0, detached reset) with the ``surrogate`` gradient."""
    from spikingjelly.activation_based import surrogate as surrogates

    from workbench.models.snn import neuron_kwargs

    kwargs = neuron_kwargs()
    class_name, alpha = SURROGATES[check_surrogate(surrogate)]
    kwargs["surrogate_function"] = getattr(surrogates, class_name)(alpha=alpha)
    return kwargs.pop("spiking_neuron")(**kwargs)


class FullSpikeBlock(nn.Module):
    """SEW basic block with a binary connect function.

    Input spikes (T, N, C_in, H, W) -> output spikes (T, N, C_out, H / stride, W / stride).

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Of the first 3x3 conv and of the shortcut's 1x1 conv.
    connect : {"IAND", "AND", "OR", "XOR"}
    surrogate : {"sigmoid", "atan"}
        Surrogate gradient of the block's IF neurons (:data:`SURROGATES`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, connect: str = "IAND",
                 surrogate: str = "sigmoid"):
        super().__init__()
        from spikingjelly.activation_based import layer

        self.connect = check_connect(connect)
        self.conv1 = layer.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = layer.BatchNorm2d(out_channels)
        self.sn1 = _neuron(surrogate)
        self.conv2 = layer.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = layer.BatchNorm2d(out_channels)
        self.sn2 = _neuron(surrogate)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                layer.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                layer.BatchNorm2d(out_channels), _neuron(surrogate))

    def forward(self, x: torch.Tensor, return_residual: bool = False):
        """The block's output spikes; with ``return_residual`` also the residual spikes ``s_res``."""
        s_res = self.sn2(self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x))))))
        s_id = x if self.downsample is None else self.downsample(x)
        out = connect(s_id, s_res, self.connect)
        return (out, s_res) if return_residual else out

    def extra_repr(self) -> str:
        return f"connect={self.connect}"


class AccumulationStep(nn.Module):
    """One step of the AAP: ``x_acc <- P(x_acc) + s_res``.

    ``P`` is the identity when the block keeps the shape. Otherwise it is ``proj``: a depthwise
    3x3 conv with stride ``stride`` (only for ``stride > 1``), a 1x1 conv ``in_channels ->
    out_channels``, BN and ReLU, mapping (T, N, C_in, H, W) to (T, N, C_out, H / stride,
    W / stride), the shape of the block's output.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        from spikingjelly.activation_based import layer

        self.proj = None
        if stride != 1 or in_channels != out_channels:
            parts = []
            if stride != 1:
                parts.append(layer.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1,
                                          groups=in_channels, bias=False))
            parts += [layer.Conv2d(in_channels, out_channels, 1, bias=False), layer.BatchNorm2d(out_channels),
                      nn.ReLU()]
            self.proj = nn.Sequential(*parts)

    def forward(self, x_acc: torch.Tensor, s_res: torch.Tensor) -> torch.Tensor:
        return (x_acc if self.proj is None else self.proj(x_acc)) + s_res


def _init(module: nn.Module) -> None:
    """Kaiming-normal convs (fan out), BN scale 1 and shift 0, as the reference code."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class FullSpikeResNet(nn.Module):
    """A full-spike SEW-ResNet, with the auxiliary accumulation pathway when ``aap``.

    Multi-step input (T, N, 3, H, W) -> per-step logits (T, N, num_classes) of ``head``.

    Parameters
    ----------
    blocks : sequence of int
        Blocks per stage (up to 4 stages: ``layer1`` ...).
    widths : sequence of int
        Channels of each stage.
    strides : sequence of int
        Stride of each stage's first block.
    stem : {"tiny", "imagenet"}
        ``"tiny"``: 3x3 conv (stride ``stem_stride``, ``widths[0]`` channels), BN, IF.
        ``"imagenet"``: 7x7 conv stride 2 (64 channels), BN, IF, 3x3 max-pool stride 2.
    num_classes : int
    connect : {"IAND", "AND", "OR", "XOR"}
    aap : bool
        Add the AAP (a DSNN); without it the network is the FSNN.
    head : {"spike", "acc", "both"}, optional
        What ``forward`` returns by default: the spike head, the AAP head, or both (a tuple);
        default ``"acc"`` for a DSNN, ``"spike"`` for an FSNN.
    stem_stride : int, default: 1
        Stride of the ``"tiny"`` stem's conv.
    zero_init_residual : bool, default: False
        Start every block's last BN scale at 0 (the reference code's ``--zero_init_residual``):
        the residual spikes are then 0 at first and a block passes its identity spikes through
        (IAND, OR, XOR; AND passes nothing).
    surrogate : {"sigmoid", "atan"}, default: "sigmoid"
        Surrogate gradient of every IF neuron (:data:`SURROGATES`; the reference's Sigmoid).
    """

    def __init__(self, blocks: Sequence[int], widths: Sequence[int], strides: Sequence[int], *,
                 stem: str = "tiny", num_classes: int = 10, connect: str = "IAND", aap: bool = False,
                 head: str | None = None, stem_stride: int = 1, zero_init_residual: bool = False,
                 surrogate: str = "sigmoid"):
        super().__init__()
        from spikingjelly.activation_based import functional, layer

        if not (len(blocks) == len(widths) == len(strides)) or not 1 <= len(blocks) <= 4:
            raise ValidationError(f"blocks {list(blocks)}, widths {list(widths)} and strides {list(strides)} "
                                  "must have one entry per stage (1 to 4 stages)")
        if min(blocks) < 1 or min(widths) < 1:
            raise ValidationError(f"every stage needs >= 1 block and >= 1 channel, found blocks {list(blocks)}, "
                                  f"widths {list(widths)}")
        check_connect(connect)
        self.connect = connect
        self.surrogate = check_surrogate(surrogate)
        self.has_aap = bool(aap)
        self.head = head or ("acc" if aap else "spike")
        self._check_head(self.head)
        if stem == "tiny":
            cin = int(widths[0])
            self.conv1 = layer.Conv2d(3, cin, 3, stride=int(stem_stride), padding=1, bias=False)
            self.maxpool = None
        elif stem == "imagenet":
            cin = 64
            self.conv1 = layer.Conv2d(3, cin, 7, stride=2, padding=3, bias=False)
        else:
            raise ValidationError(f"stem={stem!r}; expected 'tiny' or 'imagenet'")
        self.bn1 = layer.BatchNorm2d(cin)
        self.sn1 = _neuron(surrogate)
        if stem == "imagenet":
            self.maxpool = layer.MaxPool2d(3, stride=2, padding=1)
        self.stem = stem
        steps = []
        for s, (n, width, stride) in enumerate(zip(blocks, widths, strides)):
            stage = []
            for b in range(int(n)):
                stage.append(FullSpikeBlock(cin, int(width), int(stride) if b == 0 else 1, connect, surrogate))
                steps.append((cin, int(width), int(stride) if b == 0 else 1))
                cin = int(width)
            setattr(self, f"layer{s + 1}", nn.Sequential(*stage))
        self.num_stages = len(blocks)
        self.avgpool = layer.AdaptiveAvgPool2d((1, 1))
        self.flatten = layer.Flatten(start_dim=1)
        self.fc = layer.Linear(cin, num_classes)
        _init(self)
        if zero_init_residual:
            for _, block in self.blocks:
                nn.init.constant_(block.bn2.weight, 0)
        if aap:  # built and initialised after the spike stream: its random draws come last
            self.aap = nn.ModuleList(AccumulationStep(*step) for step in steps)
            self.acc_avgpool = layer.AdaptiveAvgPool2d((1, 1))
            _init(self.aap)
        functional.set_step_mode(self, "m")

    @staticmethod
    def _check_head(head: str) -> None:
        if head not in HEADS:
            raise ValidationError(f"head={head!r}; expected one of {list(HEADS)}")

    @property
    def blocks(self) -> list[tuple[str, FullSpikeBlock]]:
        """``(name, block)`` of every block, in order (``layerS.B``)."""
        return [(f"layer{s + 1}.{b}", block) for s in range(self.num_stages)
                for b, block in enumerate(getattr(self, f"layer{s + 1}"))]

    def stem_spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Binary stem output (T, N, C, H', W') of multi-step images (T, N, 3, H, W)."""
        x = self.sn1(self.bn1(self.conv1(x)))
        return x if self.maxpool is None else self.maxpool(x)

    def _classify(self, x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
        return self.fc(self.flatten(pool(x)))

    def forward(self, x: torch.Tensor, head: str | None = None):
        """Per-step logits (T, N, classes) of ``head`` (default: the network's), or both as a tuple."""
        head = self.head if head is None else head
        self._check_head(head)
        if head != "spike" and not self.has_aap:
            raise ValidationError(f"head={head!r} needs the AAP, which this FSNN does not have")
        x = self.stem_spikes(x)
        if head == "spike":
            for s in range(self.num_stages):
                x = getattr(self, f"layer{s + 1}")(x)
            return self._classify(x, self.avgpool)
        x_acc = x
        for step, (_, block) in zip(self.aap, self.blocks):
            x, s_res = block(x, return_residual=True)
            x_acc = step(x_acc, s_res)
        acc = self._classify(x_acc, self.acc_avgpool)
        return acc if head == "acc" else (self._classify(x, self.avgpool), acc)

    def remove_aap(self) -> "FullSpikeResNet":
        """Delete the AAP in place: the network becomes the FSNN (spike head); returns ``self``."""
        if self.has_aap:
            del self.aap
            del self.acc_avgpool
            self.has_aap = False
        self.head = "spike"
        return self

    def layer_names(self) -> tuple[str, ...]:
        """Analysis layers: stem, every block (FSNN) or every accumulation (DSNN), pooling."""
        stem = ("sn1",) if self.maxpool is None else ("sn1", "maxpool")
        if self.has_aap:
            return (*stem, *(f"aap.{i}" for i in range(len(self.aap))), "acc_avgpool")
        return (*stem, *(name for name, _ in self.blocks), "avgpool")


def fsnn_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DSNN's state dict with the AAP removed: loads strictly into the FSNN of the same layout."""
    return {k: v for k, v in state_dict.items() if not k.startswith(AAP_PREFIX)}


def _blocks_arg(blocks) -> tuple[int, ...]:
    if isinstance(blocks, int):
        blocks = (blocks,) * 4
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) != 4:
        raise ValidationError(f"blocks={list(blocks)}; expected 4 numbers (blocks per stage) or one int")
    return blocks


def _no_weights(name: str) -> None:
    from workbench.errors import WeightsUnavailableError

    raise WeightsUnavailableError(f"{name} has no published weights here; train it (`workbench train dst`)")


def _tiny(name: str, pretrained: bool, num_classes: int, connect: str, width: int, blocks, stem_stride: int,
          zero_init_residual: bool, surrogate: str, aap: bool):
    if pretrained:
        _no_weights(name)
    if int(width) < 1 or int(stem_stride) < 1:
        raise ValidationError(f"width={width}, stem_stride={stem_stride}; expected positive integers")
    net = FullSpikeResNet(_blocks_arg(blocks), [int(width) * k for k in (1, 2, 4, 8)], (1, 2, 2, 2),
                          stem="tiny", num_classes=num_classes, connect=connect, aap=aap,
                          stem_stride=int(stem_stride), zero_init_residual=bool(zero_init_residual),
                          surrogate=surrogate)
    return Architecture(net, net.layer_names(), _TINY_PREPROCESSING, time_steps=TIME_STEPS)


def _imagenet(name: str, pretrained: bool, num_classes: int, connect: str, blocks, zero_init_residual: bool,
              surrogate: str, aap: bool):
    if pretrained:
        _no_weights(name)
    net = FullSpikeResNet(blocks, (64, 128, 256, 512), (1, 2, 2, 2), stem="imagenet",
                          num_classes=num_classes, connect=connect, aap=aap,
                          zero_init_residual=bool(zero_init_residual), surrogate=surrogate)
    return Architecture(net, net.layer_names(), Preprocessing(224), time_steps=TIME_STEPS)


@register_model("fsnn_tiny", family="snn")
def fsnn_tiny(pretrained: bool = False, num_classes: int = 10, connect: str = "IAND", width: int = 8,
              blocks=(2, 2, 2, 2), stem_stride: int = 2, zero_init_residual: bool = False,
              surrogate: str = "sigmoid") -> Architecture:
    """Full-spike SEW-ResNet for 32 px (IAND, 8 blocks, 8-64 channels): sn1, the blocks, avgpool."""
    return _tiny("fsnn_tiny", pretrained, num_classes, connect, width, blocks, stem_stride, zero_init_residual,
                 surrogate, aap=False)


@register_model("dsnn_tiny", family="snn")
def dsnn_tiny(pretrained: bool = False, num_classes: int = 10, connect: str = "IAND", width: int = 8,
              blocks=(2, 2, 2, 2), stem_stride: int = 2, zero_init_residual: bool = False,
              surrogate: str = "sigmoid") -> Architecture:
    """fsnn_tiny with its auxiliary accumulation pathway (AAP head): sn1, aap.0-7, acc_avgpool."""
    return _tiny("dsnn_tiny", pretrained, num_classes, connect, width, blocks, stem_stride, zero_init_residual,
                 surrogate, aap=True)


@register_model("fsnn18", family="snn")
def fsnn18(pretrained: bool = False, num_classes: int = 1000, connect: str = "IAND",
           zero_init_residual: bool = False, surrogate: str = "sigmoid") -> Architecture:
    """Full-spike SEW-ResNet-18 (IAND; Chen et al. 2023): sn1, max-pool, the 8 blocks, average pool."""
    return _imagenet("fsnn18", pretrained, num_classes, connect, (2, 2, 2, 2), zero_init_residual,
                     surrogate, aap=False)


@register_model("dsnn18", family="snn")
def dsnn18(pretrained: bool = False, num_classes: int = 1000, connect: str = "IAND",
           zero_init_residual: bool = False, surrogate: str = "sigmoid") -> Architecture:
    """fsnn18 with its auxiliary accumulation pathway (AAP head): sn1, max-pool, aap.0-7, acc_avgpool."""
    return _imagenet("dsnn18", pretrained, num_classes, connect, (2, 2, 2, 2), zero_init_residual,
                     surrogate, aap=True)


@register_model("fsnn34", family="snn")
def fsnn34(pretrained: bool = False, num_classes: int = 1000, connect: str = "IAND",
           zero_init_residual: bool = False, surrogate: str = "sigmoid") -> Architecture:
    """Full-spike SEW-ResNet-34 (IAND; Chen et al. 2023): sn1, max-pool, the 16 blocks, average pool."""
    return _imagenet("fsnn34", pretrained, num_classes, connect, (3, 4, 6, 3), zero_init_residual,
                     surrogate, aap=False)


@register_model("dsnn34", family="snn")
def dsnn34(pretrained: bool = False, num_classes: int = 1000, connect: str = "IAND",
           zero_init_residual: bool = False, surrogate: str = "sigmoid") -> Architecture:
    """fsnn34 with its auxiliary accumulation pathway (AAP head): sn1, max-pool, aap.0-15, acc_avgpool."""
    return _imagenet("dsnn34", pretrained, num_classes, connect, (3, 4, 6, 3), zero_init_residual,
                     surrogate, aap=True)
