"""Segmentation metrics: confusion matrix with an ignore label, per-class IoU and mIoU.

``confusion[t, p]`` counts the pixels of true class ``t`` predicted as ``p``; pixels whose
label is the ignore label (255), or outside ``[0, C)``, are not counted. The IoU of class ``c``
is ``TP / (TP + FP + FN)`` = ``cm[c, c] / (row_c + col_c - cm[c, c])``; a class absent from both
the labels and the predictions has an undefined IoU (NaN) and is left out of the mean (the
Cityscapes convention of the reference code's ``runningScore``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError

#: The ignore label of every label map (the Cityscapes convention); the one definition.
IGNORE = 255


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = IGNORE) -> np.ndarray:
    """``(C, C)`` int64 counts of (true, predicted) classes over the valid pixels.

    Parameters
    ----------
    pred, target : array-like of ints, same shape (any, e.g. (N, H, W))
        Predicted and true class per pixel.
    """
    pred = torch.as_tensor(pred).reshape(-1).long()
    target = torch.as_tensor(target).reshape(-1).long()
    if pred.shape != target.shape:
        raise ValidationError(f"pred has {pred.numel()} pixels, target {target.numel()}; expected the same")
    valid = (target != ignore_index) & (target >= 0) & (target < num_classes)
    index = target[valid] * num_classes + pred[valid].clamp(0, num_classes - 1)
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes).numpy().astype(np.int64)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """``(C,)`` IoU of each class (NaN where the class is in neither labels nor predictions)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes whose IoU is defined."""
    iou = iou_per_class(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of valid pixels predicted correctly."""
    confusion = np.asarray(confusion)
    return float(np.trace(confusion) / max(confusion.sum(), 1))


def upsampled_argmax(logits: torch.Tensor, size) -> torch.Tensor:
    """Classes (N, H, W) of logits (N, C, h, w) upsampled bilinearly to ``size`` (H, W).

    The reference code evaluates this way (its output-stride logits upsampled to the 1024 x 2048
    labels, then the argmax), with ``align_corners=True`` as everywhere in its DeepLab-v3+; here
    ``align_corners=False``, the convention the network is trained with
    (:class:`~workbench.models.segmentation.Segmenter`), since mixing the two shifts the map by up
    to half a low-resolution cell. One image at a time, so a batch's full-size logits
    (19 x 1024 x 2048 float32: 160 MB an image) never exist at once.
    """
    size = (int(size[0]), int(size[1]))
    return torch.cat([F.interpolate(one[None].float(), size=size, mode="bilinear", align_corners=False).argmax(1)
                      for one in logits])
