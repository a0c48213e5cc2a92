"""MADA: multi-anchor active domain adaptation for semantic segmentation (Ning et al. 2021), and MADAv2.

A segmentation network trained on a labelled source domain is adapted to a target domain by
labelling a small budget of target images, those farthest from every k-means *anchor* of the
source descriptors (MADAv2: plus the distance to target anchors); stage 1 trains on source and
the selected images, stage 2 adds pseudo-labels and an anchor loss with EMA target anchors.
See README.md in this folder and :mod:`.train`.
"""

from pathlib import Path

from workbench.methods import MethodSpec, register_method
from workbench.methods.mada.anchors import (
    AnchorBank,
    Anchors,
    anchor_loss,
    class_descriptors,
    fit_anchors,
    masked_distances,
    select_top,
    selection_scores,
)
from workbench.methods.mada.metrics import confusion_matrix, iou_per_class, mean_iou
from workbench.methods.mada.train import MADAConfig, evaluate, train

register_method(MethodSpec(
    name="mada",
    paper=("Ning, Lu, Dong, Tian, Zhang, Wang & Wang 2021, 'Multi-Anchor Active Domain Adaptation for Semantic "
           "Segmentation' (MADA), ICCV, arXiv 2108.08012; journal version MADAv2, arXiv 2301.07354"),
    summary="active domain adaptation for segmentation: label the target images farthest from k-means anchors",
    config_cls=MADAConfig,
    train=train,
    evaluate=evaluate,
    presets_dir=Path(__file__).parent / "presets",
    notebook="methods/mada.ipynb",
))

__all__ = ["AnchorBank", "Anchors", "MADAConfig", "anchor_loss", "class_descriptors", "confusion_matrix",
           "evaluate", "fit_anchors", "iou_per_class", "masked_distances", "mean_iou", "select_top",
           "selection_scores", "train"]
