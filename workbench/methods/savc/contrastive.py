"""SAVC's contrastive part: multi-crop views, a momentum key encoder with a labelled queue, the loss.

- :func:`random_resized_crops`: a batch of random resized crops (area fraction in
  ``scale``, aspect ratio log-uniform in [3/4, 4/3], horizontal flip with probability 1/2),
  drawn from torch's global RNG and sampled bilinearly with ``grid_sample`` (one affine
  grid per image).
- :class:`MomentumQueue`: the key encoder (a copy of the encoder, embedding and projector,
  updated as ``k <- mu k + (1 - mu) q``) and a first-in first-out queue of ``K`` unit-norm
  keys with their (virtual) labels; slots not yet written have label -1 and random keys, as in
  the reference code.
- :func:`sup_contrastive_loss`: for query ``i`` with similarities ``s`` (divided by the
  temperature) to its own key and the queue, positives ``P_i`` (its own key and every queued
  key with its label)::

      L = mean_i 1/|P_i| sum_{p in P_i} log(1 + exp(-s_p) * sum_{n not in P_i} exp(s_n))

  computed as ``softplus(logsumexp_{n not in P_i} s_n - s_p)``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError


def random_resized_crops(images: torch.Tensor, size: int, scale: tuple[float, float],
                         ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """One random resized crop of each image: (N, C, H, W) -> (N, C, size, size).

    The crop covers a fraction ``a ~ U(scale)`` of the image area with aspect ratio ``r``
    (``log r ~ U(log ratio)``), side fractions ``w = min(1, sqrt(a r))`` and
    ``h = min(1, sqrt(a / r))``, at a uniform position inside the image; mirrored left-right
    with probability 1/2 when ``flip``. Random numbers: five ``torch.rand`` draws of N values.
    """
    n = images.shape[0]
    device, dtype = images.device, images.dtype
    area = torch.empty(n).uniform_(*scale)
    log_r = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n) * 2 - 1) * (1 - w)
    cy = (torch.rand(n) * 2 - 1) * (1 - h)
    sign = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(device, dtype), [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


#: How a small crop finds its positive key (:func:`small_crop_keys`).
SMALL_PAIRINGS = ("transformation", "reference")


def small_crop_keys(n: int, crops: int, m: int, pairing: str) -> torch.Tensor:
    """Row of the key batch (N * M rows, image-major: row ``i M + t``) that each small crop pairs with.

    The small crops are ordered ``(image i, crop c, transformation t)``: row ``(i S + c) M + t``
    of N * S * M. ``"transformation"``: the key of the same image and transformation,
    ``i M + t``. ``"reference"``: what the reference code computes (``q_small.view(b, -1, d)``
    against the keys, ``targets_global.repeat_interleave(S)``): row ``r`` pairs with key row
    ``r // S`` = ``i M + (c M + t) // S``, the same image but, for most crops, another
    transformation's key and virtual label (50 % of the crops keep their own at M = 2, S = 4;
    12.5 % at M = 12). Returns an int64 tensor (N * S * M,).
    """
    if pairing not in SMALL_PAIRINGS:
        raise ValidationError(f"small-crop pairing {pairing!r} is unknown; expected one of {list(SMALL_PAIRINGS)}")
    rows = torch.arange(n * crops * m)
    if pairing == "reference":
        return rows // crops
    image, t = rows // (crops * m), rows % m
    return image * m + t


def sup_contrastive_loss(logits: torch.Tensor, positives: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Supervised contrastive loss of the reference code (``SupContrastive``), stably.

    Parameters
    ----------
    logits : torch.Tensor, shape (Q, 1 + K)
        Similarities divided by the temperature: column 0 the query's own key, then the queue.
    positives : torch.Tensor of bool, shape (Q, 1 + K)
        Which columns are positives (column 0 always is).
    reduction : {"mean", "none"}

    Returns
    -------
    torch.Tensor
        Scalar mean over queries, or the (Q,) per-query losses.
    """
    logits = logits.float()
    positives = positives.bool()
    neg = torch.logsumexp(logits.masked_fill(positives, float("-inf")), dim=1, keepdim=True)  # (Q, 1)
    per_pair = F.softplus(neg - logits).masked_fill(~positives, 0.0)
    loss = per_pair.sum(1) / positives.sum(1)
    return loss.mean() if reduction == "mean" else loss


class MomentumQueue(nn.Module):
    """Momentum key encoder and labelled key queue (MoCo with labels).

    Parameters
    ----------
    net : SAVCNet
        The query network; its ``encoder``, ``embedding`` and ``projector`` are copied.
    size : int
        Queue length ``K``.
    dim : int
        Key size (the projector's output).
    momentum : float
        ``mu`` of the key update.
    """

    def __init__(self, net, size: int, dim: int, momentum: float):
        super().__init__()
        self.momentum = float(momentum)
        self.key_net = nn.ModuleDict({name: copy.deepcopy(getattr(net, name))
                                      for name in ("encoder", "embedding", "projector")})
        for p in self.key_net.parameters():
            p.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, net) -> None:
        """``k <- mu k + (1 - mu) q`` for every parameter; buffers (BN statistics) copied."""
        for name, module in self.key_net.items():
            source = getattr(net, name)
            for pk, pq in zip(module.parameters(), source.parameters()):
                pk.mul_(self.momentum).add_(pq.detach(), alpha=1 - self.momentum)
            for bk, bq in zip(module.buffers(), source.buffers()):
                bk.copy_(bq)

    @torch.no_grad()
    def keys(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm keys (N, dim) of images (N, 3, H, W) from the key encoder."""
        f = self.key_net["embedding"](self.key_net["encoder"](images))
        return F.normalize(self.key_net["projector"](f), dim=-1)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Write keys (B, dim) and labels (B,) at the pointer, wrapping around the end."""
        size = self.queue.shape[0]
        b = keys.shape[0]
        if b > size:
            keys, labels, b = keys[-size:], labels[-size:], size
        ptr = int(self.ptr)
        slots = (torch.arange(b, device=self.queue.device) + ptr) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.labels[slots] = labels.to(self.labels.device)
        self.ptr.fill_((ptr + b) % size)

    def logits(self, queries: torch.Tensor, own_keys: torch.Tensor, labels: torch.Tensor,
               temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (Q, 1 + K), positives (Q, 1 + K))`` of unit-norm queries against their keys and the queue.

        ``own_keys[i]`` is query ``i``'s positive key; queued keys with label ``labels[i]``
        are positives too (label -1 never is).
        """
        queue = self.queue.clone().detach()
        pos = (queries * own_keys).sum(1, keepdim=True)
        logits = torch.cat([pos, queries @ queue.T], 1) / temperature
        same = (labels[:, None] == self.labels[None, :]) & (labels[:, None] >= 0)
        positives = torch.cat([torch.ones_like(pos, dtype=torch.bool), same], 1)
        return logits, positives

    def snapshot(self) -> dict[str, Any]:
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
