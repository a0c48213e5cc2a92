"""The hierarchy-aware sigmoid binary cross-entropy of Large-UniDet (the reference's "child" case).

For a sample (an anchor, a box) whose ground truth is the unified label ``y``:

- target 1 for ``y`` and every ancestor of ``y`` (a "car" is also a "vehicle");
- weight 0 for every descendant of ``y`` (a box labelled "vehicle" may be a "car": a
  prediction more specific than the label is never punished);
- target 0, weight 1 for every other class;
- optionally (``class_mask``), weight 0 for the classes the sample's dataset can never assign.

A background sample (label -1) has target 0 and weight 1 everywhere (up to ``class_mask``).
The per-class loss is ``BCE(sigmoid(logit), target)``, optionally multiplied by the focal
modulation ``|target - p| ** gamma`` (``gamma = 0``: plain BCE, the paper's loss; RetinaNet's
dense anchors may use ``gamma = 2``), and summed over classes and samples; the caller
normalises (the reference divides by the number of sampled RoIs, RetinaNet by its foreground
anchors).

The reference implementation (linfeng93/Large-UniDet ``mmdet/models/losses/hierarchy_loss.py``,
read, not copied) builds these targets with a ``(C+1) x (C+1)`` "is parent" matrix including
the background column of its two-stage head when configured with ``pos_parents="rvc"``,
``ignore="child"``. Its training config uses ``pos_parents="oid"`` (parents from OpenImages' own
tree), ``ignore="child+"`` (also ignoring the parents that exist only in the unified RVC tree) and
a loss weight of 1.5; the README's table measures the difference
(``tests/methods/test_unidet_reference.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def hierarchy_targets(labels: torch.Tensor, ancestors: torch.Tensor, *,
                      ignore_descendants: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and weights (N, C) of labels (N,) (-1: background) under the tree ``ancestors``.

    Parameters
    ----------
    labels : torch.Tensor, long, shape (N,)
        Unified label of each sample, -1 for background.
    ancestors : torch.Tensor, bool, shape (C, C)
        ``[i, j]``: ``j`` is a proper ancestor of ``i`` (:meth:`LabelSpace.ancestors`).
    ignore_descendants : bool
        Zero weight on the label's descendants; False: they are negatives.

    Returns
    -------
    targets, weights : torch.Tensor, float, shape (N, C)
    """
    n, c = labels.shape[0], ancestors.shape[0]
    anc = ancestors.to(device=labels.device, dtype=torch.float32)
    fg = labels >= 0
    safe = labels.clamp(min=0)
    onehot = F.one_hot(safe, c).float() * fg[:, None]
    targets = (onehot + anc[safe] * fg[:, None]).clamp(max=1.0)
    weights = torch.ones(n, c, device=labels.device)
    if ignore_descendants:
        # descendants of y: classes j with y among the ancestors of j, i.e. column y of ``ancestors``
        weights = weights - anc.T[safe] * fg[:, None]
    return targets, weights


def hierarchy_bce(logits: torch.Tensor, labels: torch.Tensor, ancestors: torch.Tensor, *,
                  class_mask: torch.Tensor | None = None, ignore_descendants: bool = True,
                  gamma: float = 0.0, alpha: float = -1.0) -> torch.Tensor:
    """Summed hierarchy-aware sigmoid BCE of logits (N, C) for labels (N,) (-1: background).

    Parameters
    ----------
    logits : torch.Tensor, shape (N, C)
    labels : torch.Tensor, long, shape (N,)
    ancestors : torch.Tensor, bool, shape (C, C)
        The tree; an all-False matrix (a flat label set) gives plain sigmoid BCE with one-hot targets.
    class_mask : torch.Tensor, bool, shape (N, C) or (C,), optional
        Classes each sample's dataset can assign; the others get weight 0.
    ignore_descendants : bool
        Zero weight on the label's descendants (see the module docstring).
    gamma : float
        Focal modulation exponent (0: plain BCE).
    alpha : float
        Focal class balance (``alpha`` on positives, ``1 - alpha`` on negatives); < 0: none.

    Returns
    -------
    torch.Tensor
        Scalar: the sum over samples and classes (not normalised).
    """
    targets, weights = hierarchy_targets(labels, ancestors, ignore_descendants=ignore_descendants)
    if class_mask is not None:
        weights = weights * class_mask.to(weights.device, torch.float32).expand_as(weights)
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    if gamma:
        p = torch.sigmoid(logits.float())
        loss = loss * (targets - p).abs().pow(gamma)
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return (loss * weights).sum()


def most_specific(scores: np.ndarray, parent: tuple[int, ...], threshold: float) -> list[int]:
    """The most specific label whose score is above ``threshold``, then its ancestors.

    Parameters
    ----------
    scores : array (C,)
        Sigmoid scores of one box.
    parent : tuple of int
        Parent index of each label (-1: root).
    threshold : float

    Returns
    -------
    list of int
        ``[label, parent, grandparent, ...]``: the deepest label above the threshold (the
        higher score among equally deep ones); empty when none is above.
    """
    scores = np.asarray(scores, dtype=float)
    depth = np.zeros(len(parent), dtype=int)
    for i in range(len(parent)):
        j = parent[i]
        while j >= 0:
            depth[i] += 1
            j = parent[j]
    above = np.flatnonzero(scores > threshold)
    if above.size == 0:
        return []
    best = max(above, key=lambda i: (depth[i], scores[i]))
    out = []
    while best >= 0:
        out.append(int(best))
        best = parent[best]
    return out
