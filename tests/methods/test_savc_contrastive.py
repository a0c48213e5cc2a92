"""SAVC's contrastive part: the loss against a per-sample computation, the queue, the key encoder, crops."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.methods.savc.contrastive import MomentumQueue, random_resized_crops, sup_contrastive_loss
from workbench.models.savc import SAVCNet


def _direct_loss(logits, positives):
    per_query = []
    for s, pos in zip(logits.tolist(), positives.tolist()):
        neg = sum(math.exp(v) for v, p in zip(s, pos) if not p)
        terms = [math.log(1 + math.exp(-v) * neg) for v, p in zip(s, pos) if p]
        per_query.append(sum(terms) / len(terms))
    return per_query


def test_loss_equals_direct_per_sample_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 9, generator=g) * 3
    positives = torch.rand(6, 9, generator=g) < 0.3
    positives[:, 0] = True
    positives[5, 1:] = False  # only its own key
    per = sup_contrastive_loss(logits, positives, reduction="none")
    assert per.tolist() == pytest.approx(_direct_loss(logits, positives), rel=1e-5)
    assert float(sup_contrastive_loss(logits, positives)) == pytest.approx(sum(_direct_loss(logits, positives)) / 6,
                                                                           rel=1e-5)


def test_loss_is_stable_for_large_logits_and_zero_without_negatives():
    logits = torch.tensor([[200.0, -100.0, 150.0], [1.0, 2.0, 3.0]])
    positives = torch.tensor([[True, False, False], [True, True, True]])
    per = sup_contrastive_loss(logits, positives, reduction="none")
    assert torch.isfinite(per).all()
    assert float(per[0]) == pytest.approx(math.log1p(math.exp(150.0 - 200.0)), abs=1e-12)
    assert float(per[1]) == 0.0


def _queue(size=5, dim=3):
    torch.manual_seed(0)
    net = SAVCNet(4, fantasy="none", backbone="tiny", widths=(4, 4, 4, 4), moco_dim=dim)
    return net, MomentumQueue(net, size, dim, momentum=0.9)


def test_queue_wraps_around_with_the_right_labels():
    _, q = _queue(size=5)
    keys1 = torch.eye(3)[[0, 1, 2]]
    q.enqueue(keys1, torch.tensor([10, 11, 12]))
    assert int(q.ptr) == 3
    keys2 = torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [0.8, 0.0, 0.6]])
    q.enqueue(keys2, torch.tensor([20, 21, 22]))
    assert int(q.ptr) == 1
    assert q.labels.tolist() == [22, 11, 12, 20, 21]
    assert torch.equal(q.queue[0], keys2[2]) and torch.equal(q.queue[3], keys2[0]) and torch.equal(q.queue[1], keys1[1])


def test_logits_and_positives_use_own_key_and_same_label_keys():
    _, q = _queue(size=4, dim=2)
    q.queue.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    q.labels.copy_(torch.tensor([3, -1, 3, 5]))
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    keys = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    logits, positives = q.logits(queries, keys, torch.tensor([3, -1]), temperature=0.5)
    assert torch.allclose(logits[0], torch.tensor([0.0, 2.0, 0.0, -2.0, 0.0]))
    assert positives.tolist() == [[True, True, False, True, False], [True, False, False, False, False]]


def test_momentum_update_is_exact():
    net, q = _queue()
    before = [p.clone() for p in q.key_net["encoder"].parameters()]
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.add_(1.0)
    q.update(net)
    for pk, pk0, pq in zip(q.key_net["encoder"].parameters(), before, net.encoder.parameters()):
        assert torch.allclose(pk, 0.9 * pk0 + 0.1 * pq)
    assert not any(p.requires_grad for p in q.key_net.parameters())


def test_crops_identity_when_full_scale_square_no_flip_and_seeded():
    x = torch.randn(4, 3, 8, 8)
    out = random_resized_crops(x, 8, (1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(out, x, atol=1e-5)
    torch.manual_seed(3)
    a = random_resized_crops(x, 5, (0.2, 0.6))
    torch.manual_seed(3)
    b = random_resized_crops(x, 5, (0.2, 0.6))
    assert a.shape == (4, 3, 5, 5) and torch.equal(a, b)
