"""MADAv2's stage 2 against loops written from the reference code (munanning/MADAv2):
``step2_train_active_semi_sup.py`` (epoch clock, percentile schedule), ``models/adaptation_model_AEL.py``
(``step_active_stage2``: entropy filter, anchor loss after epoch 50) and ``loss/loss.py``
(``OhemCrossEntropy2dTensor``, ``Criterion_cons``; AEL's ``cal_category_confidence`` in ``models/utils.py``).
Seeded inputs; tolerance 1e-6 on losses, exact on labels.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_madav2_cutmix import _reference_cutmix_box
from workbench.errors import ValidationError
from workbench.methods.mada import madav2
from workbench.methods.mada.anchors import AnchorBank, Anchors

train_module = importlib.import_module("workbench.methods.mada.train")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _reference_entropy_filter(logits: np.ndarray, percent: float) -> np.ndarray:
    """The reference: entropy of the teacher's softmax, pixels under np.percentile(entropy, percent) -> 255."""
    prob = _softmax(logits.astype(np.float64))
    entropy = -(prob * np.log(prob + 1e-10)).sum(1)
    labels = logits.argmax(1)
    labels[entropy < np.percentile(entropy.ravel(), percent)] = 255
    return labels


def _reference_ohem(logits: np.ndarray, labels: np.ndarray, thresh: float, min_kept: int) -> float:
    """The reference's OHEM CE, loop by loop: kept pixels' mean -log p(label)."""
    prob = _softmax(logits.astype(np.float64)).transpose(1, 0, 2, 3).reshape(logits.shape[1], -1)
    target = labels.ravel().copy()
    valid = target != 255
    keep = valid.copy()
    if valid.sum() >= min_kept:
        label_prob = np.ones(target.size)
        label_prob[valid] = prob[target[valid], np.flatnonzero(valid)]
        threshold = thresh
        kth = np.sort(label_prob)[min(target.size, min_kept) - 1]
        if kth > thresh:
            threshold = kth
        keep = valid & (label_prob <= threshold)
    return float(-np.log(prob[target[keep], np.flatnonzero(keep)]).mean())


