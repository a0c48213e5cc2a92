"""The OpenImages challenge detection metric (AP at IoU 0.5 with hierarchy, image-level labels and group-of boxes).

The reference evaluates OpenImages with the challenge's own metric (linfeng93/Large-UniDet
``tools/eval_tools/oid/``: TensorFlow's ``OpenImagesChallengeEvaluator`` on ground truth expanded
by ``oid_hierarchical_labels_expansion.py``; read, not copied). Written here from that code:

1. *Hierarchical expansion* of the ground truth: a box of class ``c`` is also a box (same
   coordinates, same group-of flag) of every ancestor of ``c``; a positive image-level label
   also verifies the ancestors as present, a negative one the descendants as absent. With
   ``expand_detections`` a detection of ``c`` is also one of every ancestor (same box and
   score), as mmdetection's OpenImages evaluation does (``get_supercategory``).
2. *Verified classes only*: on an image, a class is evaluated when it has a (expanded)
   image-level label, positive or negative, or a ground-truth box; detections of other classes
   are dropped.
3. *Matching*, per image and class, detections by decreasing score: a detection whose best
   IoU with a non-group-of box is at least ``iou_threshold`` is a true positive if that box is
   still free, else it goes on to step 4; then a detection whose best intersection-over-its-own-
   area with a group-of box is at least the threshold is matched to that box. Each group-of box
   with a match counts once, as one true positive scored with its best match; its matched
   detections are ignored. Every other detection is a false positive.
4. *AP* per class: ground-truth instances are the non-group-of boxes plus one per group-of
   box; precision/recall over all images by decreasing score; the precision envelope integrated
   over recall (all points, Pascal VOC style). The mean is over classes with ground truth.
"""

from __future__ import annotations

import numpy as np


def expand_ground_truth(record: dict, ancestors: np.ndarray) -> dict:
    """One image's ground truth with every box and image-level label expanded through the hierarchy.

    Parameters
    ----------
    record : dict
        ``boxes`` (n, 4) xyxy, ``labels`` (n,) class indices, ``group_of`` (n,) bool,
        ``positive`` (k,) and ``negative`` (m,) verified image-level classes.
    ancestors : array (L, L) of bool
        ``[i, j]``: ``j`` is a proper ancestor of ``i``.

    Returns
    -------
    dict
        ``boxes``, ``labels``, ``group_of`` (expanded), ``verified`` (sorted class indices
        evaluated on the image).
    """
    boxes = np.asarray(record["boxes"], float).reshape(-1, 4)
    labels = np.asarray(record["labels"], int).reshape(-1)
    group_of = np.asarray(record.get("group_of", np.zeros(len(labels), bool)), bool).reshape(-1)
    keep = [(k, c) for k in range(len(labels)) for c in [labels[k], *np.flatnonzero(ancestors[labels[k]])]]
    rows = np.array([k for k, _ in keep], int)
    positive = set(np.asarray(record.get("positive", []), int).tolist())
    negative = set(np.asarray(record.get("negative", []), int).tolist())
    positive |= {int(a) for c in positive for a in np.flatnonzero(ancestors[c])}
    negative |= {int(d) for c in negative for d in np.flatnonzero(ancestors[:, c])}
    expanded_labels = np.array([c for _, c in keep], int)
    return {"boxes": boxes[rows].reshape(-1, 4), "labels": expanded_labels, "group_of": group_of[rows],
            "verified": np.array(sorted(positive | negative | set(expanded_labels.tolist())), int)}


