"""The hierarchy-aware BCE: targets, ignored descendants, flat = plain BCE, a direct per-class computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.methods.unidet.labels import build_label_space
from workbench.methods.unidet.loss import hierarchy_bce, hierarchy_targets, most_specific

# vehicle -> car -> {sedan}, vehicle -> truck; animal (root, no children)
MAPS = [("X", "vehicle", "vehicle"), ("X", "car", "car"), ("X", "sedan", "sedan"), ("X", "truck", "truck"),
        ("X", "animal", "animal")]
PARENTS = [("car", "vehicle"), ("truck", "vehicle"), ("sedan", "car")]


def space():
    return build_label_space(MAPS, [], PARENTS, {"X": ["vehicle", "car", "sedan", "truck", "animal"]})


def test_targets_and_weights_follow_the_tree():
    s = space()
    v, c, se, tr, an = (s.index(n) for n in ("vehicle", "car", "sedan", "truck", "animal"))
    anc = torch.as_tensor(s.ancestors())
    targets, weights = hierarchy_targets(torch.tensor([c, -1]), anc)
    assert targets[0].tolist() == [1.0 if k in (v, c) else 0.0 for k in range(5)]  # the label and its ancestor
    assert weights[0].tolist() == [0.0 if k == se else 1.0 for k in range(5)]       # its descendant ignored
    assert targets[1].sum() == 0 and weights[1].sum() == 5                            # background: all negatives


def test_gradient_on_descendants_is_exactly_zero_when_the_label_is_a_parent():
    s = space()
    anc = torch.as_tensor(s.ancestors())
    logits = torch.randn(3, 5, requires_grad=True)
    labels = torch.tensor([s.index("vehicle"), s.index("car"), -1])
    hierarchy_bce(logits, labels, anc).backward()
    desc = s.descendants()
    for row, label in enumerate(labels.tolist()):
        for k in range(5):
            is_desc = label >= 0 and desc[label, k]
            assert (logits.grad[row, k] == 0) == bool(is_desc), (row, k)
    # with descendants as negatives (not child+) they do get a gradient
    logits.grad = None
    hierarchy_bce(logits, labels, anc, ignore_descendants=False).backward()
    assert (logits.grad != 0).all()


def test_flat_hierarchy_equals_plain_sigmoid_bce():
    torch.manual_seed(0)
    logits = torch.randn(7, 4)
    labels = torch.tensor([0, 3, -1, 2, 1, -1, 3])
    flat = torch.zeros(4, 4, dtype=torch.bool)
    onehot = torch.zeros(7, 4)
    onehot[labels >= 0, labels[labels >= 0]] = 1
    expected = F.binary_cross_entropy_with_logits(logits, onehot, reduction="sum")
    assert float(hierarchy_bce(logits, labels, flat)) == pytest.approx(float(expected), rel=1e-6)


def test_agrees_with_a_direct_per_class_computation_with_a_dataset_mask():
    s = space()
    parent = s.parent
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5))
    labels = [s.index("sedan"), s.index("vehicle"), -1, s.index("truck"), s.index("animal"), s.index("car")]
    mask = rng.random((6, 5)) > 0.3

    def is_ancestor(j, i):  # j is a proper ancestor of i
        i = parent[i]
        while i >= 0:
            if i == j:
                return True
            i = parent[i]
        return False

    total = 0.0
    for n, y in enumerate(labels):
        for k in range(5):
            if not mask[n, k] or (y >= 0 and is_ancestor(y, k)):
                continue
            t = 1.0 if y >= 0 and (k == y or is_ancestor(k, y)) else 0.0
            p = 1 / (1 + math.exp(-logits[n, k]))
            total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    got = hierarchy_bce(torch.tensor(logits), torch.tensor(labels), torch.as_tensor(s.ancestors()),
                        class_mask=torch.as_tensor(mask))
    assert float(got) == pytest.approx(total, rel=1e-6)


def test_focal_modulation_reduces_to_bce_at_gamma_zero_and_scales_each_term():
    logits, labels = torch.tensor([[2.0, -1.0]]), torch.tensor([0])
    flat = torch.zeros(2, 2, dtype=torch.bool)
    plain = hierarchy_bce(logits, labels, flat)
    assert float(hierarchy_bce(logits, labels, flat, gamma=0.0)) == float(plain)
    p = torch.sigmoid(logits)[0]
    expected = -(1 - p[0]) ** 2 * torch.log(p[0]) - p[1] ** 2 * torch.log(1 - p[1])
    assert float(hierarchy_bce(logits, labels, flat, gamma=2.0)) == pytest.approx(float(expected), rel=1e-5)


def test_most_specific_reports_the_deepest_label_above_threshold_with_its_ancestors():
    s = space()
    scores = np.zeros(5)
    scores[[s.index("vehicle"), s.index("car"), s.index("truck")]] = [0.9, 0.6, 0.7]
    chain = most_specific(scores, s.parent, 0.5)
    assert [s.names[i] for i in chain] == ["truck", "vehicle"]  # car and truck equally deep: higher score
    scores[s.index("sedan")] = 0.55
    assert [s.names[i] for i in most_specific(scores, s.parent, 0.5)] == ["sedan", "car", "vehicle"]
    assert most_specific(scores, s.parent, 0.95) == []
