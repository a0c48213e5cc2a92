"""COCO-style mAP through pycocotools: per dataset in its own label space, and leaf-level in the unified one.

A dataset whose annotations carry OpenImages' verified image-level labels (``load_openimages``
with ``image_labels``) is scored, as in the reference, with the OpenImages challenge metric
(:func:`.oid_metric.oid_challenge_map`: AP at IoU 0.5, the ground truth and the detections
expanded to their ancestors, only verified classes, group-of boxes): its ``mAP_<dataset>``;
pycocotools' number stays as ``coco_mAP_<dataset>``. The expansion follows the source's own
hierarchy (``bbox_labels_600_hierarchy.json``), as the reference's evaluator does, so the joint,
flat, per-dataset and fine-tuned detectors are scored alike (:func:`challenge_ancestors`).

- Per dataset ``d``: its test images, its own categories, its ground truth; the detector's
  detections of unified class ``u(l)`` count as detections of ``d``'s label ``l`` (a dataset
  label mapped to a parent is scored with the parent's scores, as in the reference's
  per-dataset evaluation).
- Leaf level: the unified leaves as categories; ground-truth boxes whose unified label is a
  leaf; boxes labelled with a non-leaf become crowd regions (``iscrowd = 1``), so a leaf
  detection on a box labelled only "vehicle" is neither a hit nor a false positive.

``mAP`` is pycocotools' AP averaged over IoU 0.50:0.95 (``stats[0]``), ``AP50`` at IoU 0.5;
a category without ground truth is left out of the mean (pycocotools' rule), and an evaluation
without any ground truth gives NaN.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from workbench.methods.unidet.labels import transitive_closure
from workbench.methods.unidet.oid_metric import oid_challenge_map


def coco_map(gt: list[dict], detections: list[dict], categories: list[str]) -> dict[str, float]:
    """AP (IoU .50:.95) and AP50 of ``detections`` against ``gt``.

    Parameters
    ----------
    gt : list of dict
        Per image: ``{"image_id": int, "boxes": (n, 4) xyxy, "labels": (n,) category index,
        "crowd": (n,) bool (optional), "size": (h, w)}``.
    detections : list of dict
        Per image: ``{"image_id", "boxes" (m, 4) xyxy, "scores" (m,), "labels" (m,)}``.
    categories : list of str
        Category names (index = label).

    Returns
    -------
    dict
        ``{"mAP": float, "AP50": float}`` (NaN when there is no ground truth).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations = [], []
    for record in gt:
        h, w = record.get("size", (64, 64))
        images.append({"id": int(record["image_id"]), "height": int(h), "width": int(w)})
        crowd = np.asarray(record.get("crowd", np.zeros(len(record["labels"]), bool)), bool)
        for box, label, is_crowd in zip(np.asarray(record["boxes"], float).reshape(-1, 4),
                                        np.asarray(record["labels"]).reshape(-1), crowd):
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": int(record["image_id"]),
                                "category_id": int(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": float((x2 - x1) * (y2 - y1)), "iscrowd": int(is_crowd)})
    if not any(a["iscrowd"] == 0 for a in annotations):
        return {"mAP": float("nan"), "AP50": float("nan")}
    results = []
    for record in detections:
        for box, score, label in zip(np.asarray(record["boxes"], float).reshape(-1, 4),
                                     np.asarray(record["scores"], float).reshape(-1),
                                     np.asarray(record["labels"]).reshape(-1)):
            x1, y1, x2, y2 = box
            results.append({"image_id": int(record["image_id"]), "category_id": int(label) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    if not results:
        return {"mAP": 0.0, "AP50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)]}
        truth.createIndex()
        found = truth.loadRes(results)
        ev = COCOeval(truth, found, "bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"mAP": float(max(ev.stats[0], 0.0)), "AP50": float(max(ev.stats[1], 0.0))}


def openimages_ground_truth(dataset, d: int, gt: list[dict]) -> list[dict] | None:
    """``gt`` (dataset ``d``'s test images, in order) with group-of flags and verified labels; None without image-level labels."""
    source = dataset.sources[d]
    if all(labels is None for labels in source.image_labels):
        return None
    rows = [j for k, j in dataset.index if k == d]
    none = np.zeros(0, np.int64)
    return [{**record, "group_of": source.group_of[j],
             "positive": (source.image_labels[j] or {}).get("positive", none),
             "negative": (source.image_labels[j] or {}).get("negative", none)} for record, j in zip(gt, rows)]


def challenge_ancestors(space, source, to_u: np.ndarray, unified: bool) -> np.ndarray:
    """Boolean (n, n) ancestors among ``source``'s n labels that the challenge metric expands through.

    The source's own hierarchy when it has one (OpenImages' ``bbox_labels_600_hierarchy.json``,
    :attr:`.data.DetectionSource.hierarchy`), whatever the evaluated detector, as the reference's
    evaluator; without it the evaluated space's tree restricted to the source's labels (``to_u``,
    their unified indices), and none for a per-dataset detector (``unified=False``).
    """
    n = len(to_u)
    if source.hierarchy:
        parents = np.zeros((n, n), dtype=bool)
        for child, parent in source.hierarchy:
            parents[child, parent] = True
        return transitive_closure(parents)
    return space.ancestors()[np.ix_(to_u, to_u)] if unified else np.zeros((n, n), dtype=bool)


@torch.no_grad()
def predict(detector, dataset, *, batch_size: int = 32) -> list[dict]:
    """The detector's per-class detections (torchvision post-processing) of every item of ``dataset``."""
    from workbench.methods.unidet.data import collate

    detector.eval()
    device = next(detector.parameters()).device
    out = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for images, targets in loader:
        for target, det in zip(targets, detector([image.to(device) for image in images])):
            out.append({"image_id": int(target["image_id"]), "boxes": det["boxes"].float().cpu().numpy(),
                        "scores": det["scores"].float().cpu().numpy(), "labels": det["labels"].cpu().numpy()})
    return out


def evaluate_detections(space, dataset, detections: list[dict], *, unified: bool = True) -> dict[str, float]:
    """Per-dataset mAP/AP50 in each dataset's own labels, and leaf-level mAP in the unified space.

    Parameters
    ----------
    space : LabelSpace
        The unified space the detector predicts (``unified=True``); its ``to_unified`` maps
        each dataset's labels.
    dataset : DetectionSet
        The test items (targets carry ``dataset``, ``local``, ``labels``).
    detections : list of dict
        :func:`predict`'s output, labels in the unified space (or, ``unified=False``, in
        the single dataset's own labels: a per-dataset detector).

    Returns
    -------
    dict
        ``mAP_<dataset>``, ``AP50_<dataset>``, ``leaf_mAP_<dataset>`` and ``leaf_mAP`` (all test
        images; only with ``unified``), ``mAP_mean`` (mean over datasets); for a dataset with
        image-level labels ``mAP_<dataset>`` is the OpenImages challenge metric and
        ``coco_mAP_<dataset>`` pycocotools' mAP.
    """
    by_image = {d["image_id"]: d for d in detections}
    targets = [dataset[i][1] for i in range(len(dataset))]
    names = [s.name for s in dataset.sources]
    leaves = space.leaves()
    leaf_index = {u: k for k, u in enumerate(np.flatnonzero(leaves))}
    out: dict[str, float] = {}
    leaf_gt_all, leaf_det_all = [], []
    for d, name in enumerate(names):
        local_labels = list(space.dataset_labels[name])
        to_u = np.asarray(space.to_unified[name]) if unified else np.arange(len(local_labels))
        back = {int(u): l for l, u in enumerate(to_u)}
        gt, det, leaf_gt, leaf_det = [], [], [], []
        for t in targets:
            if int(t["dataset"]) != d:
                continue
            i = int(t["image_id"])
            gt.append({"image_id": i, "boxes": t["boxes"].numpy(), "labels": t["local"].numpy()})
            found = by_image.get(i, {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)})
            keep = [k for k, u in enumerate(found["labels"]) if int(u) in back]
            det.append({"image_id": i, "boxes": found["boxes"][keep], "scores": found["scores"][keep],
                        "labels": np.array([back[int(found["labels"][k])] for k in keep], dtype=int)})
            if unified:
                u = t["labels"].numpy()
                is_leaf = leaves[u] if len(u) else np.zeros(0, bool)
                leaf_gt.append({"image_id": i, "boxes": t["boxes"].numpy(), "crowd": ~is_leaf,
                                "labels": np.array([leaf_index.get(int(x), 0) for x in u], dtype=int)})
                lk = [k for k, x in enumerate(found["labels"]) if leaves[int(x)]]
                leaf_det.append({"image_id": i, "boxes": found["boxes"][lk], "scores": found["scores"][lk],
                                 "labels": np.array([leaf_index[int(found["labels"][k])] for k in lk], dtype=int)})
        scores = coco_map(gt, det, local_labels)
        out[f"mAP_{name}"], out[f"AP50_{name}"] = scores["mAP"], scores["AP50"]
        oid_gt = openimages_ground_truth(dataset, d, gt)
        if oid_gt is not None:
            out[f"coco_mAP_{name}"] = scores["mAP"]
            out[f"mAP_{name}"] = oid_challenge_map(oid_gt, det, challenge_ancestors(space, dataset.sources[d],
                                                                                  to_u, unified))["mAP"]
        if unified:
            leaf_names = [space.names[u] for u in np.flatnonzero(leaves)]
            out[f"leaf_mAP_{name}"] = coco_map(leaf_gt, leaf_det, leaf_names)["mAP"]
            leaf_gt_all += leaf_gt
            leaf_det_all += leaf_det
    if unified:
        out["leaf_mAP"] = coco_map(leaf_gt_all, leaf_det_all, [space.names[u] for u in np.flatnonzero(leaves)])["mAP"]
    values = [out[f"mAP_{n}"] for n in names if np.isfinite(out[f"mAP_{n}"])]
    out["mAP_mean"] = float(np.mean(values)) if values else float("nan")
    return out