def _reference_category_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cal_category_confidence: per class, the mean softmax of that class over its labelled pixels (0 if none)."""
    prob = _softmax(logits.astype(np.float64))
    out = np.zeros(logits.shape[1])
    for ind in range(logits.shape[1]):
        mask = labels == ind
        out[ind] = 0 if mask.sum() == 0 else (prob[:, ind] * mask).sum() / (mask.sum() + 1e-12)
    return out


def _reference_consistency(student: np.ndarray, teacher: np.ndarray, labels: np.ndarray, criterion: np.ndarray,
                           gamma: float) -> float:
    """Criterion_cons with sample=True, gamma2=1: one torch.rand(h, w) per class from the global RNG."""
    n, c, h, w = student.shape
    log_prob = np.log(_softmax(student.astype(np.float64)))
    ce = np.zeros((n, h, w))
    for i, y, x in np.argwhere(labels != 255):
        ce[i, y, x] = -log_prob[i, labels[i, y, x], y, x]
    conf = _softmax(teacher.astype(np.float64)).max(1) ** gamma
    rate = (1 - criterion).astype(np.float32)
    rate = rate / (rate.max() + np.float32(1e-12))
    predicted = student.argmax(1)
    sample = np.zeros((n, h, w))
    for idx in range(c):
        draws = torch.rand(h, w).numpy()
        sample += (draws * (predicted == idx)) > (1 - rate[idx])
    conf = conf * sample
    conf = conf / (conf.sum() + 1e-12)
    return float((conf * ce).sum())


def test_the_epoch_clock_and_the_percentile_schedule_are_the_references():
    # reference: Cityscapes' 2,975 training images, 4 a step, drop_last -> 743 steps an epoch, 200 epochs
    steps = madav2.epoch_steps(2975, 4)
    assert steps == 743 and madav2.stage2_epochs(200 * 743, steps) == 200
    assert [madav2.stage2_epoch(s, steps) for s in (0, 742, 743, 51 * 743 - 1, 51 * 743)] == [0, 0, 1, 50, 51]
    assert [madav2.entropy_percent(20, e, 200) for e in (0, 100, 199)] == pytest.approx([20, 10, 0.1])


@pytest.mark.parametrize("percent", [20.0, 7.3, 0.1])
def test_entropy_filter_drops_the_lowest_entropy_pixels_as_the_reference(percent):
    logits = torch.randn(2, 19, 24, 32, generator=torch.Generator().manual_seed(0)) * 3
    expected = _reference_entropy_filter(logits.numpy(), percent)
    got = madav2.drop_by_entropy(logits, logits.argmax(1), percent, "lowest")
    assert np.array_equal(got.numpy(), expected)
    kept = float((got != 255).float().mean())
    assert kept == pytest.approx(1 - percent / 100, abs=1 / got.numel())


def test_u2pl_rule_drops_the_highest_entropy_pixels_among_the_labelled_ones():
    logits = torch.randn(1, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = logits.argmax(1)
    labels[0, :4] = 255
    got = madav2.drop_by_entropy(logits, labels, 25.0, "highest")
    entropy = madav2.pixel_entropy(logits)
    dropped = (got == 255) & (labels != 255)
    assert int(dropped.sum()) == 48  # a quarter of the 192 labelled pixels
    assert entropy[dropped].min() >= entropy[got != 255].max()
    assert torch.equal(madav2.drop_by_entropy(logits, labels, 0.0, "highest"), labels)


@pytest.mark.parametrize("thresh, min_kept", [(0.7, 50), (0.7, 900), (0.05, 300), (0.7, 5000)])
def test_ohem_matches_the_reference_loop(thresh, min_kept):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 19, 24, 32, generator=g) * 4
    labels = torch.randint(0, 19, (2, 24, 32), generator=g)
    labels[:, :3] = 255  # 1,344 labelled pixels: min_kept 5,000 falls back to plain CE
    expected = _reference_ohem(logits.numpy(), labels.numpy(), thresh, min_kept)
    assert float(madav2.ohem_cross_entropy(logits, labels, thresh, min_kept)) == pytest.approx(expected, abs=1e-6)
    plain = float(F.cross_entropy(logits, labels, ignore_index=255))
    assert (expected == pytest.approx(plain, abs=1e-6)) == (min_kept == 5000)


def _micro_step_inputs():
    build = importlib.import_module("workbench.training").build_network
    network = build("seg_cnn", seed=0, num_classes=4, widths=[4, 4, 8], feature_dim=4)
    network.module.eval()  # batch statistics would differ between the step's forward and the check's
    g = torch.Generator().manual_seed(3)
    images = torch.randn(2, 3, 3, 16, 16, generator=g)  # 2 items x (source, selected, unselected)
    labels = torch.randint(0, 4, (2, 3, 16, 16), generator=g)
    labels[:, 2] = 255
    return network, images, labels


def test_stage2_step_applies_ohem_the_entropy_schedule_and_the_anchor_start_epoch():
    network, images, labels = _micro_step_inputs()
    config = dataclasses.replace(train_module.MADAConfig(), active_loss="ohem", ohem_min_kept=100,
                                 pseudo_entropy_percent=20.0, anchor_start_epoch=1, anchor_weight=0.1)
    anchors = Anchors(np.zeros((2, 4, 4), np.float32), np.ones((2, 4), bool), np.zeros(0, np.int64))
    state = train_module.AdaptationState(network, AnchorBank(anchors), teacher=False, momentum=0.99,
                                         epoch_steps=3, epochs=4)
    step = train_module.stage2_step(state, 4, active=True)
    x = images.transpose(0, 1).reshape(6, 3, 16, 16)
    with torch.no_grad():
        logits = F.interpolate(network.module(x, return_features=True)[1], size=(16, 16), mode="bilinear",
                               align_corners=False)
    y = labels.transpose(0, 1).reshape(6, 16, 16)
    for step_index, percent in ((2, 20.0), (3, 15.0)):  # epochs 0 and 1 of 4
        state.on_step_start(SimpleNamespace(step=step_index), network)  # the loop's hook sets the clock
        assert state.epoch == step_index // 3
        centers = state.bank.centers.clone()
        _, logs = step(network, network.module, images, labels, config)
        # the rule itself is checked against the reference above; here: the percent of this epoch is used
        pseudo = madav2.drop_by_entropy(logits[4:], logits[4:].argmax(1), percent)
        assert float(logs["ce_pseudo"]) == pytest.approx(float(F.cross_entropy(logits[4:], pseudo, ignore_index=255)),
                                                         abs=1e-6)
        assert float(logs["ce_active"]) == pytest.approx(_reference_ohem(logits[2:4].numpy(), y[2:4].numpy(), 0.7,
                                                                          100), abs=1e-6)
        moved = not torch.equal(centers, state.bank.centers)
        assert (float(logs["anchor"]) > 0, moved) == ((False, False) if step_index == 2 else (True, True))


def test_class_sampling_keeps_each_predicted_class_at_its_rate():
    predicted = torch.arange(4).repeat_interleave(64 * 64).reshape(4, 64, 64)  # one class an image
    torch.manual_seed(0)
    sampled = madav2.class_sample_map(predicted, torch.tensor([0.0, 0.5, 0.75, 1.0]))
    kept = sampled.mean((1, 2))  # rates (1 - criterion) / max: 1, 0.5, 0.25, 0
    assert kept.tolist() == pytest.approx([1.0, 0.5, 0.25, 0.0], abs=0.02)


def test_category_confidence_is_the_references_over_the_whole_batch():
    # the step tests see it only through criterion's 0.001 x: checked here on its own
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, 8, 12, generator=g)
    labels = torch.randint(0, 4, (3, 8, 12), generator=g)  # class 4 absent
    labels[:, :2] = 255
    got = madav2.category_confidence(logits, labels)
    expected = _reference_category_confidence(logits.numpy(), labels.numpy())
    assert got.tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert float(got[4]) == 0 and (got[:4] > 0).all()


def test_stage2_without_source_and_with_the_class_sampled_ce_is_the_references_loss():
    network, images, labels = _micro_step_inputs()
    images, labels = images[:, 1:], labels[:, 1:]  # streams: selected, unlabelled (no source)
    state, config, start = _v2_state_and_config(network)
    assert train_module.stage2_layout(config, True) == ("active", "pseudo")
    x = images.transpose(0, 1).reshape(4, 3, 16, 16)
    y = labels.transpose(0, 1).reshape(4, 16, 16).numpy()
    with torch.no_grad():
        student, teacher = network.module(x).numpy(), state.teacher(x).numpy()
    criterion = start.numpy() * 0.999 + _reference_category_confidence(student[:2], y[:2]) * 0.001
    torch.manual_seed(7)
    consistency = _reference_consistency(student[:2], teacher[:2], teacher[:2].argmax(1), criterion, 2.0)
    pseudo = _reference_consistency(student[2:], teacher[2:], _reference_entropy_filter(teacher[2:], 20.0),
                                    criterion, 2.0)
    ohem = _reference_ohem(student[:2], y[:2], 0.7, 100)
    torch.manual_seed(7)
    loss, logs = train_module.stage2_step(state, 4, active=True)(network, network.module, images, labels, config)
    assert "ce_source" not in logs
    got = [float(logs[k]) for k in ("ce_active", "ce_consistency", "ce_pseudo")]
    assert got == pytest.approx([ohem, consistency, pseudo], abs=1e-6)
    assert float(loss.detach()) == pytest.approx(ohem + consistency + pseudo, abs=1e-6)
    assert consistency > 0 and pseudo > 0


def _v2_state_and_config(network, **fields):
    """MADAv2's stage 2 (no source, class-sampled CE, fixed teacher) on the micro network, the student's weights
    and BatchNorm statistics moved away from its teacher's (the reference's fixed stage-1 model)."""
    config = dataclasses.replace(train_module.MADAConfig(), stage2_source=False, pseudo_loss="class_sampled",
                                 active_loss="ohem", ohem_min_kept=100, pseudo_entropy_percent=20.0, mean_teacher=True,
                                 **fields)
    start = torch.tensor([0.2, 0.9, 0.5, 0.7])
    pool = [(torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(10 + i)), torch.zeros(16, 16).long())
            for i in range(5)] if config.cutmix_bank else None
    state = train_module.AdaptationState(network, None, teacher=True, momentum=1.0, epochs=4, class_start=start,
                                         cutmix_pool=pool, copy_buffers=config.teacher_batchnorm == "student")
    with torch.no_grad():
        for p in network.module.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4)) * 0.1)
        for b in network.module.buffers():
            b.add_(0.05 if b.is_floating_point() else 3)
    return state, config, start


@pytest.mark.parametrize("teacher_batchnorm", ["student", "reference"])
def test_stage2_with_the_cutmix_bank_trains_on_the_references_composites(teacher_batchnorm):
    network, images, labels = _micro_step_inputs()
    images, labels = images[:, 1:], labels[:, 1:]  # streams: selected, unlabelled (no source)
    state, config, start = _v2_state_and_config(network, cutmix_bank=True, teacher_batchnorm=teacher_batchnorm)
    live = teacher_batchnorm == "reference"  # step_active_stage2: train mode on the selected images and composites
    stage1 = copy.deepcopy(state.teacher)  # the stage-1 network, re-run by hand in the reference's order
    y = labels[:, 0].numpy()
    torch.manual_seed(7)  # the same torch draws: class, partner, box, then the two class samplings
    cls = int(torch.multinomial(torch.softmax(1 - start.double(), 0), 1))
    partner = int(torch.randint(5, ()))  # the bank starts empty: any pool image
    with torch.no_grad():
        teacher_active = stage1.train(live)(images[:, 0])
        pair = torch.stack([images[0, 1], state.cutmix_pool[partner][0]])
        teacher_pair = stage1.eval()(pair)  # the running statistics after the selected images' forward
        y0, x0, y1, x1 = _reference_cutmix_box(teacher_pair[1].argmax(0).numpy(), cls)
        mixed, mixed_teacher = pair.clone(), teacher_pair.clone()
        for i in range(2):  # generate_unsup_data: the box of the other image
            mixed[i, :, y0:y1, x0:x1] = pair[1 - i, :, y0:y1, x0:x1]
            mixed_teacher[i, :, y0:y1, x0:x1] = teacher_pair[1 - i, :, y0:y1, x0:x1]
        stage1.train(live)(mixed)  # output unused: the running statistics updated
        student = network.module(torch.cat([images[:, 0], mixed])).numpy()
    criterion = start.numpy() * 0.999 + _reference_category_confidence(student[:2], y) * 0.001
    teacher_active, mixed_teacher = teacher_active.numpy(), mixed_teacher.numpy()
    consistency = _reference_consistency(student[:2], teacher_active, teacher_active.argmax(1), criterion, 2.0)
    pseudo = _reference_consistency(student[2:], mixed_teacher, _reference_entropy_filter(mixed_teacher, 20.0),
                                    criterion, 2.0)
    torch.manual_seed(7)
    step = train_module.stage2_step(state, 4, active=True)
    index = (partner + 1) % 5  # the pool index of the unlabelled image
    _, logs = step(network, network.module, images, (labels, torch.tensor([index, 0])), config)
    got = [float(logs[k]) for k in ("ce_active", "ce_consistency", "ce_pseudo")]
    assert got == pytest.approx([_reference_ohem(student[:2], y, 0.7, 100), consistency, pseudo], abs=1e-6)
    state.on_step_end(None, network, logs)  # weights kept (momentum 1); buffers the student's, or the teacher's own
    assert not state.teacher.training
    expected = dict((stage1 if live else network.module).named_buffers())
    for name, buffer in state.teacher.named_buffers():
        assert torch.allclose(buffer, expected[name], rtol=0, atol=1e-6), name
    assert all(torch.equal(p, q) for p, q in zip(state.teacher.parameters(), stage1.parameters()))
    for entry, image in ((index, 0), (partner, 1)):  # update_cutmix_bank: classes on >= 0.01 x 16^2 pixels
        counts = np.bincount(teacher_pair[image].argmax(0).numpy().ravel(), minlength=4)
        assert state.cutmix_bank.table[:, entry].tolist() == (counts >= 2.56).tolist()
    assert state.cutmix_bank.table.sum() == state.cutmix_bank.table[:, [index, partner]].sum()


def test_with_the_cutmix_bank_the_anchor_loss_sees_the_pair_unmixed():
    network, images, labels = _micro_step_inputs()
    anchors = Anchors(np.zeros((2, 4, 4), np.float32), np.ones((2, 4), bool), np.zeros(0, np.int64))
    state, config, _ = _v2_state_and_config(network, cutmix_bank=True, anchor_weight=0.1)
    state.bank = AnchorBank(anchors)
    torch.manual_seed(0)
    x, y, chunks, teachers = train_module._stage2_batch(state, config, images[:, 1:], (labels[:, 1:], [2, 0]), True)
    assert chunks == {"active": slice(0, 2), "pseudo": slice(2, 4), "anchor": slice(4, 6)}
    assert torch.equal(x[:2], images[:, 1]) and torch.equal(x[4], images[0, 2])
    assert list(teachers) == ["pseudo"] and teachers["pseudo"].shape == (2, 4, 16, 16)
    assert bool((y[2:] == 255).all()) and torch.equal(x[2:4].sum(0), x[4:6].sum(0))  # a swap: the pair's sum stays
    with pytest.raises(ValidationError, match="cutmix_bank"):
        train_module.MADAConfig(cutmix_bank=True)


def test_a_reference_teacher_forwards_one_image_in_eval_mode_and_is_left_in_eval_mode():
    network, images, _ = _micro_step_inputs()
    state, config, _ = _v2_state_and_config(network, teacher_batchnorm="reference")
    stage1 = copy.deepcopy(state.teacher)
    with torch.no_grad():
        eval_logits, train_logits = stage1(images[:1, 1]), copy.deepcopy(stage1).train()(images[:, 1])
    got = train_module._teacher_forward(state, images[:1, 1], batch_statistics=True)  # one image: eval mode
    assert torch.equal(got, eval_logits) and not state.teacher.training
    assert all(torch.equal(b, c) for b, c in zip(state.teacher.buffers(), stage1.buffers()))
    got = train_module._teacher_forward(state, images[:, 1], batch_statistics=True)  # two: batch statistics
    assert torch.allclose(got, train_logits, rtol=0, atol=1e-6) and not state.teacher.training
    assert int(state.teacher.layer1[1].num_batches_tracked) == 1
    x, _, _, teachers = train_module._stage2_batch(state, config, images[:, 1:], images[:, 1:, 0].long(), True)
    assert list(teachers) == ["active"]  # the selected images' train-mode forward, whatever the loss
    assert int(state.teacher.layer1[1].num_batches_tracked) == 2
    with pytest.raises(ValidationError, match="teacher_batchnorm"):
        train_module.MADAConfig(teacher_batchnorm="reference")


def test_defaults_keep_todays_stage2_and_bad_values_are_refused_by_name():
    config = train_module.MADAConfig()
    assert (config.anchor_start_epoch, config.pseudo_entropy_percent, config.active_loss) == (0, 0.0, "ce")
    assert (config.stage2_source, config.pseudo_loss) == (True, "ce")
    assert train_module.stage2_layout(config, True) == ("source", "active", "pseudo")
    logits = torch.randn(1, 3, 4, 4)
    labels = logits.argmax(1)
    assert torch.equal(madav2.filter_pseudo_labels(logits, labels, config, 0, 1), labels)
    assert float(madav2.active_loss(logits, labels, config)) == float(F.cross_entropy(logits, labels))
    with pytest.raises(ValidationError, match="pseudo_entropy_percent"):
        train_module.MADAConfig(pseudo_entropy_percent=120)
    with pytest.raises(ValidationError, match="ohem_thresh"):
        train_module.MADAConfig(ohem_thresh=1.5)
    with pytest.raises(ValidationError, match="pseudo_loss_gamma"):
        train_module.MADAConfig(pseudo_loss_gamma=-1)


def test_paper_v2_preset_is_the_paper_preset_with_madav2s_stage_2():
    import yaml

    from workbench.methods import get_method
    from workbench.training import resolve_config

    spec = get_method("mada")
    paper, v2 = (yaml.safe_load(spec.preset_path(p).read_text()) for p in ("paper", "paper_v2"))
    changed = {k: v for k, v in v2.items() if paper.get(k, "absent") != v}
    assert changed == {"selection": "madav2", "adapt2_steps": 200 * 743, "anchor_weight": 0.1, "mean_teacher": True,
                       "teacher_momentum": 1.0, "anchor_start_epoch": 51, "pseudo_entropy_percent": 20.0,
                       "pseudo_entropy_drop": "lowest", "active_loss": "ohem", "ohem_thresh": 0.7,
                       "ohem_min_kept": 100000, "stage2_source": False, "pseudo_loss": "class_sampled",
                       "pseudo_loss_gamma": 2.0, "cutmix_bank": True, "teacher_batchnorm": "reference"}
    assert set(paper) <= set(v2)
    config = resolve_config(spec, "paper_v2")
    assert (config.active_loss, config.anchor_start_epoch, config.pseudo_entropy_percent) == ("ohem", 51, 20.0)
    assert config.teacher_batchnorm == "reference" and train_module.MADAConfig().teacher_batchnorm == "student"
