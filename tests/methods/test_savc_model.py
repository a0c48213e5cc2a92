"""SAVC's network: fantasies and virtual labels, cosine classifier, aggregated inference, zoo entry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.models.savc import (
    FANTASIES,
    SAVCNet,
    aggregate_logits,
    apply_fantasy,
    fantasy_size,
    split_virtual,
    virtual_labels,
)


def _net(fantasy="rotation2", classes=5, **kw):
    torch.manual_seed(0)
    net = SAVCNet(classes, fantasy=fantasy, backbone="tiny", widths=(4, 4, 8, 8), moco_dim=6, **kw)
    return net.eval()


def test_fantasy_order_matches_virtual_labels():
    x = torch.randn(3, 3, 8, 8)
    expanded = apply_fantasy(x, "rotation2")
    assert expanded.shape == (6, 3, 8, 8)
    for i in range(3):
        assert torch.equal(expanded[2 * i], x[i])
        assert torch.equal(expanded[2 * i + 1], torch.flip(x[i], (1, 2)))  # 180 degrees = both flips
    y = torch.tensor([4, 0, 2])
    v = virtual_labels(y, 2)
    assert v.tolist() == [8, 9, 0, 1, 4, 5]
    classes, transforms = split_virtual(v, 2)
    assert classes.tolist() == [4, 4, 0, 0, 2, 2]
    assert transforms.tolist() == [0, 1, 0, 1, 0, 1]


def test_rot0_90_rotates_a_quarter_turn():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
    out = apply_fantasy(x, "rot0_90")
    assert torch.equal(out[1, 0], x[0, 0].T.flip(0))  # counter-clockwise quarter turn


def test_rot_color_perm12_views_are_rotations_times_channel_cycles():
    x = torch.randn(2, 3, 6, 6)
    out = apply_fantasy(x, "rot_color_perm12").reshape(2, 12, 3, 6, 6)
    perms = ([0, 1, 2], [1, 2, 0], [2, 0, 1])
    for k in range(4):
        for p, perm in enumerate(perms):
            assert torch.equal(out[:, 3 * k + p], torch.rot90(x, k, (2, 3))[:, perm])
    flat = out[0].reshape(12, -1)
    assert len({tuple(r.tolist()) for r in flat}) == 12
    assert fantasy_size("rot_color_perm12") == 12 and fantasy_size("none") == 1


def test_unknown_fantasy_is_named():
    with pytest.raises(ValidationError, match="fantasy 'rot7'.*expected one of"):
        fantasy_size("rot7")


def test_cosine_classifier_is_scale_times_cosine():
    net = _net()
    f = torch.randn(4, net.dim)
    logits = net.fc(f)
    w = net.fc.weight
    direct = torch.stack([torch.stack([16.0 * torch.dot(a, b) / (a.norm() * b.norm()) for b in w]) for a in f])
    assert torch.allclose(logits, direct, atol=1e-5)
    assert torch.allclose(net.fc(3.7 * f), logits, atol=1e-5)  # invariant to the feature norm
    assert logits.abs().max() <= 16.0 + 1e-5
    assert net.fc(f, rows=4).shape == (4, 4)


def test_aggregate_logits_is_the_diagonal_mean():
    m, n, c = 3, 2, 4
    joint = torch.randn(n * m, c * m)
    agg = aggregate_logits(joint, m)
    for i in range(n):
        for k in range(c):
            direct = sum(joint[i * m + j, k * m + j] for j in range(m)) / m
            assert torch.isclose(agg[i, k], direct)


@pytest.mark.parametrize("fantasy", ["rotation2", "rot_color_perm12", "none"])
def test_forward_is_the_mean_of_the_m_transformed_logits(fantasy):
    net = _net(fantasy)
    net.num_seen.fill_(3)
    x = torch.randn(5, 3, 16, 16)
    m = fantasy_size(fantasy)
    views = FANTASIES[fantasy][1](x)
    with torch.no_grad():
        direct = torch.zeros(5, 3)
        for j, v in enumerate(views):
            f = F.normalize(net.features(v), dim=1)
            for c in range(3):
                w = F.normalize(net.fc.weight[c * m + j], dim=0)
                direct[:, c] += 16.0 * (f @ w) / m
        out = net(x)
    assert out.shape == (5, 3)
    assert torch.allclose(out, direct, atol=1e-5)


def test_hooks_on_declared_layers_see_one_row_per_image():
    from workbench.models.registry import build_architecture

    arch = build_architecture("savc_net", num_classes=4, fantasy="rot_color_perm12", backbone="tiny",
                              widths=(4, 4, 8, 8), moco_dim=6)
    arch.module.eval()
    shapes = {}
    handles = [arch.module.get_submodule(layer).register_forward_hook(
        lambda mod, inp, out, layer=layer: shapes.setdefault(layer, []).append(out.shape)) for layer in arch.layers]
    with torch.no_grad():
        arch.module(torch.randn(3, 3, 32, 32))
    for h in handles:
        h.remove()
    assert set(shapes) == set(arch.layers)
    assert all(len(v) == 1 and v[0][0] == 3 for v in shapes.values()), shapes
    assert shapes["embedding"][0] == (3, 8)


def test_zoo_entry_roundtrip_strict():
    from workbench.models.registry import build_architecture

    a = build_architecture("savc_net", num_classes=7, fantasy="rotation2", backbone="resnet20", moco_dim=8)
    b = build_architecture("savc_net", num_classes=7, fantasy="rotation2", backbone="resnet20", moco_dim=8)
    b.module.load_state_dict(a.module.state_dict(), strict=True)
    assert a.module.fc.weight.shape == (14, 64)
    assert a.layers == ("encoder.layer1", "encoder.layer2", "encoder.layer3", "embedding")
    with pytest.raises(ValidationError, match="backbone 'vgg'"):
        build_architecture("savc_net", backbone="vgg")
