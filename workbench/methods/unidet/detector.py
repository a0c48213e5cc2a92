"""The detector: torchvision's RetinaNet on a small backbone, its classification loss hierarchy-aware.

:func:`build_detector` wraps the zoo backbone ``unidet_backbone`` (:mod:`workbench.models.detection`)
with torchvision's feature pyramid and RetinaNet (anchors, box coder, matcher, regression loss,
post-processing all torchvision's). Only the classification head's ``compute_loss`` is
replaced: :class:`HierarchyClassificationHead` applies :func:`~.loss.hierarchy_bce` to every
valid anchor (foreground anchors carry the unified label of their matched box, background
anchors -1; anchors between the IoU thresholds are dropped as in torchvision), normalised by
the number of foreground anchors per image, as torchvision's focal loss is. A target dict may
carry ``"dataset"`` (an int): with ``ignore_unassignable`` the classes that dataset cannot
assign get zero weight.

Inference: ``detector(images)`` in eval mode gives torchvision's per-class detections (used
for mAP); :func:`detect_hierarchical` reports, per box, the most specific label above a
threshold with its ancestors.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetClassificationHead, RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork, batched_nms, box_iou, nms

from workbench.methods.unidet.loss import hierarchy_bce, most_specific


class FPNBackbone(nn.Module):
    """Zoo backbone + torchvision FPN: images -> OrderedDict of ``out_channels`` maps (strides 8, 16, 32)."""

    def __init__(self, body: nn.Module, out_channels: int):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.pyramid_channels, out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(self.body.pyramid(x))


class HierarchyClassificationHead(RetinaNetClassificationHead):
    """RetinaNet's classification head with :func:`~.loss.hierarchy_bce` as its loss.

    Parameters
    ----------
    ancestors : array (C, C) of bool
        The tree (all False: flat).
    class_masks : array (D, C) of bool, optional
        Row ``d``: classes dataset ``d`` can assign (used when ``ignore_unassignable``).
    ignore_descendants, ignore_unassignable : bool
    gamma, alpha : float
        Focal modulation (0, -1: plain BCE).
    oid_ancestors : array (C, C) of bool, optional
        OpenImages' own hierarchy: given, the ``oid_child_plus`` rule of :func:`~.loss.hierarchy_bce`.
    loss_weight : float
        Factor on the classification loss (the reference's 1.5).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, ancestors, class_masks=None, *,
                 ignore_descendants: bool = True, ignore_unassignable: bool = False, gamma: float = 0.0,
                 alpha: float = -1.0, oid_ancestors=None, loss_weight: float = 1.0,
                 prior_probability: float = 0.01, norm_layer=None):
        super().__init__(in_channels, num_anchors, num_classes, prior_probability=prior_probability,
                         norm_layer=norm_layer)
        self.register_buffer("ancestors", torch.as_tensor(np.asarray(ancestors, dtype=bool)), persistent=False)
        masks = np.ones((1, num_classes), dtype=bool) if class_masks is None else np.asarray(class_masks, dtype=bool)
        self.register_buffer("class_masks", torch.as_tensor(masks), persistent=False)
        oid = None if oid_ancestors is None else torch.as_tensor(np.asarray(oid_ancestors, dtype=bool))
        self.register_buffer("oid_ancestors", oid, persistent=False)
        self.loss_weight = loss_weight
        self.ignore_descendants = ignore_descendants
        self.ignore_unassignable = ignore_unassignable
        self.gamma = gamma
        self.alpha = alpha

    def compute_loss(self, targets, head_outputs, matched_idxs):
        losses = []
        for target, logits, matched in zip(targets, head_outputs["cls_logits"], matched_idxs):
            valid = matched != self.BETWEEN_THRESHOLDS
            fg = matched >= 0
            labels = torch.full_like(matched, -1)
            labels[fg] = target["labels"][matched[fg]]
            mask = None
            if self.ignore_unassignable and "dataset" in target:
                mask = self.class_masks[int(target["dataset"])]
            loss = hierarchy_bce(logits[valid], labels[valid], self.ancestors, class_mask=mask,
                                 ignore_descendants=self.ignore_descendants, gamma=self.gamma, alpha=self.alpha,
                                 oid_ancestors=self.oid_ancestors, loss_weight=self.loss_weight)
            losses.append(loss / max(1, int(fg.sum())))
        return sum(losses) / max(1, len(targets))


