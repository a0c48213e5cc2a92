"""MADA's stage-2 pseudo-labels and its mIoU as the reference code (munanning/MADA) computes them.

From a reading of the reference: ``train_active_stage2.py`` iterates over the whole Cityscapes
train loader (selected images too) and ``CustomModel.step_active_stage2``
(models/adaptation_model.py) takes ``loss_CTS = cross_entropy2d(target_output, argmax(target_output))``
on the output-stride logits of the same forward pass, no threshold (mean over pixels);
``validate`` upsamples the output-stride logits bilinearly to the 1024 x 2048 labels before the
argmax (``align_corners=True``, its network's convention; here the Segmenter's, ``False``), and
``runningScore`` accumulates a confusion matrix. The expected values below are computed with numpy loops
(float64); tolerance 1e-5 for the losses (float32 network), exact for the confusion matrices.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from workbench.errors import ValidationError
from workbench.methods import get_method
from workbench.methods.mada.train import (
    AdaptationState,
    MADAConfig,
    confusion_of,
    miou_eval,
    pseudo_label_pool,
    stage2_step,
)
from workbench.models.segmentation import seg_cnn
from workbench.training import resolve_config

CLASSES = 3


def tiny_network(classes: int = CLASSES, seed: int = 0, weight_std: float = 0.0) -> torch.nn.Module:
    """A seeded ``seg_cnn`` in eval mode; ``weight_std`` > 0 redraws every parameter from N(0, std^2)
    (the initial network's logits are nearly flat: std 0.5 gives logits of std ~1)."""
    torch.manual_seed(seed)
    module = seg_cnn(num_classes=classes, widths=(4, 4, 8), feature_dim=4).module.eval()
    if weight_std:
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(weight_std * torch.randn_like(p))
    return module


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Log-softmax over axis 1 of (N, C, ...) scores, in float64."""
    scores = scores.astype(np.float64)
    top = scores.max(1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(1, keepdims=True))


def stage2_pseudo_loss(module, images: torch.Tensor, *, teacher: bool = False, **fields) -> float:
    """``ce_pseudo`` of one stage-2 step on (N, 3 streams, 3, H, W) images (no anchor bank; ``teacher``:
    a mean teacher copied from the student)."""
    state = AdaptationState(types.SimpleNamespace(module=module), None, teacher=teacher, momentum=0.99)
    labels = torch.randint(0, CLASSES, (images.shape[0], 3, *images.shape[-2:]),
                           generator=torch.Generator().manual_seed(1))
    _, logs = stage2_step(state, CLASSES, active=True)(None, module, images, labels, MADAConfig(**fields))
    return float(logs["ce_pseudo"])


def test_reference_pseudo_labels_are_the_output_stride_argmax_of_the_same_forward():
    module = tiny_network(weight_std=0.5)
    images = torch.randn(2, 3, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # eval mode: the target stream's logits do not depend on the other streams
        low = module.forward_features(images[:, 2])[1].numpy()
    assert low.shape == (2, CLASSES, 4, 6)
    log_p = log_softmax(low)
    expected = -np.take_along_axis(log_p, low.argmax(1)[:, None], 1).mean()  # every pixel, no threshold
    reference = stage2_pseudo_loss(module, images, pseudo_labels="reference")
    assert reference == pytest.approx(expected, abs=1e-5)
    # a mean teacher equal to the student labels the same pixels, at the output stride too
    assert stage2_pseudo_loss(module, images, teacher=True, pseudo_labels="reference") == pytest.approx(expected,
                                                                                                      abs=1e-5)
    here = stage2_pseudo_loss(module, images)  # today's default: CE on the logits upsampled to 16 x 24
    assert abs(here - reference) > 0.01  # 0.618 (reference) vs 0.636 (here)


def test_reference_pseudo_label_pool_is_every_target_image_selected_ones_too():
    pool = TensorDataset(torch.arange(5.0)[:, None])
    selected = np.array([1, 3])
    every = pseudo_label_pool(MADAConfig(pseudo_labels="reference"), pool, selected)
    rest = pseudo_label_pool(MADAConfig(), pool, selected)
    assert [float(every[i][0]) for i in range(len(every))] == [0, 1, 2, 3, 4]
    assert [float(rest[i][0]) for i in range(len(rest))] == [0, 2, 4]


def bilinear(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) -> (C, height, width): bilinear interpolation of pixel centres (``align_corners=False``), float64."""

    def axis(out: int, size: int):
        src = np.maximum((np.arange(out) + 0.5) * size / out - 0.5, 0)
        low = np.minimum(src.astype(int), size - 1)
        return low, np.minimum(low + 1, size - 1), src - low

    (y0, y1, dy), (x0, x1, dx) = axis(height, scores.shape[1]), axis(width, scores.shape[2])
    s = scores.astype(np.float64)
    rows = s[:, y0] * (1 - dy)[:, None] + s[:, y1] * dy[:, None]
    return rows[:, :, x0] * (1 - dx) + rows[:, :, x1] * dx


def test_miou_at_the_full_label_resolution_matches_a_direct_confusion_matrix(tmp_path):
    from workbench.data.training.smoke import write_gta5_cityscapes
    from workbench.methods.mada.data import load_domains, read_label

    gta5, city = write_gta5_cityscapes(tmp_path, source=1, target=1, val=2)
    config = MADAConfig(dataset="gta5_cityscapes", source_root=str(gta5), target_root=str(city), num_classes=19,
                        image_size=(16, 32), eval_labels="full_resolution")
    domains = load_domains(config)
    module = tiny_network(19, weight_std=0.5)  # 2-3 classes per image (the initial network predicts one)
    expected = np.zeros((19, 19), np.int64)
    for (image, label), (_, label_path) in zip(domains.test, domains.test.pairs):
        np.testing.assert_array_equal(label.numpy(), read_label(label_path, "cityscapes"))  # the file's 48 x 64
        assert image.shape == (3, 16, 32) and label.shape == (48, 64)
        with torch.no_grad():
            low = module.forward_features(image[None])[1][0].numpy()
        scores = bilinear(low, 48, 64)
        ranked = np.sort(scores, 0)
        assert (ranked[-1] - ranked[-2]).min() > 1e-6  # no near-tie that float32 could flip
        pred, truth = scores.argmax(0), label.numpy()
        for t, p in zip(truth[truth != 255], pred[truth != 255]):
            expected[t, p] += 1
    confusion = confusion_of(module, domains.test, 19)
    np.testing.assert_array_equal(confusion, expected)
    fit_eval = miou_eval(19)(types.SimpleNamespace(module=module), DataLoader(domains.test, batch_size=2), "cpu")
    tp, union = np.diag(expected), expected.sum(0) + expected.sum(1) - np.diag(expected)
    assert fit_eval["miou"] == pytest.approx(np.mean(tp[union > 0] / union[union > 0]), abs=1e-12)
    assert fit_eval["pixel_acc"] == pytest.approx(tp.sum() / expected.sum(), abs=1e-12)
    resized = load_domains(MADAConfig(**{**vars(config), "eval_labels": "resized"}))
    assert resized.test[0][1].shape == (16, 32) and resized.fingerprint != domains.fingerprint


def test_paper_preset_uses_the_references_pseudo_labels_and_evaluation_and_the_others_keep_theirs():
    paper = resolve_config(get_method("mada"), "paper")
    assert (paper.pseudo_labels, paper.eval_labels) == ("reference", "full_resolution")
    for preset in ("tiny", "micro"):
        config = resolve_config(get_method("mada"), preset)
        assert (config.pseudo_labels, config.eval_labels) == ("unselected_upsampled", "resized")
    with pytest.raises(ValidationError, match="'eval_labels' is 'full_resolution'; the generated scenes"):
        resolve_config(get_method("mada"), "tiny", ["eval_labels=full_resolution"])
    with pytest.raises(ValidationError, match="pseudo_labels"):
        resolve_config(get_method("mada"), "tiny", ["pseudo_labels=all"])
