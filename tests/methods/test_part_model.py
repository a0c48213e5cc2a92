"""PART's network: part discovery on hand-made maps, masks, masked part transformers, global-only inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ValidationError
from workbench.models.part import (
    PARTNet,
    box_iou,
    channel_weights,
    discover_parts,
    global_state_dict,
    largest_region_box,
    part_masks,
)
from workbench.models.registry import build_architecture

MICRO = dict(widths=(4, 4, 8, 8), dim=8, heads=2, depth=2, top_channels=8)


def _blank(c=6, h=8, w=8):
    return np.zeros((c, h, w), dtype=np.float32)


def test_channel_weights_match_direct_formula():
    maps = torch.rand(3, 5, 4, 4)
    raw = np.sqrt(maps.numpy().mean((2, 3))) + 1e-12
    expected = raw / raw.sum(1, keepdims=True)
    np.testing.assert_allclose(channel_weights(maps).numpy(), expected, rtol=1e-6)


def test_largest_region_box_picks_the_largest_connected_region_and_respects_tau():
    m = np.zeros((8, 8), dtype=np.float32)
    m[1:3, 1:4] = 1.0       # 6 cells, rows 1-2, cols 1-3
    m[6, 6] = 1.0           # 1 cell (the peak elsewhere too)
    m[5, 0:2] = 0.45        # 2 cells, only above tau = 0.4
    m[3, 3] = 0.45          # touches the big region diagonally (not 4-connected) ...
    m[3, 2] = 0.45          # ... and by an edge: joins it at tau 0.4 only
    assert largest_region_box(m, 0.5) == (1, 1, 4, 3)
    assert largest_region_box(m, 0.4) == (1, 1, 4, 4)   # region grows by the 0.45 cells below it
    assert largest_region_box(np.zeros((4, 4)), 0.5) is None


def test_box_iou_equals_torchvision():
    from torchvision.ops import box_iou as tv

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.sort(rng.integers(0, 9, (2, 2)), axis=0)
        b = np.sort(rng.integers(0, 9, (2, 2)), axis=0)
        a = (a[0, 0], a[0, 1], a[1, 0] + 1, a[1, 1] + 1)
        b = (b[0, 0], b[0, 1], b[1, 0] + 1, b[1, 1] + 1)
        ref = tv(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))[0, 0].item()
        assert box_iou(a, b) == pytest.approx(ref)


def _hand_maps():
    """Six channels; ranked by mean activation 0 > 1 > 2 > 3 > 4 > 5 (by construction)."""
    m = _blank()
    m[0, 0:3, 0:4] = 2.0                 # box (0, 0, 4, 3), 12 cells
    m[0, 7, 7] = 1.0                     # small second region, below tau of the peak 2.0 -> ignored
    m[1, 0:3, 0:3] = 2.2                 # box (0, 0, 3, 3): IoU with ch0's = 9 / 12 = 0.75 > 0.6 -> suppressed
    m[2, 4:8, 4:8] = 1.2                 # box (4, 4, 8, 8), 16 cells
    m[3, 0:3, 1:4] = 1.5                 # box (1, 0, 4, 3): IoU with ch0's = 9 / 12 = 0.75 -> suppressed
    m[4, 4:7, 0:3] = 1.0                 # box (0, 4, 3, 7)
    m[5, 0:4, 5:8] = 0.6                 # box (5, 0, 8, 4)
    return m


def test_discovery_boxes_and_nms_against_direct_computation():
    maps = torch.from_numpy(_hand_maps())[None]
    means = maps[0].mean((1, 2)).numpy()
    assert list(np.argsort(-means)) == [0, 1, 2, 3, 4, 5]
    sel = discover_parts(maps, 0.5, parts=4, top_channels=6, nms_iou=0.6)
    # direct: candidates in rank order 0..5; 1 and 3 overlap 0's box with IoU 0.75 > 0.6
    assert sel.channels[0].tolist() == [0, 2, 4, 5]
    assert sel.boxes[0].tolist() == [[0, 0, 4, 3], [4, 4, 8, 8], [0, 4, 3, 7], [5, 0, 8, 4]]
    # a looser NMS keeps the overlapping candidates, in rank order
    loose = discover_parts(maps, 0.5, parts=4, top_channels=6, nms_iou=0.8)
    assert loose.channels[0].tolist() == [0, 1, 2, 3]
    # fewer survivors than parts: the best-ranked unused candidates fill the slots
    few = discover_parts(maps[:, :4], 0.5, parts=3, top_channels=4, nms_iou=0.6)
    assert few.channels[0].tolist() == [0, 2, 1]
    assert few.boxes[0, 2].tolist() == [0, 0, 3, 3]


def test_discovery_uses_one_threshold_per_ranked_candidate():
    m = _blank(c=2)
    m[0, 0:2, 0:2] = 1.0
    m[0, 2:6, 0:2] = 0.45                # joins the peak region at tau 0.4 only
    m[1, 6:8, 6:8] = 0.1
    maps = torch.from_numpy(m)[None]
    low = discover_parts(maps, torch.tensor([[0.4, 0.5]]), parts=1, top_channels=2)
    high = discover_parts(maps, torch.tensor([[0.5, 0.5]]), parts=1, top_channels=2)
    assert low.boxes[0, 0].tolist() == [0, 0, 2, 6]
    assert high.boxes[0, 0].tolist() == [0, 0, 2, 2]
    with pytest.raises(ValidationError, match="taus must have shape"):
        discover_parts(maps, torch.tensor([[0.5]]), parts=1, top_channels=2)


def test_masks_exclude_exactly_the_positions_outside_the_part():
    rng = np.random.default_rng(1)
    maps = torch.from_numpy(rng.random((2, 6, 5, 5)).astype(np.float32))
    sel = discover_parts(maps, 0.5, parts=3, top_channels=6)
    for i in range(2):
        for p in range(3):
            chosen = maps[i, sel.channels[i, p]].numpy()
            expected = chosen > chosen.mean()
            assert np.array_equal(sel.masks[i, p].numpy(), expected)
    flat = torch.ones(1, 2, 3, 3)  # no position above the mean: every position is kept
    assert part_masks(flat).all()


def _eval_net(**kw):
    torch.manual_seed(0)
    net = PARTNet(5, parts=4, **{**MICRO, **kw})
    return net.eval()


def test_part_transformer_ignores_features_outside_its_mask():
    net = _eval_net()
    h = w = 4
    tokens = torch.randn(2, h * w, 8)
    mask = torch.zeros(2, h, w, dtype=torch.bool)
    mask[0, 1:3, 0:2] = True
    mask[1, 3, :] = True
    with torch.no_grad():
        ref = net.part_embedding(1, tokens, mask, h, w)
        changed = tokens.clone()
        outside = ~mask.flatten(1)
        changed[outside] = torch.randn(int(outside.sum()), 8) * 10
        assert torch.allclose(net.part_embedding(1, changed, mask, h, w), ref, atol=1e-5)
        inside = tokens.clone()
        inside[~outside] += torch.randn(int((~outside).sum()), 8)
        assert not torch.allclose(net.part_embedding(1, inside, mask, h, w), ref, atol=1e-3)


def test_inference_runs_the_global_branch_only():
    net = _eval_net()
    x = torch.randn(3, 3, 32, 32)
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1))
             for name in ("part_positions", "part_encoders", "part_necks", "part_classifiers")
             for m in getattr(net, name).modules()]
    with torch.no_grad():
        before = net(x)
    assert not calls
    for hook in hooks:
        hook.remove()
    state = global_state_dict(net.state_dict())
    del net.part_positions, net.part_encoders, net.part_necks, net.part_classifiers
    with torch.no_grad():
        assert torch.equal(net(x), before)
    plain = build_architecture("part_net", num_classes=5, parts=0, **MICRO).module.eval()
    plain.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(plain(x), before)
    with pytest.raises(ValidationError, match="no part branches"):
        plain(x, part_taus=0.5)


def test_training_forward_returns_part_logits_and_selection():
    net = _eval_net()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        g, p, sel = net(x, part_taus=torch.full((2, 8), 0.5))
    assert g.shape == (2, 5) and p.shape == (2, 4, 5)
    assert sel.boxes.shape == (2, 4, 4) and sel.masks.shape == (2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(g, net(x))  # the global logits do not depend on the parts


def test_architecture_declares_backbone_stages_and_transformer_blocks():
    arch = build_architecture("part_net", num_classes=3, **MICRO)
    assert arch.layers == ("layer1", "layer2", "layer3", "layer4", "global_transformer.blocks.0",
                           "global_transformer.blocks.1", "neck")
    assert not hasattr(arch.module, "part_encoders")  # the zoo default is the global-only network
    with pytest.raises(ValidationError, match="divisible"):
        PARTNet(3, dim=10, heads=4)
