"""Class-wise descriptors, k-means anchors, active selection and the anchor loss of MADA / MADAv2.

Descriptor of an image: for each class ``c`` the mean of the decoder features (D channels)
over the pixels labelled ``c`` (source: ground truth, or the pixels both labelled and predicted
``c`` as in the reference code, :func:`agreeing_labels`; target: the model's prediction), after
nearest-neighbour downsampling of the label map to the feature resolution; a ``(C, D)``
array with a ``(C,)`` mask of the classes present (at least ``min_pixels`` pixels). An absent
class has a zero row and is left out of every distance:

``d(x, a) = mean over classes c present in both x and a of mean_D (x_c - a_c)^2``

(the MSE over present classes; ``inf`` when no class is shared). The reference code fills
absent classes with zeros and takes the MSE over every class, which makes an image's distance
depend on which classes it lacks; the mask removes that.

Anchors: scikit-learn ``KMeans`` on the descriptors flattened to ``C * D``, each absent class
first filled with that class's mean over the images where it is present (so absence does not
pull an image towards zero); an anchor's class is present when one of its members has it.
With K equal to the number of images every image is its own anchor.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.methods.mada.metrics import IGNORE


def downsample_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of label maps (N, H, W) to ``size`` = (h, w)."""
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


class ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``scale`` (broadcast to the input).

    The reference code's ``normalisation_pooling`` (munanning/MADA, models/utils.py), applied there
    to each class's masked feature map before the pooling with scale ``2 x`` the class's pixel
    fraction; the pooling is linear, so scaling the descriptor's gradient is the same.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return tensor.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def agreeing_labels(labels: torch.Tensor, logits: torch.Tensor, *, ignore_index: int = IGNORE) -> torch.Tensor:
    """Labels (N, H, W) at the logits' resolution (N, C, h, w), ``ignore_index`` where the argmax disagrees.

    The reference's source descriptors (munanning/MADA, ``calculate_mean_vector``): the class mask
    is the ground truth times the prediction, so only correctly predicted pixels count.
    """
    labels = downsample_labels(labels, logits.shape[-2:])  # the identity at the logits' own size
    return torch.where(logits.argmax(1) == labels, labels, torch.full_like(labels, ignore_index))


