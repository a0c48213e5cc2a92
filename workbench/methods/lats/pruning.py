"""Soft-threshold reparameterisation of conv and linear weights (LATS, Chen et al. ICLR 2023).

Every pruned weight tensor is stored as a free parameter ``theta`` and used through

    w = sign(theta) * max(|theta| - d_t, 0)

with one global threshold ``d_t`` shared by every pruned layer. The reparameterisation is
registered with :mod:`torch.nn.utils.parametrize`, so module names stay those of the zoo
architecture (``layer2.0.conv1`` is still ``layer2.0.conv1``; its ``.weight`` is the effective,
pruned weight) and forward hooks, layer lists and the analysis see the plain network.

Gradient to ``theta``
---------------------
The reference code (Yanqi-Chen/LATS, ``utils/conv_type.py``) composes ``sign(theta)`` with a
ReLU whose backward pass is the identity, so that ``dw/dtheta = sign(theta)^2 = 1`` for every
``theta != 0``, pruned entries included. We do the same: the gradient reaching ``theta`` is the
gradient with respect to the effective weight ``w``, everywhere (straight-through), and 0 only
where ``theta == 0`` exactly. Where ``|theta| > d_t`` this is the true derivative; where
``|theta| <= d_t`` it is not (the true derivative is 0), and that is the point: a pruned weight
keeps accumulating gradient in ``theta`` and comes back when ``|theta|`` outgrows ``d_t``,
which makes the iteration an implicit ISTA / dual-averaging solver of an L1-regularised
problem whose coefficient is ``(d_{t+1} - d_t) / lr_t`` (section 3 of the paper). With the
exact ReLU gradient a pruned weight could never revive under an increasing threshold.

The one-shot magnitude-pruning baseline uses a second parametrisation, :class:`FixedMask`
(``w = theta * mask``; pruned entries get no gradient and stay 0).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.errors import ValidationError

#: Module types whose ``weight`` can be pruned (spikingjelly's layer.Conv2d / layer.Linear
#: subclass these, so spiking networks are covered).
PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class _PassThroughReLU(torch.autograd.Function):
    """``relu(x)`` forward, identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def soft_threshold(theta: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """``sign(theta) * max(|theta| - threshold, 0)`` with the straight-through gradient.

    Parameters
    ----------
    theta : torch.Tensor
        Any shape.
    threshold : torch.Tensor or float
        Scalar, >= 0 (same units as ``theta``).

    Returns
    -------
    torch.Tensor
        Same shape as ``theta``. Its gradient with respect to ``theta`` is the incoming
        gradient wherever ``theta != 0`` (see the module docstring).
    """
    return torch.sign(theta) * _PassThroughReLU.apply(theta.abs() - threshold)


class SoftThreshold(nn.Module):
    """Parametrisation ``w = soft_threshold(theta, d)``; ``d`` is the 0-d buffer ``threshold``.

    The buffer is saved in the state dict (checkpoints resume with it) and set for every
    layer at once by :func:`set_threshold`.
    """

    def __init__(self, threshold: float = 0.0):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return soft_threshold(theta, self.threshold.to(theta.dtype))


class FixedMask(nn.Module):
    """Parametrisation ``w = theta * mask`` with a fixed boolean ``mask`` buffer (same shape)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool).clone())

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta * self.mask.to(theta.dtype)


# ----------------------------------------------------------------------------- layer selection
def weight_layers(module: nn.Module) -> list[str]:
    """Names of the conv and linear modules that own a ``weight``, in registration order."""
    return [name for name, m in module.named_modules()
            if isinstance(m, PRUNABLE_TYPES) and not _inside_parametrization(name)]


def _inside_parametrization(name: str) -> bool:
    return ".parametrizations." in f".{name}."


def prunable_layers(module: nn.Module, *, prune_first_last: bool = False) -> list[str]:
    """The layers LATS prunes: every conv and linear layer, minus the first and last by default.

    "First" and "last" are the first and last conv/linear modules in registration order
    (``named_modules``): the stem convolution and the classifier for the zoo's networks. The
    reference code prunes every layer, ``conv1``, the downsampling convs and ``fc`` included
    (all its convs are ``STRConv``; ``--first-layer-dense`` and ``--last-layer-dense`` are off
    in its configs): ``prune_first_last=True`` does the same. Keeping them dense (the default,
    as STR and most pruning work do) caps the sparsity: 8.07 % of ResNet-50's weights.

    Parameters
    ----------
    module : nn.Module
        The plain (unwrapped) network.
    prune_first_last : bool, default: False
        Prune the first and last layers too.

    Returns
    -------
    list of str
        Dotted module names.
    """
    names = weight_layers(module)
    if not names:
        raise ValidationError(f"{type(module).__name__} has no conv or linear layer to prune "
                              f"(looked for {', '.join(t.__name__ for t in PRUNABLE_TYPES)})")
    if prune_first_last or len(names) <= 2:
        return names
    return names[1:-1]


def _resolve_layers(module: nn.Module, layers, prune_first_last: bool) -> list[str]:
    if layers is None:
        return prunable_layers(module, prune_first_last=prune_first_last)
    layers = list(layers)
    valid = weight_layers(module)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValidationError(f"layers {unknown} are not conv/linear layers of "
                              f"{type(module).__name__}; expected some of {valid}")
    return layers


# ----------------------------------------------------------------------------- soft threshold
def apply_soft_threshold(module: nn.Module, layers=None, *, prune_first_last: bool = False,
                         threshold: float = 0.0) -> list[str]:
    """Reparameterise the weights of ``layers`` as soft-thresholded ``theta`` (in place).

    ``theta`` starts equal to the current weight, so with ``threshold = 0`` the network
    computes exactly what it computed before.

    Parameters
    ----------
    module : nn.Module
        The plain network (not a DDP wrapper).
    layers : list of str, optional
        Dotted names of conv/linear modules; default :func:`prunable_layers`.
    prune_first_last : bool, default: False
        Used when ``layers`` is None.
    threshold : float, default: 0.0
        Initial global threshold.

    Returns
    -------
    list of str
        The reparameterised layers.
    """
    names = _resolve_layers(module, layers, prune_first_last)
    for name in names:
        sub = module.get_submodule(name)
        if parametrize.is_parametrized(sub, "weight"):
            raise ValidationError(f"layer {name!r} is already parametrised "
                                  f"({[type(p).__name__ for p in sub.parametrizations.weight]})")
        parametrize.register_parametrization(sub, "weight", SoftThreshold(threshold))
    return names


def _parametrizations(module: nn.Module, kind: type):
    for name, sub in module.named_modules():
        if parametrize.is_parametrized(sub, "weight"):
            for p in sub.parametrizations.weight:
                if isinstance(p, kind):
                    yield name, sub, p


def soft_threshold_layers(module: nn.Module) -> list[str]:
    """Names of the layers carrying a :class:`SoftThreshold` parametrisation."""
    return [name for name, _, _ in _parametrizations(module, SoftThreshold)]


@torch.no_grad()
def set_threshold(module: nn.Module, value: float) -> None:
    """Set the global threshold ``d_t`` of every soft-thresholded layer of ``module``."""
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"threshold must be a finite number >= 0, got {value}")
    found = False
    for _, _, p in _parametrizations(module, SoftThreshold):
        p.threshold.fill_(float(value))
        found = True
    if not found:
        raise ValidationError(f"{type(module).__name__} has no soft-thresholded layer; "
                              "call apply_soft_threshold first")


def get_threshold(module: nn.Module) -> float:
    """The global threshold (the same in every soft-thresholded layer)."""
    values = {float(p.threshold) for _, _, p in _parametrizations(module, SoftThreshold)}
    if not values:
        raise ValidationError(f"{type(module).__name__} has no soft-thresholded layer")
    if len(values) > 1:
        raise ValidationError(f"soft-thresholded layers disagree on the threshold: {sorted(values)}")
    return values.pop()


# ----------------------------------------------------------------------------- fixed masks
@torch.no_grad()
def magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Global magnitude pruning: zero the ``round(sparsity * N)`` smallest ``|w|`` over all tensors.

    Parameters
    ----------
    weights : dict of str to torch.Tensor
        Layer name -> weight tensor (any shapes); N is their total number of entries.
    sparsity : float
        Fraction in [0, 1).

    Returns
    -------
    dict of str to torch.Tensor
        Layer name -> boolean mask of the weight's shape, True where the weight is kept.
        Exactly ``round(sparsity * N)`` entries are False (ties broken by position).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValidationError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = torch.cat([w.detach().abs().flatten().float().cpu() for w in weights.values()])
    n_prune = int(round(sparsity * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n_prune:
        order = torch.argsort(flat, stable=True)
        keep[order[:n_prune]] = False
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = keep[start:start + w.numel()].view(w.shape).to(w.device)
        start += w.numel()
    return masks


@torch.no_grad()
def apply_magnitude_mask(module: nn.Module, sparsity: float, layers=None, *,
                         prune_first_last: bool = False) -> list[str]:
    """One-shot global magnitude pruning of ``layers`` to ``sparsity`` with a fixed mask.

    The weights below the global magnitude cut are zeroed and stay zero during fine-tuning
    (:class:`FixedMask`; their gradient is 0). The mask is chosen on the current effective
    weights, so calling this on a soft-thresholded network is not supported.

    Returns
    -------
    list of str
        The masked layers.
    """
    names = _resolve_layers(module, layers, prune_first_last)
    if soft_threshold_layers(module):
        raise ValidationError("apply_magnitude_mask got a soft-thresholded network; "
                              "export its effective weights first")
    weights = {name: module.get_submodule(name).weight for name in names}
    masks = magnitude_masks(weights, sparsity)
    for name in names:
        sub = module.get_submodule(name)
        sub.weight.mul_(masks[name].to(sub.weight.dtype))
        parametrize.register_parametrization(sub, "weight", FixedMask(masks[name]))
    return names


# ----------------------------------------------------------------------------- export
@torch.no_grad()
def export_effective_state_dict(module: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The state dict of the un-parametrised architecture, holding the effective weights.

    Every ``<layer>.parametrizations.weight.original`` becomes ``<layer>.weight`` (the pruned
    weight the layer computes with) and the parametrisations' buffers (thresholds, masks) are
    dropped, so the result loads with ``load_state_dict(strict=True)`` into a fresh, plain
    instance of the zoo architecture. Keys keep the order of the plain architecture's state
    dict. Tensors are detached clones.
    """
    parametrised = {name: sub for name, sub in module.named_modules()
                    if parametrize.is_parametrized(sub)}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()

    def emit_effective(owner: str) -> None:
        # a parametrised tensor goes first among its module's entries (``weight`` before ``bias``,
        # as a plain conv/linear layer registers them)
        sub = parametrised[owner]
        prefix = f"{owner}." if owner else ""
        for tensor_name in sub.parametrizations.keys():
            out.setdefault(f"{prefix}{tensor_name}", getattr(sub, tensor_name).detach().clone())

    for key, value in module.state_dict(keep_vars=False).items():
        owner, _, local = key.rpartition(".")
        if owner in parametrised and "." not in local:
            emit_effective(owner)                      # e.g. "fc.bias"
        owner, marker, _ = key.partition(".parametrizations.")
        if not marker and key.startswith("parametrizations."):
            owner, marker = "", "parametrizations."
        if marker and owner in parametrised:
            emit_effective(owner)
            continue  # "original" and the parametrisations' buffers (threshold, mask)
        out[key] = value.detach().clone()
    return out


def remove_pruning(module: nn.Module) -> nn.Module:
    """Remove every parametrisation in place, keeping the effective weights as plain parameters."""
    for _, sub in list(module.named_modules()):
        if parametrize.is_parametrized(sub):
            for tensor_name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, tensor_name, leave_parametrized=True)
    return module


