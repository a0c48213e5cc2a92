"""SAVC's config, training step and an end-to-end micro run (baselines, sessions, card, evaluate, zoo)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.errors import ValidationError
from workbench.methods.savc.contrastive import MomentumQueue
from workbench.methods.savc.train import SAVCConfig, make_step
from workbench.training import build_network


def test_config_validation_names_the_field():
    with pytest.raises(ValidationError, match=r"SAVCConfig.variant='moco' is not valid; expected one of \['ce', 'savc', 'scl'\]"):
        SAVCConfig(variant="moco")
    with pytest.raises(ValidationError, match=r"SAVCConfig.fantasy='flip' is not valid; expected one of \['none', 'rot0_90'"):
        SAVCConfig(fantasy="flip")
    with pytest.raises(ValidationError, match="'small_scale_min' and 'small_scale_max' are 0.8 and 0.5"):
        SAVCConfig(small_scale_min=0.8, small_scale_max=0.5)
    with pytest.raises(ValidationError, match="'moco_t' must be > 0"):
        SAVCConfig(moco_t=0.0)


@pytest.mark.parametrize("variant,fantasy", [("savc", "rot0_90"), ("scl", "none"), ("ce", "none")])
def test_step_loss_is_ce_plus_weighted_contrastive_terms(variant, fantasy):
    cfg = SAVCConfig(arch="savc_net", fantasy="rot0_90", moco_k=40, moco_dim=8, small_crops=2, small_size=12,
                     alpha=0.3, beta=0.6)
    network = build_network("savc_net", seed=0, num_classes=6, fantasy=fantasy, backbone="tiny",
                            widths=(4, 4, 8, 8), moco_dim=8)
    queue = MomentumQueue(network.module, 40, 8, 0.9)
    step = make_step(cfg, variant, 4, queue)
    x, y = torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 2, 3, 1])
    torch.manual_seed(0)
    loss, logs = step(network, network.module, x, y, cfg)
    m = network.module.m
    expected = float(logs["ce"]) + (0.3 * float(logs["loss_global"]) + 0.6 * float(logs["loss_small"])
                                    if variant != "ce" else 0.0)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    assert ("loss_global" in logs) == (variant != "ce")
    if variant != "ce":  # the 5 * M keys went into the queue with their virtual labels
        assert int(queue.ptr) == 5 * m
        assert queue.labels[:5 * m].tolist() == (y[:, None] * m + torch.arange(m)).reshape(-1).tolist()
    else:
        assert int(queue.ptr) == 0
    loss.backward()
    assert network.module.fc.weight.grad[4 * m:].abs().sum() == 0  # novel rows untouched by the base session


@pytest.fixture(scope="module")
def micro_run(train_micro):
    return train_micro("savc")


@pytest.mark.slow
def test_micro_run_end_to_end(micro_run):
    import workbench.models
    from workbench.methods.savc import evaluate, fscil
    from workbench.training import read_metrics

    out = micro_run
    card = json.loads((out / "model_card.json").read_text())
    sessions = card["fscil"]["sessions"]
    assert [r["classes"] for r in sessions] == [6, 8, 10]
    assert set(card["fscil"]["baselines"]) == {"ce", "scl"}
    for variant in ("ce", "scl"):
        snap = json.loads((out / "snapshots" / variant / "model_card.json").read_text())
        assert snap["architecture_kwargs"]["fantasy"] == "none" and snap["fscil"]["variant"] == variant
        assert len(snap["fscil"]["sessions"]) == 3
        assert f"variant: {variant}" in (out / "snapshots" / variant / "config.yaml").read_text()
    assert card["architecture_kwargs"]["fantasy"] == "rot0_90"
    # the split file the run wrote is the documented generated split
    from workbench.data.training import load_training_data

    targets = np.asarray(load_training_data("digits32", augment=False).train.targets)
    split = fscil.make_split(targets, base_classes=6, ways=2, shots=5, sessions=2, seed=0)
    assert (out / "split" / "session_3.txt").read_text().split() == [str(i) for i in split.sessions[2]]
    # evaluate recomputes the last session from the files
    again = evaluate(out)
    assert again["test_acc"] == pytest.approx(card["evaluation"]["test_acc"])
    assert again["test_acc_novel"] == pytest.approx(sessions[-1]["acc_novel"])
    assert evaluate(out / "snapshots" / "ce")["test_acc"] == pytest.approx(
        card["fscil"]["baselines"]["ce"]["sessions"][-1]["acc_all"])
    frame = read_metrics(out)
    assert sorted(frame[frame.split == "session"].step.unique().tolist()) == [1, 2, 3]
    model = workbench.models.create(str(out))
    assert tuple(model.layers)[-1] == "embedding"


def test_presets_resolve_to_the_documented_recipes():
    from workbench.methods import get_method
    from workbench.training import resolve_config

    spec = get_method("savc")
    assert spec.presets() == ["micro", "paper", "paper_cub", "tiny"]
    paper = resolve_config(spec, "paper")
    assert (paper.arch_kwargs["backbone"], paper.dataset, paper.fantasy, paper.epochs, paper.batch_size) == \
        ("resnet20", "cifar100", "rotation2", 600, 128)
    assert (paper.lr, paper.weight_decay, paper.scheduler, paper.moco_k, paper.moco_m, paper.moco_t) == \
        (0.1, 0.0005, "cosine", 8192, 0.995, 0.07)
    assert paper.nesterov and paper.small_pairing == "reference" and paper.arch_kwargs["projector_bias"] is False
    cub = resolve_config(spec, "paper_cub")
    assert (cub.arch_kwargs["backbone"], cub.backbone_weights, cub.dataset, cub.epochs, cub.lr) == \
        ("resnet18", "imagenet", "cub200", 120, 0.002)
    assert (cub.scheduler, cub.milestones, cub.gamma, cub.nesterov, cub.global_size, cub.small_size) == \
        ("multistep", (60, 80, 100), 0.1, True, 224, 96)
    assert (paper.alpha, paper.beta, paper.scale, paper.small_crops) == (0.2, 0.8, 16.0, 4)
    tiny = resolve_config(spec, "tiny", ["shots=3"])
    assert (tiny.dataset, tiny.fantasy, tiny.base_classes, tiny.ways, tiny.sessions, tiny.shots) == \
        ("digits32", "rot0_90", 6, 2, 2, 3)


def test_summary_keeps_the_best_base_epoch_beside_the_final_one():
    from types import SimpleNamespace

    from workbench.methods.savc.train import _summary
    from workbench.training.model_card import evaluation_labels

    sessions = [{"session": 1, "acc_all": 0.5, "acc_base": 0.5, "acc_novel": None},
                {"session": 2, "acc_all": 0.4, "acc_base": 0.45, "acc_novel": 0.2}]
    final_only = _summary(sessions, SimpleNamespace(evaluation={"test_acc": 0.6}))
    assert "best_base_train_test_acc" not in final_only and final_only["base_train_test_acc"] == 0.6
    summary = _summary(sessions, SimpleNamespace(evaluation={"test_acc": 0.6, "best_test_acc": 0.7, "best_epoch": 3}))
    assert (summary["base_train_test_acc"], summary["best_base_train_test_acc"], summary["best_epoch"]) == (0.6, 0.7, 3)
    labels = evaluation_labels(summary)
    assert labels["best_base_train_test_acc"].startswith("best epoch") and labels["test_acc"].startswith("final")
