"""SAVC's network: a backbone, a projection head and a cosine classifier over virtual classes.

Song, Zhao, Shi, Peng, Yuan & Tian, *Learning with Fantasy: Semantic-Aware Virtual Contrastive
Constraint for Few-Shot Class-Incremental Learning*, CVPR 2023 (arXiv 2304.00426).

A *fantasy* is a fixed list of ``M`` image transformations ``T_0 = identity, T_1, ..., T_{M-1}``
(:data:`FANTASIES`). A sample ``(x, y)`` becomes ``M`` samples ``(T_m x, y * M + m)``: class
``y`` is split into ``M`` *virtual classes*. The classifier is cosine: the logit of virtual
class ``v`` is ``scale * cos(f(x), w_v)`` (``scale = 16`` in the paper), with ``f`` the
``d``-dimensional embedding (global-average-pooled backbone output).

``savc_net`` (registered in the model zoo, family ``cnn``) computes in ``forward`` the paper's
aggregated inference over the ``num_seen`` classes learnt so far::

    logit(c | x) = (1 / M) * sum_m logit_{c M + m}(T_m x)

Only the identity view passes through the modules' ``__call__`` (so forward hooks on the
declared layers see exactly one row per image, as the study's extraction expects); the other
views run through the same weights without firing hooks on the declared layers.

Backbones: ``"small"`` (four conv-BN-ReLU stages for 32 px inputs, like ``small_cnn``;
``"tiny"``: the same with a max-pool after the first stage too, 4x cheaper, for the CPU preset),
``"resnet20"`` (the CIFAR ResNet-20 of He et al. 2016: 3 stages of 3 basic blocks, 16/32/64
channels, d = 64, the paper's CIFAR-100 backbone; convolutions initialised as the reference's
``resnet20_cifar``: Kaiming normal, fan-out, ReLU gain) and ``"resnet18"`` (torchvision's
ResNet-18 without its classifier, d = 512, the paper's miniImageNet and CUB-200 backbone;
:func:`load_backbone_weights` loads ImageNet weights into it, as the reference does for CUB-200).
The projector is ``Linear(d, d) - ReLU - Linear(d, moco_dim)``; the reference's last layer has
no bias (``projector_bias=False``, the paper presets), the default keeps one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError
from workbench.models._blocks import BasicBlock
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model
from workbench.models.weights import fetched

#: Cosine-classifier scale of the paper (the reference code's ``-temperature 16``).
DEFAULT_SCALE = 16.0


# --- fantasies ---------------------------------------------------------------------------
def _rotations(ks: tuple[int, ...]) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    def views(x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.rot90(x, k, (2, 3)) if k else x for k in ks]

    return views


def _rot_color_perm12(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for k in range(4):
        r = torch.rot90(x, k, (2, 3)) if k else x
        out += [r, r[:, [1, 2, 0]], r[:, [2, 0, 1]]]
    return out


#: name -> (M, function image batch (N, C, H, W) -> list of M transformed batches, T_0 = identity).
#: ``rotation2``: rotations by {0, 180} degrees (CIFAR-100, CUB-200); ``rot0_90``: {0, 90}
#: (digits, where 180 degrees turns a 6 into a 9); ``rotation4``: {0, 90, 180, 270};
#: ``rot_color_perm12``: 4 rotations x 3 cyclic channel orders (RGB, GBR, BRG), rotation-major
#: (``m = 3 k + p``; miniImageNet); ``none``: M = 1 (the baselines).
FANTASIES: dict[str, tuple[int, Callable[[torch.Tensor], list[torch.Tensor]]]] = {
    "none": (1, lambda x: [x]),
    "rotation2": (2, _rotations((0, 2))),
    "rot0_90": (2, _rotations((0, 1))),
    "rotation4": (4, _rotations((0, 1, 2, 3))),
    "rot_color_perm12": (12, _rot_color_perm12),
}


def fantasy_size(name: str) -> int:
    """``M``, the number of transformations of fantasy ``name``."""
    if name not in FANTASIES:
        raise ValidationError(f"fantasy {name!r} is unknown; expected one of {sorted(FANTASIES)}")
    return FANTASIES[name][0]


def fantasy_views(images: torch.Tensor, name: str) -> list[torch.Tensor]:
    """The ``M`` transformed copies ``[T_0 x, ..., T_{M-1} x]`` of a batch (N, C, H, W)."""
    fantasy_size(name)
    return FANTASIES[name][1](images)


def apply_fantasy(images: torch.Tensor, name: str) -> torch.Tensor:
    """The batch (N, C, H, W) expanded to (N * M, C, H, W), sample-major.

    Row ``i * M + m`` is ``T_m x_i``, the order of :func:`virtual_labels` (and of the reference
    code's transforms).
    """
    views = fantasy_views(images, name)
    return torch.stack(views, 1).reshape(-1, *views[0].shape[1:])


def virtual_labels(labels: torch.Tensor, m: int) -> torch.Tensor:
    """Virtual labels of a batch expanded by :func:`apply_fantasy`: ``y_i * M + m``, shape (N * M,)."""
    offsets = torch.arange(m, device=labels.device)
    return (labels[:, None] * m + offsets[None, :]).reshape(-1)


def split_virtual(virtual: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`virtual_labels`: ``(class, transformation) = (v // M, v % M)``."""
    return torch.div(virtual, m, rounding_mode="floor"), virtual % m


def aggregate_logits(joint: torch.Tensor, m: int) -> torch.Tensor:
    """Class logits from virtual-class logits of a fantasy-expanded batch.

    Parameters
    ----------
    joint : torch.Tensor, shape (N * M, C * M)
        Row ``i * M + j``: logits of ``T_j x_i`` over the virtual classes ``c * M + k``.

    Returns
    -------
    torch.Tensor, shape (N, C)
        ``(1 / M) * sum_j joint[i * M + j, c * M + j]``.
    """
    n = joint.shape[0] // m
    c = joint.shape[1] // m
    per_view = joint.reshape(n, m, c, m)  # (sample, view j, class, virtual offset k)
    return torch.diagonal(per_view, dim1=1, dim2=3).mean(-1)


# --- modules ------------------------------------------------------------------------------
class CosineClassifier(nn.Module):
    """Logits ``scale * cos(f, w_v)`` of embeddings (N, d) over ``out_features`` rows (no bias)."""

    def __init__(self, in_features: int, out_features: int, scale: float = DEFAULT_SCALE):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.scale = float(scale)

    def forward(self, features: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        weight = self.weight if rows is None else self.weight[:rows]
        return self.scale * F.linear(F.normalize(features, dim=-1), F.normalize(weight, dim=-1))

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, scale={self.scale}"


def _stage(cin: int, cout: int, pool: bool) -> nn.Sequential:
    parts = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if pool:
        parts.append(nn.MaxPool2d(2))
    return nn.Sequential(*parts)


def build_backbone(kind: str, widths: tuple[int, ...] = ()) -> tuple[nn.Sequential, int, tuple[str, ...]]:
    """``(encoder, d, stage names)``: an ``nn.Sequential`` mapping (N, 3, H, W) to (N, d, 1, 1)."""
    if kind in ("small", "tiny"):
        w = tuple(widths) or (32, 64, 128, 128)
        if len(w) != 4:
            raise ValidationError(f"backbone {kind!r} takes 4 widths, found {w}")
        parts = OrderedDict([("layer1", _stage(3, w[0], kind == "tiny")), ("layer2", _stage(w[0], w[1], True)),
                             ("layer3", _stage(w[1], w[2], True)), ("layer4", _stage(w[2], w[3], False)),
                             ("avgpool", nn.AdaptiveAvgPool2d(1))])
        return nn.Sequential(parts), w[3], ("layer1", "layer2", "layer3", "layer4")
    if kind == "resnet20":
        w = tuple(widths) or (16, 32, 64)
        stages, cin = OrderedDict(), w[0]
        stages["conv1"] = nn.Conv2d(3, w[0], 3, padding=1, bias=False)
        stages["bn1"] = nn.BatchNorm2d(w[0])
        stages["relu"] = nn.ReLU(inplace=True)
        for i, (width, stride) in enumerate(zip(w, (1, 2, 2)), 1):
            blocks = [BasicBlock(cin if j == 0 else width, width, stride if j == 0 else 1) for j in range(3)]
            stages[f"layer{i}"] = nn.Sequential(*blocks)
            cin = width
        stages["avgpool"] = nn.AdaptiveAvgPool2d(1)
        encoder = nn.Sequential(stages)
        for module in encoder.modules():   # the reference's resnet20_cifar initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        return encoder, w[-1], ("layer1", "layer2", "layer3")
    if kind == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        parts = OrderedDict((name, getattr(net, name)) for name in
                            ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"))
        return nn.Sequential(parts), 512, ("layer1", "layer2", "layer3", "layer4")
    raise ValidationError(f"backbone {kind!r} is unknown; expected 'small', 'tiny', 'resnet20' or 'resnet18'")


def load_backbone_weights(net: SAVCNet, weights: str) -> None:
    """Load pretrained ResNet-18 weights into ``net.encoder`` (every weight but the classifier's).

    Parameters
    ----------
    net : SAVCNet
        With backbone ``resnet18`` (its encoder's names are torchvision's).
    weights : str
        ``"imagenet"`` (torchvision's ``IMAGENET1K_V1``, fetched into torch's hub cache on first
        use, as the reference's ``resnet18(pretrained=True)`` for CUB-200) or the path of a
        torchvision ResNet-18 state dict.
    """
    if not hasattr(net.encoder, "layer4") or net.dim != 512:
        raise ValidationError("backbone_weights needs the 'resnet18' backbone")
    state = {k: v for k, v in imagenet_resnet18_state(weights).items() if not k.startswith("fc.")}
    net.encoder.load_state_dict(state, strict=True)


def imagenet_resnet18_state(weights: str) -> dict[str, torch.Tensor]:
    """A torchvision ResNet-18 state dict: ``"imagenet"`` (``IMAGENET1K_V1``) or a file's."""
    if weights == "imagenet":
        from torchvision.models import ResNet18_Weights

        return fetched(ResNet18_Weights.IMAGENET1K_V1).get_state_dict(progress=False)
    from pathlib import Path

    path = Path(weights)
    if not path.is_file():
        raise ValidationError(f"backbone_weights {weights!r} is neither 'imagenet' nor an existing file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"conv1.weight", "layer4.1.bn2.running_var"} - set(state)
    if missing:
        raise ValidationError(f"backbone_weights {str(path)!r} is not a torchvision ResNet-18 state dict "
                              f"(no {sorted(missing)})")
    return state


class SAVCNet(nn.Module):
    """Backbone + embedding + projector + cosine classifier over ``num_classes * M`` virtual classes.

    Parameters
    ----------
    num_classes : int
        All classes of the protocol (base and novel); the classifier has ``num_classes * M`` rows.
    fantasy : str
        A key of :data:`FANTASIES` (``M`` = its size).
    backbone : {"small", "tiny", "resnet20", "resnet18"}
    widths : tuple of int, optional
        Channel widths of the backbone's stages (default: the backbone's own).
    moco_dim : int
        Output size of the projector ``d -> d -> moco_dim`` (ReLU between).
    scale : float
        Cosine-classifier scale.
    projector_bias : bool
        Whether the projector's last layer has a bias (the reference's has none).

    Attributes
    ----------
    num_seen : torch.Tensor (long scalar buffer)
        Classes learnt so far: ``forward`` scores classes ``0 .. num_seen - 1``.
    """

    def __init__(self, num_classes: int = 10, fantasy: str = "rotation2", backbone: str = "small",
                 widths: tuple[int, ...] = (), moco_dim: int = 32, scale: float = DEFAULT_SCALE,
                 projector_bias: bool = True):
        super().__init__()
        self.fantasy = fantasy
        self.m = fantasy_size(fantasy)
        self.num_classes = int(num_classes)
        self.encoder, self.dim, self.stages = build_backbone(backbone, tuple(widths))
        self.embedding = nn.Flatten(1)
        self.projector = nn.Sequential(nn.Linear(self.dim, self.dim), nn.ReLU(inplace=True),
                                       nn.Linear(self.dim, moco_dim, bias=bool(projector_bias)))
        self.fc = CosineClassifier(self.dim, self.num_classes * self.m, scale)
        self.register_buffer("num_seen", torch.tensor(self.num_classes, dtype=torch.long))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (N, d) of images (N, 3, H, W) (hooks on the declared layers fire)."""
        return self.embedding(self.encoder(images))

    def quiet_features(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`features` without calling the encoder's stages through ``__call__``.

        Forward hooks registered on the stages and on ``embedding`` do not fire (hooks on
        modules inside a stage still do).
        """
        x = images
        for stage in self.encoder.children():
            x = stage.forward(x)
        return x.flatten(1)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Unit-norm projections (N, moco_dim) of embeddings (N, d)."""
        return F.normalize(self.projector(features), dim=-1)

    def joint_logits(self, features: torch.Tensor, classes: int | None = None) -> torch.Tensor:
        """Virtual-class logits (N, classes * M) of embeddings (N, d); all rows for ``None``."""
        return self.fc(features, None if classes is None else classes * self.m)

    def forward(self, images: torch.Tensor, base_classes: int | None = None, projections=()):
        """Aggregated class logits (N, num_seen) of images (N, 3, H, W).

        With ``base_classes``, a training step's outputs from one call (so that
        DistributedDataParallel, which syncs the gradients of ``forward`` only, sees them all):
        the virtual-class logits (N, base_classes * M) of ``images`` (already transformed), then
        the unit-norm projections of each image batch in ``projections``, in order.
        """
        if base_classes is not None:
            logits = self.joint_logits(self.features(images), base_classes)
            return (logits, *(self.project(self.features(batch)) for batch in projections))
        views = fantasy_views(images, self.fantasy)
        seen = int(self.num_seen)
        feats = [self.features(views[0])] + [self.quiet_features(v) for v in views[1:]]
        logits = [self.fc(f, seen * self.m)[:, j::self.m] for j, f in enumerate(feats)]
        return torch.stack(logits, 0).mean(0)


@register_model("savc_net", family="cnn")
def savc_net(pretrained: bool = False, num_classes: int = 10, fantasy: str = "rotation2",
             backbone: str = "small", widths: tuple = (), moco_dim: int = 32,
             scale: float = DEFAULT_SCALE, projector_bias: bool = True) -> Architecture:
    """SAVC network: backbone + cosine classifier over virtual classes (train with `workbench train savc`)."""
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError("savc_net has no published weights; train it (`workbench train savc`)")
    net = SAVCNet(num_classes, fantasy=fantasy, backbone=backbone, widths=tuple(widths), moco_dim=moco_dim,
                  scale=scale, projector_bias=projector_bias)
    size = 224 if backbone == "resnet18" else 32
    preprocessing = Preprocessing(input_size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    layers = tuple(f"encoder.{s}" for s in net.stages) + ("embedding",)
    return Architecture(net, layers, preprocessing)