def _overlaps(detections: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(iou, ioa)`` (D, G): intersection over union, and over the detection's own area."""
    lo = np.maximum(detections[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(detections[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    det_area = (detections[:, 2:] - detections[:, :2]).prod(-1)[:, None]
    box_area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter > 0, inter / (det_area + box_area - inter), 0.0)
        ioa = np.where(inter > 0, inter / det_area, 0.0)
    return iou, ioa


def match_detections(boxes: np.ndarray, scores: np.ndarray, gt_boxes: np.ndarray, gt_group_of: np.ndarray,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Scored true/false positives of one image's detections of one class (steps 3 of the module docstring).

    Parameters
    ----------
    boxes : array (D, 4)
        Detections, xyxy.
    scores : array (D,)
    gt_boxes : array (G, 4)
        Ground-truth boxes of the class on the image.
    gt_group_of : array (G,) of bool
    iou_threshold : float

    Returns
    -------
    scores, is_true_positive : arrays (E,)
        The detections that count (neither ignored in a group-of box) and one entry per
        group-of box with a match.
    """
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    boxes, scores = np.asarray(boxes, float).reshape(-1, 4)[order], np.asarray(scores, float)[order]
    gt_boxes = np.asarray(gt_boxes, float).reshape(-1, 4)
    gt_group_of = np.asarray(gt_group_of, bool).reshape(-1)
    single, group = gt_boxes[~gt_group_of], gt_boxes[gt_group_of]
    tp = np.zeros(len(boxes), bool)
    if len(single):
        iou = _overlaps(boxes, single)[0]
        taken = np.zeros(len(single), bool)
        for i, g in enumerate(iou.argmax(1)):
            if iou[i, g] >= iou_threshold and not taken[g]:
                tp[i] = taken[g] = True
    in_group = np.zeros(len(boxes), bool)
    group_scores = np.zeros(len(group))
    if len(group):
        ioa = _overlaps(boxes, group)[1]
        for i, g in enumerate(ioa.argmax(1)):
            if not tp[i] and ioa[i, g] >= iou_threshold:
                in_group[i] = True
                group_scores[g] = max(group_scores[g], scores[i])
    matched_groups = group_scores[group_scores > 0]
    return (np.concatenate([scores[~in_group], matched_groups]),
            np.concatenate([tp[~in_group], np.ones(len(matched_groups), bool)]))


def average_precision(scores: np.ndarray, is_true_positive: np.ndarray, num_ground_truth: float) -> float:
    """Pascal VOC all-point AP: the precision envelope integrated over recall (``num_ground_truth`` > 0)."""
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    hits = np.asarray(is_true_positive, float)[order]
    if not len(hits):
        return 0.0
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    precision = np.concatenate([[0.0], tp / (tp + fp), [0.0]])
    recall = np.concatenate([[0.0], tp / num_ground_truth, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def oid_challenge_map(gt: list[dict], detections: list[dict], ancestors: np.ndarray, *,
                      iou_threshold: float = 0.5, expand_detections: bool = True) -> dict:
    """The OpenImages challenge mAP of ``detections`` against ``gt`` (module docstring).

    Parameters
    ----------
    gt : list of dict
        Per image: ``image_id``, ``boxes`` (n, 4) xyxy, ``labels`` (n,), ``group_of`` (n,) bool,
        ``positive`` and ``negative`` (verified image-level classes).
    detections : list of dict
        Per image: ``image_id``, ``boxes`` (m, 4), ``scores`` (m,), ``labels`` (m,).
    ancestors : array (L, L) of bool
        ``[i, j]``: ``j`` is a proper ancestor of ``i`` (the dataset's own labels).
    iou_threshold : float
    expand_detections : bool
        Also count each detection for every ancestor of its class.

    Returns
    -------
    dict
        ``{"mAP": float (NaN without ground truth), "AP": {class: AP} (classes with ground truth)}``.
    """
    ancestors = np.asarray(ancestors, bool)
    found = {d["image_id"]: d for d in detections}
    num_gt = np.zeros(len(ancestors))
    scored: dict[int, list] = {}
    for record in gt:
        truth = expand_ground_truth(record, ancestors)
        np.add.at(num_gt, truth["labels"], 1)
        det = found.get(record["image_id"], {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0)})
        boxes = np.asarray(det["boxes"], float).reshape(-1, 4)
        labels = np.asarray(det["labels"], int).reshape(-1)
        scores = np.asarray(det["scores"], float).reshape(-1)
        of_class: dict[int, list[int]] = {}  # class -> its detections (expanded to ancestors)
        for k in range(len(labels)):
            for c in [labels[k], *(np.flatnonzero(ancestors[labels[k]]) if expand_detections else [])]:
                of_class.setdefault(int(c), []).append(k)
        for c in truth["verified"]:
            mine = of_class.get(int(c), [])
            own = truth["labels"] == c
            s, tp = match_detections(boxes[mine], scores[mine], truth["boxes"][own], truth["group_of"][own],
                                     iou_threshold)
            scored.setdefault(int(c), []).append((s, tp))
    ap = {}
    for c in np.flatnonzero(num_gt > 0):
        parts = scored.get(int(c), [])
        s = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
        tp = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
        ap[int(c)] = average_precision(s, tp, num_gt[c])
    return {"mAP": float(np.mean(list(ap.values()))) if ap else float("nan"), "AP": ap}
