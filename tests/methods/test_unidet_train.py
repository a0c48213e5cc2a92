"""The detector's loss inside torchvision's RetinaNet, hierarchical inference, and a micro run end to end."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import box_iou

from workbench.errors import ValidationError
from workbench.methods.unidet.detector import build_detector, detect_hierarchical
from workbench.methods.unidet.labels import build_label_space
from workbench.methods.unidet.loss import hierarchy_bce
from workbench.methods.unidet.train import UniDetConfig
from workbench.models.detection import DetectionBackbone


def tiny_space():
    return build_label_space([("X", "animal", "animal"), ("X", "dog", "dog"), ("X", "cat", "cat")], [],
                             [("dog", "animal"), ("cat", "animal")], {"X": ["animal", "dog", "cat"]})


def test_config_validation_names_the_field():
    with pytest.raises(ValidationError, match=r"UniDetConfig.variant='tree' is not valid; expected one of \['flat', 'hierarchy'\]"):
        UniDetConfig(variant="tree")
    with pytest.raises(ValidationError, match=r"UniDetConfig.sampler='balanced' is not valid; expected one of \['class_aware', 'class_aware_concat', 'repeat', 'weighted'\]"):
        UniDetConfig(sampler="balanced")
    with pytest.raises(ValidationError, match="'anchor_sizes' needs 3 sizes"):
        UniDetConfig(anchor_sizes=(16, 32))


def test_retinanet_classification_loss_is_the_hierarchy_bce_of_its_matched_anchors():
    space = tiny_space()
    torch.manual_seed(0)
    det = build_detector(DetectionBackbone((4, 4, 8, 8)), 3, space.ancestors(), image_size=32, fpn_channels=8)
    images = [torch.rand(3, 32, 32), torch.rand(3, 32, 32)]
    targets = [{"boxes": torch.tensor([[2.0, 2.0, 20.0, 20.0]]), "labels": torch.tensor([0])},
               {"boxes": torch.tensor([[8.0, 4.0, 30.0, 28.0], [0.0, 0.0, 12.0, 12.0]]), "labels": torch.tensor([1, 2])}]
    det.train()
    losses = det(images, targets)
    # recompute by hand from the same head outputs and torchvision's matcher
    image_list, _ = det.transform(images)
    feats = list(det.backbone(image_list.tensors).values())
    logits = det.head(feats)["cls_logits"]
    anchors = det.anchor_generator(image_list, feats)
    matcher = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)
    total = 0.0
    for i, t in enumerate(targets):
        m = matcher(box_iou(t["boxes"], anchors[i]))
        valid, fg = m != -2, m >= 0
        labels = torch.full_like(m, -1)
        labels[fg] = t["labels"][m[fg]]
        total += float(hierarchy_bce(logits[i][valid], labels[valid], torch.as_tensor(space.ancestors())).detach()) / int(fg.sum())
    assert float(losses["classification"].detach()) == pytest.approx(total / 2, rel=1e-5)


def test_hierarchical_inference_reports_the_most_specific_label_and_its_ancestors():
    space = tiny_space()
    torch.manual_seed(0)
    det = build_detector(DetectionBackbone((4, 4, 8, 8)), 3, space.ancestors(), image_size=64, fpn_channels=8)
    cls = det.head.classification_head
    with torch.no_grad():  # constant scores: animal 0.9, dog 0.6, cat 0.2 at every anchor
        cls.cls_logits.weight.zero_()
        cls.cls_logits.bias.copy_(torch.logit(torch.tensor([0.9, 0.6, 0.2])).repeat(cls.num_anchors))
    found = detect_hierarchical(det, [torch.rand(3, 64, 64)], space.parent, threshold=0.5, max_boxes=3)[0]
    assert len(found) >= 1
    for box in found:
        assert [space.names[i] for i in box["labels"]] == ["dog", "animal"]
        assert box["scores"] == pytest.approx([0.6, 0.9], abs=1e-4)


@pytest.fixture(scope="module")
def micro_run(train_micro):
    return train_micro("unidet")


@pytest.mark.slow
def test_micro_run_end_to_end(micro_run):
    import workbench.models
    from workbench.methods.unidet import evaluate
    from workbench.training import list_snapshots, read_card

    out = micro_run
    card = read_card(out)
    assert card["architecture"] == "unidet_backbone" and card["method"] == "unidet"
    assert {"mAP_A", "mAP_B", "mAP_C", "leaf_mAP_B", "leaf_mAP", "mAP_mean"} <= set(card["evaluation"])
    assert set(card["unidet"]["variants"]) == {"hierarchy", "flat"}
    assert [p.name for p in list_snapshots(out)] == ["flat"]
    assert (out / "label_space.yaml").is_file() and (out / "detector.pt").is_file()
    again = evaluate(out)
    assert again == pytest.approx(card["evaluation"], nan_ok=True)  # recomputed from the saved detector
    model = workbench.models.create(str(out))                       # the backbone scores like any model
    with torch.no_grad():
        features = model.module(torch.rand(2, 3, 64, 64))
    assert features.shape == (2, 8)
    assert json.loads((out / "model_card.json").read_text())["preprocessing"]["input_size"] == 64
