"""The report's analyses: mAP table of the variants, RSA of class features vs the tree, example detections."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.metrics.rsa import spearman


def variant_dirs(run_dir: str | os.PathLike) -> dict[str, Path]:
    """``{variant: run directory}``: the main run and every snapshot (flat, only_<dataset>)."""
    from workbench.training import list_snapshots, read_card

    run_dir = Path(run_dir)
    out = {read_card(run_dir, verify_weights=False)["unidet"]["variant"]: run_dir}
    out.update({p.name: p for p in list_snapshots(run_dir)})
    return out


def map_table(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per variant: mAP (IoU .50:.95) and AP50 per dataset in its own labels, leaf mAP, mean."""
    from workbench.training import read_card

    rows = {}
    for name, variant in read_card(run_dir, verify_weights=False)["unidet"]["variants"].items():
        rows[name] = variant["evaluation"]
    frame = pd.DataFrame(rows).T
    order = [c for c in frame.columns if c.startswith("mAP_")] + [c for c in frame.columns if c.startswith("AP50_")] + \
            [c for c in frame.columns if c.startswith("leaf_")]
    return frame[order]


def leaf_features(run_dir: str | os.PathLike, *, max_images: int | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Mean classification-head feature per true leaf over the test images: ``(features (K, F), leaf names, counts)``.

    Only for data whose true leaf of every object is known (the synthetic datasets): a box
    labelled with a parent in dataset A still counts for its true leaf.
    """
    from workbench.methods.unidet.detector import class_features
    from workbench.methods.unidet.train import load_run

    _, data, detector, _, _ = load_run(run_dir)
    test = data.test
    n = len(test) if max_images is None else min(len(test), max_images)
    items = [test[i] for i in range(n)]
    images = [x for x, _ in items]
    boxes = [t["boxes"] for _, t in items]
    leaves = [t["leaf"] for _, t in items]
    if any((lf < 0).any() for lf in leaves):
        raise ValidationError("leaf_features needs the true leaf of every box (synthetic data)")
    from workbench.methods.unidet.data import LEAVES

    feats, counts = class_features(detector, images, boxes, leaves, len(LEAVES))
    return feats, list(LEAVES), counts


def tree_rsa(run_dir: str | os.PathLike, *, max_images: int | None = None) -> dict:
    """Spearman between the leaves' feature RDM (1 - Pearson r) and the label tree's path-length RDM.

    Returns ``{"rsa": float, "rdm": (K, K), "tree": (K, K), "leaves": names}``.
    """
    from workbench.methods.unidet.train import load_run

    feats, names, _ = leaf_features(run_dir, max_images=max_images)
    _, data, _, _, _ = load_run(run_dir)
    space = data.space
    idx = [space.index(n) for n in names]
    tree = space.tree_distance()[np.ix_(idx, idx)]
    rdm = 1.0 - np.corrcoef(feats)
    iu = np.triu_indices(len(names), 1)
    return {"rsa": spearman(rdm[iu], tree[iu]), "rdm": rdm, "tree": tree, "leaves": names}


def example_detections(run_dir: str | os.PathLike, count: int = 6, *, threshold: float = 0.3):
    """``(images, detections, space)``: the first ``count`` test images and their hierarchical detections."""
    from workbench.methods.unidet.detector import detect_hierarchical
    from workbench.methods.unidet.train import load_run

    _, data, detector, variant, _ = load_run(run_dir)
    space = data.space if variant != "flat" else data.space.flat()
    # spread the examples over the datasets
    per = max(1, count // len(data.test.sources))
    picks = [i for d in range(len(data.test.sources)) for i in np.flatnonzero(data.test.dataset_ids == d)[:per]]
    images = [data.test[int(i)][0] for i in picks]
    return images, detect_hierarchical(detector, images, space.parent, threshold=threshold), space
