"""MADA's building blocks against direct computations: mIoU, descriptors, anchors, selection, anchor loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch


# --- mIoU -------------------------------------------------------------------------------------

def test_miou_matches_a_direct_per_class_computation_and_skips_the_ignore_label():
    from workbench.methods.mada.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy

    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, (3, 9, 11))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, 4, target.shape)
    pred[target == 1] = 1  # class 1 perfectly predicted where labelled...
    pred[(pred == 3)] = 2   # ...class 3 never predicted
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 5)
    valid = target != 255
    assert cm.sum() == valid.sum() and cm.shape == (5, 5)
    expected = []
    for c in range(5):
        tp = np.sum((pred == c) & (target == c) & valid)
        union = np.sum(((pred == c) | (target == c)) & valid)
        expected.append(tp / union if union else np.nan)
    np.testing.assert_allclose(iou_per_class(cm), expected, equal_nan=True)
    assert np.isnan(iou_per_class(cm)[4])  # class 4: in neither labels nor predictions
    assert mean_iou(cm) == pytest.approx(np.nanmean(expected))
    assert pixel_accuracy(cm) == pytest.approx(np.mean(pred[valid] == target[valid]))
    # a perfect prediction has mIoU 1 whatever the ignored pixels hold
    assert mean_iou(confusion_matrix(np.where(valid, target, 0), target, 4)) == 1.0


# --- descriptors ------------------------------------------------------------------------------

def test_descriptors_are_masked_means_over_downsampled_labels():
    from workbench.methods.mada.anchors import class_descriptors

    g = torch.Generator().manual_seed(1)
    features = torch.randn(2, 5, 4, 6, generator=g)
    labels = torch.randint(0, 3, (2, 8, 12), generator=g)
    labels[0][labels[0] == 2] = 255           # class 2 absent (ignored) in image 0
    desc, present = class_descriptors(features, labels, 4)
    small = labels[:, ::2, ::2]               # nearest downsampling by 2 keeps the even pixels
    for n in range(2):
        for c in range(4):
            mask = small[n] == c
            assert bool(present[n, c]) == bool(mask.any())
            expected = features[n][:, mask].mean(1) if mask.any() else torch.zeros(5)
            torch.testing.assert_close(desc[n, c], expected)
    assert not present[:, 3].any() and not present[0, 2]
    # min_pixels: a class with fewer pixels is absent
    counts = torch.stack([(small == c).sum((1, 2)) for c in range(4)], 1)
    _, present5 = class_descriptors(features, labels, 4, min_pixels=int(counts[counts > 0].min()) + 1)
    assert present5.sum() < present.sum()
    # gradients flow to the features
    feats = features.clone().requires_grad_(True)
    class_descriptors(feats, labels, 4)[0].sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_masked_distance_is_the_mse_over_shared_present_classes():
    from workbench.methods.mada.anchors import masked_distances

    rng = np.random.default_rng(2)
    x, a = rng.normal(size=(3, 4, 5)), rng.normal(size=(2, 4, 5))
    px = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], bool)
    pa = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], bool)
    d = masked_distances(torch.tensor(x), torch.tensor(px), a, pa).numpy()
    assert d[0, 0] == pytest.approx(np.mean((x[0, 0] - a[0, 0]) ** 2))
    assert d[0, 1] == pytest.approx(np.mean((x[0, :2] - a[1, :2]) ** 2))
    assert d[1, 0] == pytest.approx(np.mean((x[1, 2] - a[0, 2]) ** 2))
    assert np.isinf(d[2]).all()  # no present class: infinitely far, never the nearest
    # absent classes' values do not matter
    x2 = x.copy()
    x2[~px] = 1e6
    np.testing.assert_allclose(masked_distances(torch.tensor(x2), torch.tensor(px), a, pa).numpy(), d)


# --- anchors and selection --------------------------------------------------------------------

def test_with_k_equal_to_the_number_of_images_the_anchors_are_the_descriptors():
    from workbench.methods.mada.anchors import fit_anchors

    rng = np.random.default_rng(3)
    desc = rng.normal(size=(7, 3, 4)).astype(np.float32)
    present = rng.random((7, 3)) < 0.7
    present[:, 0] = True
    desc[~present] = 0
    anchors = fit_anchors(desc, present, k=7, seed=0)
    assert len(anchors) == 7 and sorted(anchors.assignment) == list(range(7))
    for i in range(7):
        j = anchors.assignment[i]
        np.testing.assert_allclose(anchors.centers[j][present[i]], desc[i][present[i]], atol=1e-5)
        np.testing.assert_array_equal(anchors.present[j], present[i])
    # K above N is capped; K = 1 is the mean (absent classes filled with their class mean)
    assert len(fit_anchors(desc, present, k=50)) == 7
    one = fit_anchors(desc, present, k=1)
    for c in range(3):
        np.testing.assert_allclose(one.centers[0, c], desc[present[:, c], c].mean(0), atol=1e-5)


def test_selection_picks_exactly_the_budget_and_the_farthest_images():
    from workbench.methods.mada.anchors import (
        Anchors,
        budget_count,
        min_distance,
        select_top,
        selection_scores,
    )

    rng = np.random.default_rng(4)
    desc = rng.normal(size=(40, 3, 2))
    present = np.ones((40, 3), bool)
    source = Anchors(rng.normal(size=(2, 3, 2)), np.ones((2, 3), bool), np.zeros(0))
    target = Anchors(rng.normal(size=(3, 3, 2)), np.ones((3, 3), bool), np.zeros(0))
    for budget, expected in ((0.05, 2), (0.1, 4), (0.01, 1), (1.0, 40)):
        assert budget_count(40, budget) == expected
        for strategy in ("mada", "madav2", "random", "centroid"):
            picked = select_top(selection_scores(strategy, desc, present, source_anchors=source,
                                                 target_anchors=target, seed=1), budget)
            assert len(picked) == expected == len(set(picked.tolist()))
    mada = min_distance(desc, present, source)
    v2 = selection_scores("madav2", desc, present, source_anchors=source, target_anchors=target)
    np.testing.assert_allclose(v2, mada + min_distance(desc, present, target))
    direct = np.array([min(np.mean((desc[i] - a) ** 2) for a in source.centers) for i in range(40)])
    np.testing.assert_allclose(mada, direct)
    assert set(select_top(mada, 0.1)) == set(np.argsort(-direct)[:4])
    # random selection: reproducible per seed, different across seeds
    r = [select_top(selection_scores("random", desc, present, seed=s), 0.25) for s in (0, 0, 1)]
    assert (r[0] == r[1]).all() and (r[0] != r[2]).any()


def test_anchor_loss_is_the_harmonic_mean_of_the_distances_and_ema_moves_the_nearest_anchor():
    from workbench.methods.mada.anchors import AnchorBank, Anchors, anchor_loss

    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 6, generator=g, requires_grad=True)
    px = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    centers = torch.randn(2, 4, 6, generator=g)
    pc = torch.ones(2, 4, dtype=torch.bool)
    loss = anchor_loss(x, px, centers, pc)
    per_image = []
    for i in range(2):  # image 2 has no present class: left out
        d = [((x[i][px[i]] - centers[k][px[i]]) ** 2).mean() for k in range(2)]
        per_image.append(2 / (1 / d[0] + 1 / d[1]))
    torch.testing.assert_close(loss, torch.stack(per_image).mean(), rtol=1e-5, atol=1e-6)
    loss.backward()
    assert x.grad[:2].abs().sum() > 0 and x.grad[2].abs().sum() == 0

    bank = AnchorBank(Anchors(centers.numpy().copy(), np.ones((2, 4), bool), np.zeros(0)), momentum=0.9)
    before = bank.centers.clone()
    d0 = [((x[1][px[1]] - before[k][px[1]]) ** 2).mean().item() for k in range(2)]
    nearest = int(np.argmin(d0))
    bank.update(x[1:2].detach(), px[1:2])
    expected = before.clone()
    expected[nearest, px[1]] = 0.9 * before[nearest, px[1]] + 0.1 * x[1].detach()[px[1]]
    torch.testing.assert_close(bank.centers, expected)
    restored = AnchorBank(Anchors(centers.numpy(), np.ones((2, 4), bool), np.zeros(0)))
    restored.load_state_dict(bank.state_dict())
    torch.testing.assert_close(restored.centers, bank.centers)


def test_pseudo_labels_are_the_argmax_with_low_confidence_pixels_ignored():
    from workbench.methods.mada.train import pseudo_labels

    logits = torch.zeros(1, 3, 1, 3)
    logits[0, :, 0, 0] = torch.tensor([5.0, 0.0, 0.0])   # confident class 0
    logits[0, :, 0, 1] = torch.tensor([0.0, 0.2, 0.0])   # unsure class 1
    logits[0, :, 0, 2] = torch.tensor([0.0, 0.0, 9.0])   # confident class 2
    assert pseudo_labels(logits, 0.0).tolist() == [[[0, 1, 2]]]
    assert pseudo_labels(logits, 0.9).tolist() == [[[0, 255, 2]]]
