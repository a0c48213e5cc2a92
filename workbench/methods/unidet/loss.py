"""The hierarchy-aware sigmoid binary cross-entropy of Large-UniDet, under two rules.

``rvc_child`` (:func:`hierarchy_targets`, the reference's ``pos_parents="rvc"``,
``ignore="child"``): for a sample (an anchor, a box) whose ground truth is the unified label ``y``:

- target 1 for ``y`` and every ancestor of ``y`` (a "car" is also a "vehicle");
- weight 0 for every descendant of ``y`` (a box labelled "vehicle" may be a "car": a
  prediction more specific than the label is never punished);
- merged categories (``bird`` and ``bird_super``, :mod:`~workbench.methods.unidet.labels`) are
  each the other's ancestor and neither is the other's descendant: each is a positive, weight 1,
  when the other is the label, as the reference's ``is_parents``/``is_childs``;
- target 0, weight 1 for every other class.

``oid_child_plus`` (:func:`oid_child_plus_targets`, the reference's configured
``pos_parents="oid"``, ``ignore="child+"`` of ``configs/rvc/``): the positives are ``y`` and its
ancestors in OpenImages' own hierarchy (``bbox_labels_600_hierarchy.json`` mapped into the
unified space: :attr:`LabelSpace.own_ancestors`; COCO's ``bird``, not an OpenImages label, has
none), and the weight of class ``j`` is ``1 - [j an ancestor of y] + [j an OpenImages ancestor
of y] - [j a descendant of y]`` (ancestors and descendants in the unified tree): the unified
tree's ancestors that are not OpenImages ancestors are ignored, the descendants too, and an
OpenImages ancestor outside the unified tree's ancestors gets weight 2, as the reference's sum.

Either way, optionally (``class_mask``), weight 0 for the classes the sample's dataset can never
assign. A background sample (label -1) has target 0 and weight 1 everywhere (up to ``class_mask``).
The per-class loss is ``BCE(sigmoid(logit), target)``, optionally multiplied by the focal
modulation ``|target - p| ** gamma`` (``gamma = 0``: plain BCE, the paper's loss; RetinaNet's
dense anchors may use ``gamma = 2``), summed over classes and samples and multiplied by
``loss_weight`` (1.5 in the reference's config); the caller normalises (the reference divides by
the number of sampled RoIs, RetinaNet by its foreground anchors).

The reference implementation (linfeng93/Large-UniDet ``mmdet/models/losses/hierarchy_loss.py``,
``HierarchyLoss``, read, not copied) builds these targets with ``(C+1) x (C+1)`` "is parent" /
"is child" matrices of ``label_spaces/hierarchy_rvc.json`` and ``hierarchy_oid.json`` including the
background column of its two-stage head, which RetinaNet does not have (README table).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: ``hierarchy_rule`` values: this package's default (the reference's rvc/child) and the reference's configured rule.
HIERARCHY_RULES = ("rvc_child", "oid_child_plus")


def hierarchy_targets(labels: torch.Tensor, ancestors: torch.Tensor, *,
                      ignore_descendants: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and weights (N, C) of labels (N,) (-1: background) under the tree ``ancestors``.

    Parameters
    ----------
    labels : torch.Tensor, long, shape (N,)
        Unified label of each sample, -1 for background.
    ancestors : torch.Tensor, bool, shape (C, C)
        ``[i, j]``: ``j`` is a proper ancestor of ``i`` (:meth:`LabelSpace.ancestors`; merged
        pairs are each the other's ancestor).
    ignore_descendants : bool
        Zero weight on the label's descendants (the classes that have it as an ancestor and
        are not its ancestors: :meth:`LabelSpace.descendants`); False: they are negatives.

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
        # descendants of y: classes j with y among the ancestors of j (column y of ``ancestors``),
        # less y's own ancestors (its merge partner)
        weights = weights - (anc.T * (1 - anc))[safe] * fg[:, None]
    return targets, weights


def oid_child_plus_targets(labels: torch.Tensor, ancestors: torch.Tensor,
                           oid_ancestors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and weights (N, C) of labels (N,) (-1: background) under the reference's configured rule.

    Parameters
    ----------
    labels : torch.Tensor, long, shape (N,)
        Unified label of each sample, -1 for background.
    ancestors : torch.Tensor, bool, shape (C, C)
        The unified tree (the reference's RVC ``is_parents``; :meth:`LabelSpace.ancestors`).
    oid_ancestors : torch.Tensor, bool, shape (C, C)
        ``[i, j]``: ``j`` is an ancestor of ``i`` in OpenImages' own hierarchy (the reference's
        OID ``is_parents``; :meth:`LabelSpace.own_ancestor_matrix`).

    Returns
    -------
    targets, weights : torch.Tensor, float, shape (N, C)
        Targets: the label and its OpenImages ancestors. Weights: ``1 - rvc_parent + oid_parent -
        rvc_child`` of the label's row (module docstring); 1 everywhere for background.
    """
    n, c = labels.shape[0], ancestors.shape[0]
    anc = ancestors.to(device=labels.device, dtype=torch.float32)
    oid = oid_ancestors.to(device=labels.device, dtype=torch.float32)
    fg = (labels >= 0).float()[:, None]
    safe = labels.clamp(min=0)
    targets = (F.one_hot(safe, c).float() + oid[safe]) * fg
    descendants = anc.T * (1 - anc)
    ignored = (anc - oid + descendants)[safe] * fg
    return targets, torch.ones(n, c, device=labels.device) - ignored


def hierarchy_bce(logits: torch.Tensor, labels: torch.Tensor, ancestors: torch.Tensor, *,
                  class_mask: torch.Tensor | None = None, ignore_descendants: bool = True,
                  gamma: float = 0.0, alpha: float = -1.0, oid_ancestors: torch.Tensor | None = None,
                  loss_weight: float = 1.0) -> torch.Tensor:
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
    oid_ancestors : torch.Tensor, bool, shape (C, C), optional
        OpenImages' own hierarchy: given, the ``oid_child_plus`` rule
        (:func:`oid_child_plus_targets`; ``ignore_descendants`` unused), else ``rvc_child``.
    loss_weight : float
        Factor on the sum (the reference's ``loss_weight``).

    Returns
    -------
    torch.Tensor
        Scalar: ``loss_weight`` x the sum over samples and classes (not normalised).
    """
    if oid_ancestors is not None:
        targets, weights = oid_child_plus_targets(labels, ancestors, oid_ancestors)
    else:
        targets, weights = hierarchy_targets(labels, ancestors, ignore_descendants=ignore_descendants)
    if class_mask is not None:
        weights = weights * class_mask.to(weights.device, torch.float32).expand_as(weights)
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    if gamma:
        p = torch.sigmoid(logits.float())
        loss = loss * (targets - p).abs().pow(gamma)
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss_weight * (loss * weights).sum()


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