def build_detector(body: nn.Module, num_classes: int, ancestors, class_masks=None, *, image_size: int = 64,
                   fpn_channels: int = 32, anchor_sizes: tuple[int, ...] = (16, 32, 64),
                   aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0), ignore_descendants: bool = True,
                   ignore_unassignable: bool = False, gamma: float = 0.0, alpha: float = -1.0,
                   oid_ancestors=None, loss_weight: float = 1.0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                   score_thresh: float = 0.05,
                   detections_per_img: int = 50) -> RetinaNet:
    """torchvision RetinaNet over ``num_classes`` unified classes on the zoo backbone ``body``.

    Images are given in [0, 1] at ``image_size`` px (the transform normalises with ``mean``,
    ``std`` and does not resize them). One anchor size per pyramid level (strides 8, 16, 32).
    """
    backbone = FPNBackbone(body, fpn_channels)
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes))
    num_anchors = anchors.num_anchors_per_location()[0]
    # GroupNorm in the heads' towers (torchvision's RetinaNet v2 heads): with few channels, the
    # plain towers' N(0, 0.01) initialisation shrinks the features to ~1e-3 and the head barely learns
    norm = partial(nn.GroupNorm, min(8, fpn_channels))
    head = RetinaNetHead(fpn_channels, num_anchors, num_classes, norm_layer=norm)
    head.classification_head = HierarchyClassificationHead(
        fpn_channels, num_anchors, num_classes, ancestors, class_masks, ignore_descendants=ignore_descendants,
        ignore_unassignable=ignore_unassignable, gamma=gamma, alpha=alpha, oid_ancestors=oid_ancestors,
        loss_weight=loss_weight, norm_layer=norm)
    return RetinaNet(backbone, num_classes, min_size=image_size, max_size=image_size, image_mean=list(mean),
                     image_std=list(std), anchor_generator=anchors, head=head, score_thresh=score_thresh,
                     detections_per_img=detections_per_img, topk_candidates=200)


@torch.no_grad()
def dense_outputs(detector: RetinaNet, images: list[torch.Tensor]):
    """Per image: anchors (A, 4), decoded boxes (A, 4), sigmoid scores (A, C) and head features (A, F).

    The head feature of an anchor is the classification tower's output (before ``cls_logits``)
    at the anchor's location and pyramid level. Boxes are in the input images' pixels.
    """
    detector.eval()
    captured = []
    hook = detector.head.classification_head.conv.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        image_list, _ = detector.transform(images)
        features = list(detector.backbone(image_list.tensors).values())
        head = detector.head(features)
        anchors = detector.anchor_generator(image_list, features)
    finally:
        hook.remove()
    a = detector.anchor_generator.num_anchors_per_location()[0]
    per_level = []
    for fmap in captured:  # (N, F, H, W) -> (N, H*W*A, F): torchvision's anchor order (y, x, anchor)
        n, f, h, w = fmap.shape
        per_level.append(fmap.permute(0, 2, 3, 1).reshape(n, h * w, 1, f).expand(n, h * w, a, f).reshape(n, -1, f))
    feats = torch.cat(per_level, 1)
    out = []
    for i, anchors_i in enumerate(anchors):
        boxes = detector.box_coder.decode_single(head["bbox_regression"][i], anchors_i)
        boxes = boxes.clamp(min=0, max=float(image_list.image_sizes[i][0]))
        out.append((anchors_i, boxes, torch.sigmoid(head["cls_logits"][i]), feats[i]))
    return out


@torch.no_grad()
def detect_hierarchical(detector: RetinaNet, images: list[torch.Tensor], parent: tuple[int, ...], *,
                        threshold: float = 0.3, iou: float = 0.5, max_boxes: int = 20) -> list[list[dict]]:
    """Boxes with the most specific label above ``threshold`` and its ancestors.

    Anchors whose best score is above ``threshold`` are decoded, suppressed class-agnostically
    (NMS at ``iou``), and each kept box gets ``labels = [most specific, parent, ...]``
    (:func:`~.loss.most_specific`) and their scores.

    Returns
    -------
    list (per image) of list of dict
        ``{"box": [x1, y1, x2, y2], "labels": [int, ...], "scores": [float, ...]}``.
    """
    results = []
    for _, boxes, scores, _ in dense_outputs(detector, images):
        best = scores.max(1).values
        keep = (best > threshold).nonzero().flatten()
        keep = keep[nms(boxes[keep], best[keep], iou)][:max_boxes]
        found = []
        for k in keep.tolist():
            chain = most_specific(scores[k].numpy(), parent, threshold)
            found.append({"box": [round(float(v), 2) for v in boxes[k]], "labels": chain,
                          "scores": [round(float(scores[k, c]), 4) for c in chain]})
        results.append(found)
    return results


@torch.no_grad()
def class_features(detector: RetinaNet, images: list[torch.Tensor], boxes: list[torch.Tensor],
                   classes: list[torch.Tensor], num_classes: int, *, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mean head feature per class (K, F) over the anchors matched (IoU >= ``iou``) to ground-truth boxes.

    ``classes`` gives, per image, an integer class (0 .. K-1) per box (e.g. its true leaf).
    Returns the means (rows of classes never matched are NaN) and the counts (K,).
    """
    sums, counts = None, np.zeros(num_classes)
    for (anchors, _, _, feats), gt, cls in zip(dense_outputs(detector, images), boxes, classes):
        if sums is None:
            sums = np.zeros((num_classes, feats.shape[1]))
        if len(gt) == 0:
            continue
        overlap = box_iou(gt.float(), anchors)  # (G, A)
        for g in range(len(gt)):
            idx = (overlap[g] >= iou).nonzero().flatten()
            if idx.numel() == 0:
                idx = overlap[g].argmax().view(1)
            sums[int(cls[g])] += feats[idx].mean(0).numpy()
            counts[int(cls[g])] += 1
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None], counts


__all__ = ["FPNBackbone", "HierarchyClassificationHead", "batched_nms", "build_detector", "class_features",
           "dense_outputs", "detect_hierarchical"]
