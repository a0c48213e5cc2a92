"""MADA against the reference code (munanning/MADA), component by component, on seeded inputs.

Each expected value is computed here with loops, from a reading of the reference's
``calculate_mean_vector`` (models/adaptation_model.py, savefeat_source.py) and
``normalisation_pooling`` (models/utils.py): for image n and class t, the mask is
``label == t`` times ``argmax == t`` at the feature resolution, a class needs 10 masked pixels,
the descriptor is ``avg_pool(feat * mask) / avg_pool(mask)``, and in training the masked
feature map's gradient is multiplied by ``2 * sum(mask) / (h * w)``. Tolerance: 1e-6 (float64).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from workbench.errors import ValidationError
from workbench.methods import get_method
from workbench.methods.mada.anchors import ScaleGradient, agreeing_labels, class_descriptors
from workbench.training import resolve_config

CLASSES, DIM, H, W = 5, 3, 12, 16
TOL = 1e-6


def seeded_inputs(seed: int = 0):
    """Features (2, D, h, w) float64, logits (2, C, h, w), labels (2, 2h, 2w) with ~30 % ignored-or-wrong."""
    rng = np.random.default_rng(seed)
    features = torch.tensor(rng.normal(size=(2, DIM, H, W)), requires_grad=True)
    labels_low = rng.integers(0, CLASSES, size=(2, H, W))
    predicted = np.where(rng.random((2, H, W)) < 0.7, labels_low, rng.integers(0, CLASSES, size=(2, H, W)))
    logits = torch.tensor(np.eye(CLASSES)[predicted].transpose(0, 3, 1, 2) + 0.1 * rng.random((2, CLASSES, H, W)))
    labels = torch.tensor(labels_low).repeat_interleave(2, 1).repeat_interleave(2, 2)  # nearest-resize exact
    return features, logits, labels, labels_low, predicted


def reference_descriptors(features: np.ndarray, label_mask_source: np.ndarray, predicted: np.ndarray):
    """{(n, t): (descriptor (D,), gradient scale)} as the reference's loops make them."""
    out = {}
    for n in range(features.shape[0]):
        for t in range(CLASSES):
            mask = ((label_mask_source[n] == t) & (predicted[n] == t)).astype(float)
            if mask.sum() < 10:
                continue
            pooled = (features[n] * mask).mean(axis=(1, 2))
            out[(n, t)] = (pooled / mask.mean(), 2 * mask.sum() / (H * W))
    return out


def test_source_descriptors_from_label_and_prediction_match_the_reference():
    features, logits, labels, labels_low, predicted = seeded_inputs()
    desc, present = class_descriptors(features, agreeing_labels(labels, logits), CLASSES, min_pixels=10)
    expected = reference_descriptors(features.detach().numpy(), labels_low, predicted)
    assert {(n, t) for n, t in zip(*np.nonzero(present.numpy()))} == set(expected)
    for (n, t), (vector, _) in expected.items():
        np.testing.assert_allclose(desc[n, t].detach().numpy(), vector, atol=TOL, rtol=0)
    plain, _ = class_descriptors(features, labels, CLASSES, min_pixels=10)
    assert (plain - desc).abs().max() > 0.05          # the ground-truth-only descriptors differ


def test_anchor_gradient_scaling_matches_normalisation_pooling():
    """Forward unchanged; d loss / d features as the reference's scaled masked pooling gives it."""
    features, _, _, _, predicted = seeded_inputs(1)
    pred = torch.tensor(predicted)
    weights = torch.tensor(np.random.default_rng(2).normal(size=(2, CLASSES, DIM)))
    scaled, present = class_descriptors(features, pred, CLASSES, min_pixels=10, scale_gradient=True)
    plain, _ = class_descriptors(features, pred, CLASSES, min_pixels=10)
    assert torch.equal(scaled, plain)
    (grad,) = torch.autograd.grad((scaled * weights).sum(), features)
    expected = np.zeros((2, DIM, H, W))
    for (n, t), (_, scale) in reference_descriptors(features.detach().numpy(), predicted, predicted).items():
        mask = (predicted[n] == t).astype(float)
        # d/d feat of avg_pool(feat * mask) / mean(mask), times the backward scale
        expected[n] += weights[n, t].numpy()[:, None, None] * mask / mask.sum() * scale
    np.testing.assert_allclose(grad.numpy(), expected, atol=TOL, rtol=0)
    assert present.sum() > 3


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    y = ScaleGradient.apply(x, torch.tensor([[0.5], [3.0]]))
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.5, 0.5], [3.0, 3.0]]))


def test_paper_preset_uses_the_references_descriptors_and_gradient_scaling():
    paper = resolve_config(get_method("mada"), "paper")
    assert (paper.source_descriptors, paper.anchor_gradient_scaling) == ("label_and_prediction", True)
    tiny = resolve_config(get_method("mada"), "tiny")
    assert (tiny.source_descriptors, tiny.anchor_gradient_scaling) == ("label", False)


def test_unknown_source_descriptors_is_refused():
    with pytest.raises(ValidationError, match="source_descriptors"):
        resolve_config(get_method("mada"), "tiny", ["source_descriptors=prediction"])


def test_dataset_descriptors_of_the_source_keep_only_the_pixels_the_model_predicts_as_labelled():
    from torch.utils.data import TensorDataset

    from workbench.methods.mada.train import dataset_descriptors
    from workbench.models.segmentation import seg_cnn

    torch.manual_seed(0)
    module = seg_cnn(num_classes=3, widths=(4, 4, 8), feature_dim=4).module.eval()
    images, labels = torch.randn(5, 3, 16, 16), torch.randint(0, 3, (5, 16, 16))
    desc, present = dataset_descriptors(module, TensorDataset(images, labels), 3, use_labels=True, min_pixels=2,
                                        agreeing_only=True)
    with torch.no_grad():
        features, logits = module.forward_features(images)
    predicted = logits.argmax(1).numpy()
    low = labels[:, ::4, ::4].numpy()                  # nearest resize of 16 px to 4 px
    for n in range(5):
        for c in range(3):
            mask = (low[n] == c) & (predicted[n] == c)
            assert present[n, c] == (mask.sum() >= 2)
            if mask.sum() >= 2:
                np.testing.assert_allclose(desc[n, c], features[n][:, mask].mean(1).numpy(), atol=TOL, rtol=0)


@pytest.mark.slow
def test_micro_run_with_the_reference_options_trains_stage_two_with_a_finite_anchor_loss(tmp_path):
    from workbench.training import read_card, train

    out = train("mada", out=tmp_path / "run", preset="micro", overrides=[
        "source_descriptors=label_and_prediction", "anchor_gradient_scaling=true", "baselines=false"])
    card = read_card(out)
    assert np.isfinite(card["evaluation"]["test_miou"])
    metrics = pd.read_csv(out / "phases" / "madav2_stage2" / "metrics.csv")
    anchor = metrics.loc[metrics["metric"] == "anchor", "value"]
    assert len(anchor) == 2 and np.isfinite(anchor).all() and (anchor > 0).all()
    assert yaml.safe_load((out / "config.yaml").read_text())["source_descriptors"] == "label_and_prediction"
