"""QSAM networks: shared convolutions with quantisation-aware batch norm (QABN) and a table-driven mixer.

QSAM (Ma et al. 2023, 'Picking Up Quantization Steps for Compressed Image Classification', arXiv 2304.10714) classifies JPEG-compressed images with a network whose
every batch norm has ``K`` branches, one per base JPEG quality of training, and whose branches
are mixed per image by weights that an MLP computes from the image file's quantisation tables.

- :class:`QABatchNorm2d`: ``K`` ``BatchNorm2d`` branches over the same channels. What it computes
  is set by the owning :class:`QSAMNet` for every forward (its ``route``):

  * *routed* (an int64 tensor (N,) of branch indices): sample ``i`` is normalised by branch
    ``route[i]``; in training mode each branch uses the batch statistics of the samples routed
    to it (and updates its own running statistics), as a plain ``BatchNorm2d`` would on that
    sub-batch;
  * *mixed* (a float tensor (N, K) of weights ``w``): ``y_i = sum_k w_ik BN_k(x_i)`` with every
    branch in inference form (its running statistics), whatever the module's training flag, so
    the branches' statistics never change in this mode.

- :class:`QACMixer`: the MLP (128 -> 128 -> 256 -> K, ReLU) on the flattened luma and chroma
  tables (natural 8 x 8 order, luma first, values divided by ``table_scale``: 255 by default,
  1 = the raw steps the reference feeds, the paper preset's), giving ``z``; the mixing
  weights are ``w = z / sum(z)`` (they sum to 1; the denominator is kept at least 1e-5 away from
  0, with its sign).
- :class:`QSAMNet`: a backbone whose ``BatchNorm2d`` layers are all replaced by QABN, plus the
  mixer. ``forward(x, tables=None, branches=None)``: ``branches`` routes; otherwise ``tables``
  (N, 128) are mixed; ``tables=None`` is the documented *uncompressed* path: every sample gets
  the table of ones (quantisation step 1, i.e. no quantisation; what a PNG reads as), which is
  also what the study layer's hooks see when a run directory is scored.

Registered: ``qsam_cnn`` (a compact CNN for 32 px inputs, the tiny preset) and
``qsam_resnet18`` (ResNet-18 with the CIFAR stem: 3 x 3 stride-1 first conv, no max-pool; the
paper's network). Both take ``branches`` (K, default 4); ``branches=1`` is a plain single-BN
network (the mixer is absent and every sample goes through the one branch), used for the
baselines; and ``table_scale`` (the mixer's input divisor, default :data:`TABLE_SCALE`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError
from workbench.models.preprocessing import Preprocessing
from workbench.models.registry import Architecture, register_model

#: Number of values the mixer reads: the 64 luma and 64 chroma quantisation steps.
TABLE_FEATURES = 128
#: Default divisor of the table values fed to the mixer (8-bit tables hold steps 1..255); the
#: reference code (LiMaPKU/QSAM, ``MetaMLP``) feeds the raw steps, i.e. a divisor of 1.
TABLE_SCALE = 255.0
#: Smallest magnitude of ``sum(z)`` in ``w = z / sum(z)``.
MIX_EPS = 1e-5

#: What an untrained QSAM network for 32 px inputs declares (a run's card replaces it).
QSAM_PREPROCESSING = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class QABatchNorm2d(nn.Module):
    """Quantisation-aware batch norm: ``branches`` BatchNorm2d over ``num_features`` channels.

    Parameters
    ----------
    num_features : int
        Channels C of the (N, C, H, W) input.
    branches : int
        K >= 1.
    eps, momentum : float
        As in ``nn.BatchNorm2d`` (every branch).

    Notes
    -----
    ``route`` is set by :class:`QSAMNet` before each forward and cleared after it; a forward
    without a route raises (a bare QABN has no default branch).
    """

    def __init__(self, num_features: int, branches: int = 4, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if branches < 1:
            raise ValidationError(f"QABatchNorm2d: branches must be >= 1, found {branches}")
        self.num_features = int(num_features)
        self.branches = int(branches)
        self.bns = nn.ModuleList(nn.BatchNorm2d(num_features, eps=eps, momentum=momentum) for _ in range(branches))
        self.route: torch.Tensor | None = None

    def inference_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-branch scale and shift of the inference form, each (K, C): ``BN_k(x) = x * a_k + b_k``."""
        scales, shifts = [], []
        for bn in self.bns:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            scales.append(scale)
            shifts.append(bn.bias - bn.running_mean * scale)
        return torch.stack(scales), torch.stack(shifts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = self.route
        if route is None:
            raise ValidationError("QABatchNorm2d called without a route; call it through QSAMNet.forward")
        if route.dtype in (torch.int64, torch.int32):
            if self.branches == 1:
                return self.bns[0](x)
            out = torch.empty_like(x)
            for k in torch.unique(route).tolist():
                mask = route == k
                out[mask] = self.bns[k](x[mask])
            return out
        scales, shifts = self.inference_affine()           # (K, C)
        a = route.to(scales.dtype) @ scales                # (N, C)
        b = route.to(shifts.dtype) @ shifts
        return x * a[:, :, None, None].to(x.dtype) + b[:, :, None, None].to(x.dtype)


class QACMixer(nn.Module):
    """MLP from the flattened quantisation tables (N, 128) to mixing weights (N, K) that sum to 1.

    ``table_scale``: the tables are divided by it before ``fc1`` (1: raw steps, as the reference).
    """

    def __init__(self, branches: int = 4, in_features: int = TABLE_FEATURES, table_scale: float = TABLE_SCALE):
        super().__init__()
        if not table_scale > 0:
            raise ValidationError(f"QACMixer: table_scale must be > 0, found {table_scale}")
        self.table_scale = float(table_scale)
        self.fc1 = nn.Linear(in_features, 128)
        self.fc2 = nn.Linear(128, 256)
        self.fc3 = nn.Linear(256, branches)

    def forward(self, tables: torch.Tensor) -> torch.Tensor:
        z = self.fc3(F.relu(self.fc2(F.relu(self.fc1(tables / self.table_scale)))))
        total = z.sum(dim=1, keepdim=True)
        sign = torch.where(total < 0, -1.0, 1.0).to(total.dtype)
        safe = torch.where(total.abs() < MIX_EPS, sign * MIX_EPS, total)
        return z / safe


def uncompressed_tables(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The table of ones (N, 128): quantisation step 1 everywhere, the uncompressed path."""
    return torch.ones(n, TABLE_FEATURES, device=device, dtype=dtype)


class QSAMNet(nn.Module):
    """A backbone with every BatchNorm2d replaced by :class:`QABatchNorm2d`, plus a :class:`QACMixer`.

    Parameters
    ----------
    backbone : nn.Module
        Image (N, 3, H, W) -> logits (N, classes); its BatchNorm2d layers are replaced in place.
    branches : int
        K; 1 makes a plain single-BN network (no mixer).
    table_scale : float
        The mixer's input divisor (:class:`QACMixer`).
    """

    def __init__(self, backbone: nn.Module, branches: int = 4, table_scale: float = TABLE_SCALE):
        super().__init__()
        self.branches = int(branches)
        _replace_bn(backbone, self.branches)
        self.backbone = backbone
        self.mixer = QACMixer(self.branches, table_scale=table_scale) if self.branches > 1 else None
        self._qabns = [m for m in backbone.modules() if isinstance(m, QABatchNorm2d)]

    def mixing_weights(self, tables: torch.Tensor) -> torch.Tensor:
        """Weights (N, K) of tables (N, 128) (all ones for K = 1)."""
        if self.mixer is None:
            return torch.ones(len(tables), 1, device=tables.device, dtype=tables.dtype)
        return self.mixer(tables)

    def forward(self, x: torch.Tensor, tables: torch.Tensor | None = None,
                branches: torch.Tensor | int | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, classes) of images (N, 3, H, W).

        Parameters
        ----------
        tables : tensor (N, 128), optional
            Quantisation tables of each image (luma then chroma, natural order); ``None``:
            the uncompressed path (tables of ones).
        branches : int or int64 tensor (N,), optional
            Route sample ``i`` through branch ``branches[i]`` (stage 1); overrides ``tables``.
        weights : tensor (N, K), optional
            Mixing weights to use as given (overrides ``tables``).
        """
        n = x.shape[0]
        if branches is not None:
            route = torch.full((n,), int(branches), dtype=torch.int64, device=x.device) \
                if isinstance(branches, int) else branches.to(x.device, torch.int64)
            if route.shape != (n,) or (n and (int(route.min()) < 0 or int(route.max()) >= self.branches)):
                raise ValidationError(f"branches must be (N,)={n} indices in [0, {self.branches}), "
                                      f"found shape {tuple(route.shape)}")
        else:
            if weights is None:
                if tables is None:
                    tables = uncompressed_tables(n, device=x.device)
                if tables.shape != (n, TABLE_FEATURES):
                    raise ValidationError(f"tables must have shape ({n}, {TABLE_FEATURES}), found {tuple(tables.shape)}")
                weights = self.mixing_weights(tables.to(x.device, torch.float32))
            route = weights
        for module in self._qabns:
            module.route = route
        try:
            return self.backbone(x)
        finally:
            for module in self._qabns:
                module.route = None


def _replace_bn(module: nn.Module, branches: int) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, QABatchNorm2d(child.num_features, branches, eps=child.eps,
                                                momentum=child.momentum if child.momentum is not None else 0.1))
        else:
            _replace_bn(child, branches)


class TinyCNN(nn.Module):
    """(N, 3, 32, 32) -> logits: a stride-2 3 x 3 stem and three conv-BN-ReLU stages, GAP, linear.

    Widths ``(c1, c2, c3, c4)``: stem ``c1`` at 16 px, ``c2`` at 16 px then max-pool, ``c3`` at
    8 px then max-pool, ``c4`` at 4 px.
    """

    def __init__(self, num_classes: int = 10, widths=(16, 32, 64, 128)):
        super().__init__()
        c1, c2, c3, c4 = (int(w) for w in widths)

        def stage(cin, cout, stride=1, pool=False):
            parts = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                     nn.ReLU(inplace=True)]
            return nn.Sequential(*parts, nn.MaxPool2d(2)) if pool else nn.Sequential(*parts)

        self.layer1 = stage(3, c1, stride=2)
        self.layer2 = stage(c1, c2, pool=True)
        self.layer3 = stage(c2, c3, pool=True)
        self.layer4 = stage(c3, c4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c4, num_classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _no_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        from workbench.errors import WeightsUnavailableError

        raise WeightsUnavailableError(f"{name} has no published weights; train it (`workbench train qsam`)")


@register_model("qsam_cnn", family="cnn")
def qsam_cnn(pretrained: bool = False, num_classes: int = 10, branches: int = 4,
             widths=(16, 32, 64, 128), table_scale: float = TABLE_SCALE) -> Architecture:
    """Compact CNN for 32 px inputs with K-branch quantisation-aware BN and a table mixer (QSAM, tiny preset)."""
    _no_weights("qsam_cnn", pretrained)
    if len(widths) != 4:
        raise ValidationError(f"qsam_cnn: widths must hold 4 channel counts, found {list(widths)}")
    net = QSAMNet(TinyCNN(num_classes, widths), branches, table_scale)
    layers = tuple(f"backbone.{n}" for n in ("layer1", "layer2", "layer3", "layer4", "avgpool"))
    return Architecture(net, layers, QSAM_PREPROCESSING)


@register_model("qsam_resnet18", family="cnn")
def qsam_resnet18(pretrained: bool = False, num_classes: int = 10, branches: int = 4,
                  table_scale: float = TABLE_SCALE) -> Architecture:
    """ResNet-18 with the CIFAR stem and K-branch quantisation-aware BN plus a table mixer (QSAM, paper preset)."""
    _no_weights("qsam_resnet18", pretrained)
    import torchvision.models as tvm

    backbone = tvm.resnet18(num_classes=num_classes)
    backbone.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    backbone.maxpool = nn.Identity()
    net = QSAMNet(backbone, branches, table_scale)
    layers = tuple(f"backbone.{n}" for n in ("relu", "layer1", "layer2", "layer3", "layer4", "avgpool"))
    return Architecture(net, layers, QSAM_PREPROCESSING)