# ----------------------------------------------------------------------------- sparsity
@dataclasses.dataclass(frozen=True)
class LayerSparsity:
    """Zeros in one layer's effective weight."""

    zeros: int
    numel: int
    pruned: bool  #: whether the layer is soft-thresholded or masked (else kept dense)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-layer and overall weight sparsity of a network's conv and linear layers.

    ``overall`` counts every conv/linear weight, the dense first and last layers included
    (as the reference code reports it); ``pruned_overall`` counts the pruned layers only.
    Biases and normalisation parameters are not counted.
    """

    layers: dict[str, LayerSparsity]

    @property
    def zeros(self) -> int:
        return sum(layer.zeros for layer in self.layers.values())

    @property
    def numel(self) -> int:
        return sum(layer.numel for layer in self.layers.values())

    @property
    def overall(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0

    @property
    def pruned_overall(self) -> float:
        pruned = [layer for layer in self.layers.values() if layer.pruned]
        numel = sum(layer.numel for layer in pruned)
        return sum(layer.zeros for layer in pruned) / numel if numel else 0.0

    def to_dict(self) -> dict:
        """JSON-ready: ``{"overall", "pruned_overall", "zeros", "numel", "layers": {name: {...}}}``."""
        return {"overall": self.overall, "pruned_overall": self.pruned_overall,
                "zeros": self.zeros, "numel": self.numel,
                "layers": {name: {"sparsity": layer.sparsity, "zeros": layer.zeros,
                                  "numel": layer.numel, "pruned": layer.pruned}
                           for name, layer in self.layers.items()}}


@torch.no_grad()
def sparsity_report(module: nn.Module) -> SparsityReport:
    """Count the exact zeros of every conv/linear layer's effective weight.

    Works on a parametrised network (a layer is ``pruned`` when it carries a
    :class:`SoftThreshold` or :class:`FixedMask`) and on a plain one (then ``pruned`` is True
    for a layer with at least one zero weight).
    """
    layers = {}
    for name in weight_layers(module):
        sub = module.get_submodule(name)
        weight = sub.weight
        zeros = int((weight == 0).sum())
        if parametrize.is_parametrized(sub, "weight"):
            pruned = any(isinstance(p, (SoftThreshold, FixedMask)) for p in sub.parametrizations.weight)
        else:
            pruned = zeros > 0
        layers[name] = LayerSparsity(zeros=zeros, numel=weight.numel(), pruned=pruned)
    return SparsityReport(layers)
