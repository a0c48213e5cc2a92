"""PART's training: config checks, the step's loss, and a micro run (baseline snapshot, global-only weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.errors import ValidationError
from workbench.methods.part.analysis import covers, hit_rate
from workbench.methods.part.train import PARTConfig, make_step
from workbench.training import build_network

ARCH = {"widths": [4, 4, 8, 8], "dim": 8, "heads": 2, "depth": 1, "dropout": 0.0}


def test_config_checks():
    with pytest.raises(ValidationError, match="tau_min"):
        PARTConfig(arch="part_net", tau_min=0.7, tau_max=0.6)
    with pytest.raises(ValidationError, match="top_channels"):
        PARTConfig(arch="part_net", parts=4, top_channels=3)
    with pytest.raises(ValidationError, match="variant"):
        PARTConfig(arch="part_net", variant="parts")


def test_step_loss_is_global_plus_a_tenth_of_the_part_losses():
    config = PARTConfig(arch="part_net", top_channels=8, label_smoothing=0.1)
    network = build_network("part_net", seed=0, num_classes=3, parts=4, top_channels=8, **ARCH)
    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(5)
    loss, logs = make_step(config, "part")(network, network.module, images, labels, config)
    torch.manual_seed(5)
    taus = torch.empty(6, 8).uniform_(0.4, 0.6)  # the step draws the same thresholds
    g, p, _ = network.module(images, part_taus=taus)
    direct = F.cross_entropy(g, labels, label_smoothing=0.1) + sum(
        F.cross_entropy(p[:, k], labels, label_smoothing=0.1) for k in range(4)) / 10
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)
    assert logs["loss_global"].item() == pytest.approx(F.cross_entropy(g, labels, label_smoothing=0.1).item(), rel=1e-5)


def test_covers_and_chance_of_the_hit_rate():
    boxes = np.array([[[0, 0, 8, 8], [24, 24, 32, 32]], [[8, 8, 16, 16], [0, 0, 1, 1]]], dtype=float)
    motif = np.array([[2, 2, 7, 7], [20, 20, 25, 25]], dtype=float)  # centres (4.5, 4.5) and (22.5, 22.5)
    assert covers(boxes, motif).tolist() == [[True, False], [False, False]]

    class FixedParts(torch.nn.Module):
        def discover(self, images, tau, parts):
            from workbench.models.part import PartSelection

            n = images.shape[0]
            b = torch.tensor([[0, 0, 1, 1], [3, 3, 4, 4]], dtype=torch.float32).expand(n, 2, 4)
            return PartSelection(torch.zeros(n, 2, dtype=torch.long), b, torch.ones(n, 2, 4, 4, dtype=torch.bool))

    class Items(torch.utils.data.Dataset):
        motif_boxes = np.array([[1, 1, 6, 6], [26, 26, 31, 31], [10, 10, 15, 15], [2, 2, 7, 7]])

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(3, 32, 32), 0

    stats = hit_rate(FixedParts(), Items(), parts=2, shifts=3)
    # part boxes in pixels: (0, 0, 8, 8) and (24, 24, 32, 32); motif centres 3.5, 28.5, 12.5, 4.5
    assert stats["hit_rate"] == 0.75 and stats["part_hit_rate"] == 0.375
    assert stats["chance"] == pytest.approx(0.75)  # the same boxes for every image: chance = hit rate
    assert stats["mean_box_area"] == pytest.approx(64 / 1024)


@pytest.fixture(scope="module")
def micro_run(train_micro):
    return train_micro("part")


@pytest.mark.slow
def test_micro_run_saves_the_global_only_network_and_the_baseline(micro_run):
    from workbench.methods.part.train import evaluate
    from workbench.models.runs import run_architecture

    out = micro_run
    card = json.loads((out / "model_card.json").read_text())
    assert card["architecture"] == "part_net" and card["architecture_kwargs"]["parts"] == 0
    assert "global_transformer.blocks.0" in card["layers"]
    _, arch = run_architecture(out)  # strict load of the global-only weights
    assert not hasattr(arch.module, "part_encoders")
    base = json.loads((out / "snapshots" / "baseline" / "model_card.json").read_text())
    assert base["variant"] == "baseline" and base["architecture_kwargs"]["parts"] == 0
    acc = card["part"]["accuracy"]
    assert acc["part"] == card["evaluation"]["test_acc"] and acc["baseline"] == base["evaluation"]["test_acc"]
    again = evaluate(out)
    assert again["test_acc"] == pytest.approx(card["evaluation"]["test_acc"])
    assert again["hit_rate"] == card["part"]["hit_rate"]["hit_rate"]
    assert 0.0 <= again["chance"] <= 1.0 and again["images"] == 12
    metrics = (out / "metrics.csv").read_text()
    assert "loss_parts" in metrics and "acc_parts" in metrics