def class_descriptors(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                      min_pixels: int = 1, ignore_index: int = IGNORE,
                      scale_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image class-mean features.

    Parameters
    ----------
    features : tensor (N, D, h, w)
        Decoder feature maps (gradients flow through).
    labels : tensor (N, H, W) of ints
        Class per pixel (ignore label ``ignore_index``); resized to (h, w) by nearest neighbour
        when its size differs.
    num_classes : int
    min_pixels : int
        A class counts as present with at least this many pixels (at the feature resolution).
    scale_gradient : bool
        Forward unchanged; the gradient of ``descriptors[n, c]`` is multiplied by 2 x the
        fraction of the h x w pixels that have class c (the reference's ``normalisation_pooling``).

    Returns
    -------
    descriptors : tensor (N, C, D)
        ``descriptors[n, c]`` = mean of ``features[n, :, y, x]`` over the pixels with label c;
        zero for an absent class.
    present : bool tensor (N, C)
    """
    n, d, h, w = features.shape
    if labels.shape[-2:] != (h, w):
        labels = downsample_labels(labels, (h, w))
    labels = labels.reshape(n, h * w)
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    onehot = F.one_hot(torch.where(valid, labels, 0), num_classes).to(features.dtype) * valid[..., None]
    counts = onehot.sum(1)                                                    # (N, C)
    sums = torch.einsum("npc,ndp->ncd", onehot, features.reshape(n, d, h * w))
    present = counts >= max(int(min_pixels), 1)
    descriptors = sums / counts.clamp(min=1)[..., None] * present[..., None]
    if scale_gradient:
        descriptors = ScaleGradient.apply(descriptors, (2.0 * counts / (h * w))[..., None])
    return descriptors, present


@dataclasses.dataclass
class Anchors:
    """K anchors: centres (K, C, D), their present classes (K, C), and the k-means assignment (N,)."""

    centers: np.ndarray
    present: np.ndarray
    assignment: np.ndarray

    def __len__(self) -> int:
        return len(self.centers)


def fill_absent(descriptors: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Descriptors (N, C, D) with each absent class replaced by that class's mean where present."""
    descriptors = np.asarray(descriptors, dtype=np.float64).copy()
    present = np.asarray(present, dtype=bool)
    for c in range(descriptors.shape[1]):
        if present[:, c].any():
            descriptors[~present[:, c], c] = descriptors[present[:, c], c].mean(0)
        else:
            descriptors[:, c] = 0.0
    return descriptors


def fit_anchors(descriptors, present, k: int, *, seed: int = 0) -> Anchors:
    """k-means anchors of descriptors (N, C, D) with masks (N, C); ``k`` is capped at N."""
    from sklearn.cluster import KMeans

    descriptors, present = np.asarray(descriptors), np.asarray(present, dtype=bool)
    n, c, d = descriptors.shape
    k = int(min(k, n))
    filled = fill_absent(descriptors, present)
    kmeans = KMeans(n_clusters=k, n_init=3, random_state=int(seed)).fit(filled.reshape(n, c * d))
    assignment = kmeans.labels_.astype(np.int64)
    anchor_present = np.zeros((k, c), bool)
    for j in range(k):
        anchor_present[j] = present[assignment == j].any(0)
    return Anchors(kmeans.cluster_centers_.reshape(k, c, d).astype(np.float32), anchor_present, assignment)


def masked_distances(descriptors, present, centers, center_present, *, chunk: int = 256) -> torch.Tensor:
    """``(N, K)`` MSE over the classes present in both each descriptor and each anchor (inf if none).

    Works on tensors (differentiable in ``descriptors``) or arrays; chunks over N.
    """
    x, m = torch.as_tensor(descriptors), torch.as_tensor(present, dtype=torch.bool)
    a = torch.as_tensor(centers, dtype=x.dtype, device=x.device)
    am = torch.as_tensor(center_present, dtype=torch.bool, device=x.device)
    out = []
    for start in range(0, len(x), chunk):
        xs, ms = x[start:start + chunk], m[start:start + chunk]
        both = (ms[:, None, :] & am[None]).to(x.dtype)                       # (n, K, C)
        sq = ((xs[:, None] - a[None]) ** 2).mean(-1)                          # (n, K, C)
        shared = both.sum(-1)
        dist = (sq * both).sum(-1) / shared.clamp(min=1)
        out.append(torch.where(shared > 0, dist, torch.full_like(dist, float("inf"))))
    return torch.cat(out) if out else torch.zeros(0, len(a))


def min_distance(descriptors, present, anchors: Anchors) -> np.ndarray:
    """``(N,)`` distance of each descriptor to its nearest anchor."""
    with torch.no_grad():
        return masked_distances(descriptors, present, anchors.centers, anchors.present).min(1).values.numpy()


def selection_scores(strategy: str, target_desc, target_present, *, source_anchors: Anchors | None = None,
                     target_anchors: Anchors | None = None, seed: int = 0) -> np.ndarray:
    """Score of each target image; the highest are selected.

    ``mada`` and ``centroid``: distance to the nearest source anchor (``centroid`` is meant to
    be called with K = 1 anchors); ``madav2``: that plus the distance to the nearest target
    anchor; ``random``: uniform scores from ``numpy.random.default_rng(seed)``.
    """
    n = len(target_desc)
    if strategy == "random":
        return np.random.default_rng([int(seed), 13]).random(n)
    if strategy in ("mada", "centroid"):
        return min_distance(target_desc, target_present, source_anchors)
    if strategy == "madav2":
        return (min_distance(target_desc, target_present, source_anchors)
                + min_distance(target_desc, target_present, target_anchors))
    raise ValidationError(f"selection strategy {strategy!r}; expected 'mada', 'madav2', 'random' or 'centroid'")


def budget_count(pool: int, budget: float) -> int:
    """Number of images a budget fraction of a pool of ``pool`` images buys (at least 1)."""
    return int(min(pool, max(1, round(float(budget) * pool))))


def select_top(scores: np.ndarray, budget: float) -> np.ndarray:
    """Indices (sorted) of the ``budget_count`` highest scores (ties: lower index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    k = budget_count(len(scores), budget)
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k])


def anchor_loss(descriptors: torch.Tensor, present: torch.Tensor, centers: torch.Tensor,
                center_present: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Mean over images of the harmonic mean over the K anchors of the masked MSE.

    ``K / sum_k 1 / (d_k + eps)`` per image (anchors sharing no class are left out); images with
    no present class do not count. Differentiable in ``descriptors``.
    """
    dist = masked_distances(descriptors, present, centers, center_present)   # (N, K)
    finite = torch.isfinite(dist)
    inv = torch.where(finite, 1.0 / (torch.where(finite, dist, 0.0) + eps), torch.zeros_like(dist))
    counts = finite.sum(1)
    keep = counts > 0
    if not keep.any():
        return descriptors.sum() * 0.0
    harmonic = counts[keep].to(dist.dtype) / inv[keep].sum(1)
    return harmonic.mean()


class AnchorBank:
    """Target anchors updated by EMA: the nearest anchor of each descriptor moves towards it.

    ``update``: for each descriptor (in order) its nearest anchor ``k`` becomes
    ``momentum * a_k + (1 - momentum) * x`` on the classes present in ``x`` (which become
    present in ``a_k``); the reference code's update, restricted to present classes.
    """

    def __init__(self, anchors: Anchors, momentum: float = 0.999):
        self.centers = torch.as_tensor(anchors.centers, dtype=torch.float32).clone()
        self.present = torch.as_tensor(anchors.present, dtype=torch.bool).clone()
        self.momentum = float(momentum)

    @torch.no_grad()
    def update(self, descriptors: torch.Tensor, present: torch.Tensor) -> None:
        x, m = descriptors.detach().float().cpu(), present.cpu()
        for i in range(len(x)):
            if not m[i].any():
                continue
            dist = masked_distances(x[i:i + 1], m[i:i + 1], self.centers, self.present)[0]
            k = int(torch.argmin(dist))
            rows = m[i]
            self.centers[k, rows] = self.momentum * self.centers[k, rows] + (1 - self.momentum) * x[i, rows]
            self.present[k] |= rows

    def state_dict(self) -> dict:
        return {"centers": self.centers.clone(), "present": self.present.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.centers, self.present = state["centers"].clone(), state["present"].clone()
