"""PART's part selection against a direct computation of the reference's main loop.

The reference (iCVTEAM/PART, ``model/backbones/Attention.py``, ``ATT.NMS_crop``; and
``model/make_model.py``, ``forward_multi`` for the masks) is recomputed here from its reading,
in torch, independently of ``workbench.models.part``: zero the top/left 2 rows and columns of
each of the 64 top-weighted candidate maps, box the positions *below* ``tau * max``, greedy NMS
at IoU 0.6, and fall back to the top ``parts`` channels when fewer survive; the masks are the
border-zeroed maps not below their mean over the batch. Tolerance: exact (integers, booleans).

Also from the reference's reading: the parameters its paper network trains (``make_model.py``:
part 4 through ``transformer_p3``; exact count), part 4's encoder and its gradient (1e-6), and
the ``resnet*_bap`` backbone cut (``model/backbones/resnet.py``) at 448 px (1e-5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ValidationError
from workbench.methods import get_method
from workbench.methods.part.train import PARTConfig, arch_kwargs, train
from workbench.models.part import PARTNet, discover_parts, reference_box
from workbench.training.config import read_preset


def _reference_loop(maps: torch.Tensor, taus: torch.Tensor, parts: int, topk: int, iou_limit: float = 0.6):
    """Per image: (channels, fell_back) of the reference's main loop; maps (N, C, h, w)."""
    n, _, h, w = maps.shape
    weights = maps.mean((2, 3)).sqrt() + 1e-12
    weights = weights / weights.sum(1, keepdim=True)
    out = []
    for i in range(n):
        idx = torch.topk(weights[i], topk).indices
        cand = maps[i, idx].clone()
        proposals, chosen = [], []
        for e in range(topk):
            cand[e, :2, :] = 0
            cand[e, :, :2] = 0
            if len(chosen) >= parts:
                break
            rows, cols = torch.where(cand[e] < cand[e].max() * taus[i, e])
            if rows.numel() == 0:  # the reference's "error finding": every position
                rows, cols = torch.where(torch.ones_like(cand[e], dtype=torch.bool))
            pad_r = 0 if rows.max() - rows.min() > 4 else int(0.2 * w // 2)
            pad_c = 0 if cols.max() - cols.min() > 4 else int(0.2 * h // 2)
            y1, y2 = max(0, int(rows.min()) - pad_r), int(rows.max()) + pad_r
            x1, x2 = max(0, int(cols.min()) - pad_c), int(cols.max()) + pad_c
            box = (x1, x2, y1, y2)
            clash = False
            for (a1, a2, b1, b2) in proposals:
                inter = max(0, min(x2, a2) - max(x1, a1)) * max(0, min(y2, b2) - max(y1, b1))
                union = (x2 - x1) * (y2 - y1) + (a2 - a1) * (b2 - b1) - inter
                clash = clash or inter / union > iou_limit
            if not clash:
                proposals.append(box)
                chosen.append(int(idx[e]))
        fell_back = len(chosen) < parts
        out.append((torch.topk(weights[i], parts).indices.tolist() if fell_back else chosen, fell_back))
    return out


def _seeded_maps(n=12, c=96, size=28, seed=0):
    """Non-negative maps (N, C, 28, 28), the reference's size at 448 px: ReLU of blurred noise plus one
    Gaussian bump per image shared by every channel at a random amplitude (top channels overlap)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, c, size, size, generator=gen)
    blurred = torch.nn.functional.avg_pool2d(noise, 5, stride=1, padding=2, count_include_pad=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(8, 20, (n, 2), generator=gen)
    bump = torch.exp(-((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2) / 32.0)
    amplitude = torch.rand(n, c, generator=gen) * 2
    return torch.relu(blurred + 0.05) + amplitude[:, :, None, None] * bump[:, None]


def test_reference_as_run_equals_the_reference_loop_and_every_image_falls_back():
    maps = _seeded_maps()
    taus = torch.empty(12, 64).uniform_(0.4, 0.6, generator=torch.Generator().manual_seed(1))
    expected = _reference_loop(maps, taus, parts=4, topk=64)
    assert sum(fell for _, fell in expected) == 12  # 12 of 12 fall back to the top-4 channels by weight
    sel = discover_parts(maps, taus, parts=4, top_channels=64, selection="reference_as_run")
    assert sel.channels.tolist() == [ch for ch, _ in expected]
    # masks: border-zeroed maps of the chosen channels, not below their batch mean
    chosen = torch.stack([maps[i, sel.channels[i]] for i in range(12)]).clone()
    chosen[..., :2, :] = 0
    chosen[..., :, :2] = 0
    for p in range(4):
        assert torch.equal(sel.masks[:, p], chosen[:, p] >= chosen[:, p].mean())
    assert not sel.masks[:, :, :2, :].any() and not sel.masks[:, :, :, :2].any()  # the border is never attended
    assert sel.boxes[:, 0].tolist() == [[0, 0, 27, 27]] * 12  # the box the zeroed border gives every candidate
    # the paper's rule picks other channels on the same maps (the shared bump makes top channels overlap)
    paper = discover_parts(maps, taus, parts=4, top_channels=64, selection="connected_region")
    assert (paper.channels != sel.channels).any(1).sum() == 12


def test_reference_boxes_always_span_the_map_so_nms_keeps_one():
    """The zeroed top/left border is below any positive threshold and reaches the last row and
    column, so every box is (0, 0, w - 1, h - 1): NMS keeps only the first candidate."""
    m = np.zeros((4, 8, 10), dtype=np.float32)
    m[0, 3:, :] = 1.0       # above tau on every row but the border: still the full box
    m[1, 5:, 5:] = 0.8      # a corner blob
    m[2, 2, 2] = 0.3        # a single peak
    # channel 3 stays zero: no position below 0 * tau, so every position (the reference's "error finding")
    border = m.copy()
    border[:, :2, :] = 0
    border[:, :, :2] = 0
    assert [reference_box(border[k], 0.5) for k in range(4)] == [(0, 0, 9, 7)] * 4
    maps = torch.from_numpy(m)[None]
    for parts in (1, 2, 3):
        expected = _reference_loop(maps, torch.full((1, 4), 0.5), parts=parts, topk=4)
        assert expected == [([0, 1, 2][:parts], parts > 1)]  # one kept, fallback from 2 parts on
        sel = discover_parts(maps, 0.5, parts=parts, top_channels=4, selection="reference_as_run")
        assert sel.channels.tolist() == [expected[0][0]]


def test_paper_preset_and_config_choose_the_rule():
    method = get_method("part")
    paper = read_preset(method.config_cls, method.preset_path("paper"))
    assert (paper["part_selection"], paper["part_pooling"]) == ("reference_as_run", "all_positions")
    assert paper["arch_kwargs"]["backbone"] == "resnet101" and paper["arch_kwargs"]["backbone_cut"] == "reference"
    assert paper["part_encoders"] == "reference_shared_p3"
    tiny = read_preset(method.config_cls, method.preset_path("tiny"))
    assert not {"part_selection", "part_pooling", "part_encoders"} & set(tiny)  # the defaults: the paper's rule,
    assert "backbone_cut" not in tiny.get("arch_kwargs", {})  # pooling inside the mask, an encoder per part
    config = PARTConfig(part_selection="reference_as_run", part_encoders="reference_shared_p3")
    assert arch_kwargs(config, 5, 4)["part_selection"] == "reference_as_run"
    assert arch_kwargs(config, 5, 0)["part_encoders"] == "reference_shared_p3"  # the global-only net takes it too
    assert PARTNet(5, parts=2, widths=(4, 4, 8, 8), dim=8, heads=2, top_channels=8,
                   part_selection="reference_as_run").part_selection == "reference_as_run"
    with pytest.raises(ValidationError, match="part selection must be one of"):
        discover_parts(torch.rand(1, 4, 4, 4), 0.5, parts=2, selection="boxes")
    with pytest.raises(ValidationError, match=r"'arch_kwargs' sets \['part_pooling'\]; set them as config fields"):
        # refused before any data is read
        train(config.replace(arch="part_net", arch_kwargs={"part_pooling": "all_positions"}), run=None)


def test_all_positions_pooling_averages_every_token_of_the_part_transformer():
    torch.manual_seed(0)
    kw = dict(widths=(4, 4, 8, 8), dim=8, heads=2, top_channels=8)
    inside_net = PARTNet(5, parts=2, **kw).eval()
    every_net = PARTNet(5, parts=2, part_pooling="all_positions", **kw).eval()
    every_net.load_state_dict(inside_net.state_dict())
    tokens = torch.randn(3, 16, 8)
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, 1:3, 1:3] = True
    with torch.no_grad():
        feats = inside_net.part_encoders[1](tokens, inside_net.part_positions[1](4, 4),
                                            key_padding_mask=~mask.flatten(1))
        every = every_net.part_embedding(1, tokens, mask, 4, 4)
        inside = inside_net.part_embedding(1, tokens, mask, 4, 4)
    assert torch.allclose(every, feats.mean(1), atol=1e-6)
    assert torch.allclose(inside, feats[:, mask[0].flatten()].mean(1), atol=1e-6)
    assert not torch.allclose(every, inside, atol=1e-3)  # the positions outside carry their own features
    with pytest.raises(ValidationError, match="part_pooling one of"):
        PARTNet(5, parts=2, part_pooling="max", **kw)


def test_resnet101_backbone_is_the_references_default_with_last_stride_one():
    net = PARTNet(5, parts=1, backbone="resnet101", dim=8, heads=2)
    assert [len(stage) for stage in (net.layer1, net.layer2, net.layer3, net.layer4)] == [3, 4, 23, 3]
    assert net.layer4[0].conv2.stride == (1, 1) and net.layer4[0].downsample[0].stride == (1, 1)
    maps, features = net.backbone_features(torch.zeros(1, 3, 64, 64))
    assert maps is features and maps.shape == (1, 2048, 4, 4)  # stride 16
    config = PARTConfig(part_pooling="all_positions")
    assert arch_kwargs(config, 5, 4)["part_pooling"] == "all_positions"


def _encoder_parameters(depth: int, d: int = 512, ffn: int = 2048) -> int:
    """Parameters of the reference's pre-norm encoder (``transformer.py``): per layer self-attention
    (in-projection 3d x d + 3d, out-projection d x d + d), two linears, two LayerNorms; a final LayerNorm."""
    layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 4 * d
    return depth * layer + 2 * d


def test_reference_shared_p3_trains_the_parameters_the_reference_uses():
    """The reference (``make_model.py``) builds ``transformer_p1..p4`` but ``forward_multi`` runs part 4
    through ``transformer_p3``; it also builds ``transdim`` and ``query_embed`` and never uses them, and
    of its ``resnet*_bap`` uses ``layer4.1`` up to ``bn2`` only. Counted here from shapes (torchvision's
    ResNet-101 on the meta device for the backbone), against the paper network's trainable parameters."""
    import torchvision

    with torch.device("meta"):
        tv = torchvision.models.resnet101()
        net = PARTNet(200, parts=4, backbone="resnet101", backbone_cut="reference", dim=512, heads=4, depth=3,
                      part_encoders="reference_shared_p3")
        separate = PARTNet(200, parts=4, backbone="resnet101", dim=512, heads=4, depth=3)
    unused = [tv.fc, tv.layer4[2], tv.layer4[1].conv3, tv.layer4[1].bn3]
    backbone = sum(p.numel() for p in tv.parameters()) - sum(p.numel() for m in unused for p in m.parameters())
    positions = 5 * 2 * 50 * 256  # positional_embedding, positional_embedding1..4: row and column tables
    heads = 5 * 512 + 5 * 512 * 200  # bottleneck weights (their bias frozen) and bias-free classifiers
    reference = backbone + _encoder_parameters(3) + 3 * _encoder_parameters(1) + positions + heads

    def trainable(module):
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    assert trainable(net) == reference == 56_545_856
    assert net.part_encoder_of == (0, 1, 2, 2) and len(net.part_encoders) == 3 and len(net.part_positions) == 4
    assert trainable(separate) - reference == 9_718_784  # 5.52 M backbone, 1.05 M projection, 3.15 M encoder
    with pytest.raises(ValidationError, match="parts must be 4, found 3"):
        PARTNet(5, parts=3, widths=(4, 4, 8, 8), dim=8, heads=2, top_channels=8, part_encoders="reference_shared_p3")


def test_part_four_runs_part_threes_encoder_with_its_own_position_table_and_trains_it():
    kw = dict(widths=(4, 4, 8, 8), dim=8, heads=2, top_channels=8, dropout=0.0)
    torch.manual_seed(0)
    net = PARTNet(5, parts=4, part_encoders="reference_shared_p3", part_pooling="all_positions", **kw).eval()
    tokens, mask = torch.randn(3, 16, 8), torch.rand(3, 4, 4) > 0.4
    with torch.no_grad():
        fourth = net.part_embedding(3, tokens, mask, 4, 4)
        # the reference's part 4: transformer_p3 with positional_embedding4, gap over every position
        direct = net.part_encoders[2](tokens, net.part_positions[3](4, 4), key_padding_mask=~mask.flatten(1)).mean(1)
        third = net.part_embedding(2, tokens, mask, 4, 4)
        net.part_positions[3].load_state_dict(net.part_positions[2].state_dict())
        same_table = net.part_embedding(3, tokens, mask, 4, 4)
    assert torch.allclose(fourth, direct, atol=1e-6) and not torch.allclose(fourth, third, atol=1e-3)
    assert torch.allclose(same_table, third, atol=1e-6)  # with part 3's table: part 3's encoder, the same output
    # the gradient of part 4's loss alone reaches the shared encoder and table 4, not part 3's table or head
    net.train()
    _, part_logits, _ = net(torch.randn(4, 3, 32, 32), part_taus=torch.full((4, 8), 0.5))
    torch.nn.functional.cross_entropy(part_logits[:, 3], torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.part_encoders[2].parameters())
    assert all(p.grad.abs().sum() > 0 for p in net.part_positions[3].parameters())
    untouched = [net.part_positions[2], net.part_encoders[0], net.part_encoders[1], net.part_classifiers[2]]
    assert all(p.grad is None or not p.grad.any() for m in untouched for p in m.parameters())


def test_reference_cut_backbone_equals_resnet_bap_at_448_px():
    """``resnet*_bap`` (``resnet.py``) from its reading, on torchvision's ResNet-50 with seeded weights and
    batch-norm statistics: ReLU(BN(conv1)), max-pool 2 x 2 stride 2 without padding, layer1-3, layer4's
    first block with stride 1, then the second block's ``feature = relu(bn1(conv1))`` and ``attention =
    relu(bn2(conv2(feature)))``. The cut loads torchvision's state dict (stem renamed, the rest by
    name). Tolerance 1e-5 (the same float32 operations)."""
    import torchvision

    from workbench.activations.hooks import hooked
    from workbench.models.part import part_net

    torch.manual_seed(0)
    tv = torchvision.models.resnet50().eval()
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t in (m.weight.data, m.bias.data, m.running_mean):
                t.uniform_(-0.2, 0.2)
            m.weight.data.add_(1.0)
            m.running_var.uniform_(0.5, 1.5)
    arch = part_net(num_classes=5, backbone="resnet50", backbone_cut="reference", dim=512, depth=1)
    assert arch.layers[:4] == ("layer1", "layer2", "layer3", "layer4:out[1]")
    net = arch.module.eval()
    renamed = {k.replace("conv1.", "stem.0.", 1) if k.startswith("conv1.") else
               k.replace("bn1.", "stem.1.", 1) if k.startswith("bn1.") else k: v for k, v in tv.state_dict().items()}
    missing, unexpected = net.load_state_dict(renamed, strict=False)
    assert sorted({k.split(".")[0] for k in missing}) == ["classifier", "global_transformer", "neck"]
    assert sorted({k.rsplit(".", 1)[0] for k in unexpected}) == ["fc", "layer4.1.bn3", "layer4.1.conv3"] + [
        f"layer4.2.{m}" for m in ("bn1", "bn2", "bn3", "conv1", "conv2", "conv3")]
    x = torch.randn(1, 3, 448, 448, generator=torch.Generator().manual_seed(1))
    seen = {}
    with torch.no_grad(), hooked(net, ["layer4:out[0]", "layer4:out[1]"], seen.__setitem__):
        net(x)
        y = torch.nn.functional.max_pool2d(tv.relu(tv.bn1(tv.conv1(x))), kernel_size=2, stride=2, padding=0)
        y = tv.layer3(tv.layer2(tv.layer1(y)))
        first, second = tv.layer4[0], tv.layer4[1]
        first.conv2.stride = first.downsample[0].stride = (1, 1)  # LAST_STRIDE = 1
        feature = torch.relu(second.bn1(second.conv1(first(y))))
        attention = torch.relu(second.bn2(second.conv2(feature)))
    assert attention.shape == feature.shape == (1, 512, 28, 28)
    assert torch.allclose(seen["layer4:out[0]"], attention, atol=1e-5)  # part discovery's channel maps
    assert torch.allclose(seen["layer4:out[1]"], feature, atol=1e-5)  # the transformers' tokens
    assert isinstance(net.proj, torch.nn.Identity) and net.global_transformer.pos.row_embed.embedding_dim == 256
    with pytest.raises(ValidationError, match="dim must be 512, found 64"):
        PARTNet(5, backbone="resnet50", backbone_cut="reference", dim=64)
    with pytest.raises(ValidationError, match="backbone 'small' takes backbone_cut 'torchvision'"):
        PARTNet(5, backbone_cut="reference")
